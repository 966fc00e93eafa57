package testenv

import (
	"testing"
	"time"
)

// Eventually looks after 10 ms, then at twice the pause each time, up to
// 200 ms: soon after a quick change, and no busy loop over a slow one
// (a query to Prometheus, a scan of /proc).
const (
	firstPause = 10 * time.Millisecond
	maxPause   = 200 * time.Millisecond
)

// Eventually reports whether cond holds within the given time, looking
// again and again. It is for a state that shows only from outside
// the test's goroutines: another process, the kernel, a server's counters,
// a log. An event of the test's own code is waited for on a channel, or in
// a synctest bubble, never polled.
func Eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for pause := firstPause; !cond(); pause = min(2*pause, maxPause) {
		if time.Now().After(deadline) {
			return false
		}
		// Not waiting for an event: the pause between two looks.
		time.Sleep(pause)
	}
	return true
}

// WaitFor is Eventually that fails the test when cond does not hold
// within the given time. Call it from the test's goroutine.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(within, cond) {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// Settled waits until count has not moved for quiet, and returns it. It is
// for an end the test cannot see (a daemon that stops work for a reader
// that went away, as the kernel tells it): only that nothing more comes.
func Settled(t testing.TB, within, quiet time.Duration, what string, count func() int64) int64 {
	t.Helper()
	var n int64
	WaitFor(t, within, what, func() bool {
		before := count()
		// Not waiting for an event: the quiet period that shows the end.
		time.Sleep(quiet)
		n = count()
		return n == before
	})
	return n
}
