package testenv

import (
	"testing"
	"time"
)

// pollEvery is how often Eventually looks.
const pollEvery = 10 * time.Millisecond

// Eventually reports whether cond holds within the given time, looking
// every few milliseconds. It is for a state that shows only from outside
// the test's goroutines: another process, the kernel, a server's counters,
// a log. An event of the test's own code is waited for on a channel, or in
// a synctest bubble, never polled.
func Eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		// Not waiting for an event: the pause between two looks.
		time.Sleep(pollEvery)
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
