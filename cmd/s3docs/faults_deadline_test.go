package main

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// Issue 14 finding 2: a server that accepts connections and never answers.
// One read(2) used to take 721 s: three attempts of the 2-minute fetch
// timeout, then the kernel's retry of the failed readahead three more. Now
// a read has one deadline, --read-timeout, every retry included, and the
// kernel's retry of the range fails at once: `cat` gets EIO within the
// deadline and the reader's grace (1 s), plus a margin for a loaded
// machine that is well below a second deadline. The failure is one log
// line, and once the server answers again (and the failed range's 1 s
// memory is over) the file reads exactly.
func TestReadDeadlineAgainstSilentServer(t *testing.T) {
	w := newWorld(t)
	const readTimeout = 6 * time.Second
	const key = "silent.pdf"
	sum := putRandom(t, w, key, 900, 20*mib)
	d := w.mount(t, mountOpts{extra: []string{"--read-timeout", readTimeout.String()}})
	if _, err := os.Stat(d.path(key)); err != nil { // the lookup is not what this test stalls
		t.Fatal(err)
	}
	// Object GETs are taken and never answered (until the client hangs up).
	w.proxy.SetFault(func(r *http.Request) testenv.Fault {
		if testenv.IsObjectGET(r) {
			return testenv.Fault{Delay: time.Hour}
		}
		return testenv.Fault{}
	})
	w.proxy.Reset()
	r := timedSum(d.path(key), 10*readTimeout)
	bound := readTimeout + time.Second + 3*time.Second
	t.Logf("read against a silent server: %v after %v (deadline %v, bound %v): %s", r.err, r.took.Round(time.Millisecond),
		readTimeout, bound, r.msg)
	if !r.isEIO() {
		t.Fatalf("want EIO from a server that never answers, got %v (%s)", r.err, r.msg)
	}
	if r.took < readTimeout-time.Second {
		t.Errorf("EIO after %v, before the %v deadline: was the server's silence waited for?", r.took, readTimeout)
	}
	if r.took > bound {
		t.Errorf("EIO after %v: more than the deadline %v, its grace and a margin (%v)", r.took, readTimeout, bound)
	}
	w.proxy.WaitIdle(5 * time.Second)
	var gets []string
	for _, g := range w.proxy.GETs() {
		gets = append(gets, g.Range+" "+g.Err)
	}
	t.Logf("object GETs: %d: %s", len(gets), strings.Join(gets, "; "))
	if len(gets) == 0 {
		t.Fatal("no GET reached the server: the stall was not exercised")
	}
	// One failed read, one line.
	errLines := 0
	for _, line := range strings.Split(d.stderr.String(), "\n") {
		if strings.Contains(line, key) && (strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN")) {
			errLines++
		}
	}
	if errLines != 1 {
		t.Errorf("the failed read logged %d warning or error lines, want 1", errLines)
	}

	// The server answers again: after the failed range's memory (1 s),
	// the file reads exactly. Not waiting for an event: the daemon's
	// memory of the failure lapses.
	w.proxy.SetFault(nil)
	time.Sleep(2 * time.Second)
	if r := timedSum(d.path(key), time.Minute); r.err != nil || r.sum != sum {
		t.Fatalf("read once the server answers: %v (%s), sha256 %s, want %s", r.err, r.msg, r.sum, sum)
	}
}
