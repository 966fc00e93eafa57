package main

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// downReadBound is how long a read may take while the server is down
// before the test calls it hung. The daemon gives up on a chunk after 5
// failed requests, with waits of 0.25-2 s between them (s3store/retry.go):
// against a server that resets connections that measured about 3 s per
// read(2) on the 2-core test machine, and cannot exceed about 5 s per
// chunk fetch by the settings; the kernel may retry a failed readahead
// with a second read, whence the margin.
const downReadBound = 60 * time.Second

// The server goes down (every connection reset) for 10 s while a file is
// being streamed: the streaming read and reads of uncached files started
// during the outage fail with EIO within downReadBound, none hangs, and once
// the server is back every file reads exactly, without a remount.
func TestServerDownMidRead(t *testing.T) {
	w := newWorld(t)
	const outage = 10 * time.Second
	sums := map[string]string{}
	sizes := map[string]int{"stream.pdf": 64 * mib}
	sums["stream.pdf"] = putRandom(t, w, "stream.pdf", 200, 64*mib)
	const others = 4
	for i := range others {
		key := fmt.Sprintf("other-%d.pdf", i)
		sizes[key] = 16*mib + i
		sums[key] = putRandom(t, w, key, int64(201+i), sizes[key])
	}
	// Readahead of two chunks: the stream takes several seconds.
	d := w.mount(t, mountOpts{extra: []string{"--read-ahead", "16MiB"}})
	// Stat everything now: the listing is cached, so the outage is seen by
	// the reads alone.
	for key := range sums {
		if _, err := os.Stat(d.path(key)); err != nil {
			t.Fatal(err)
		}
	}
	// 4 MiB/s per GET: the 64 MiB file is still streaming (its first
	// chunk read, the next ones on their way, the rest to come) when the
	// server goes down.
	throttleGETs(w, 4*mib)
	stream := make(chan readResult, 1)
	streamStart := time.Now()
	go func() { stream <- timedSum(d.path("stream.pdf"), downReadBound) }()
	deadline := time.Now().Add(30 * time.Second)
	for len(completedGETs(w.proxy)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no chunk of stream.pdf arrived within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.proxy.SetDown(true)
	downAt := time.Now()
	t.Logf("server down after %d complete GETs", len(completedGETs(w.proxy)))

	// Reads of files not cached at all, started during the outage.
	type started struct {
		key string
		at  time.Duration // after the server went down
		r   readResult
	}
	var mu sync.Mutex
	var results []started
	var wg sync.WaitGroup
	for i := range others {
		key := fmt.Sprintf("other-%d.pdf", i)
		time.Sleep(time.Duration(i) * time.Second / 2)
		at := time.Since(downAt)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := timedSum(d.path(key), downReadBound)
			mu.Lock()
			results = append(results, started{key, at, r})
			mu.Unlock()
		}()
	}
	time.Sleep(outage - time.Since(downAt))
	w.proxy.SetDown(false)
	upAt := time.Since(downAt)
	resets := w.proxy.Resets()
	wg.Wait()
	results = append(results, started{"stream.pdf", streamStart.Sub(downAt), <-stream})

	eio, eioInOutage := 0, 0
	for _, s := range results {
		r := s.r
		ended := s.at + r.took
		t.Logf("%s: started %v into the outage, ended after %v: err %v %q", s.key, s.at.Round(time.Millisecond),
			r.took.Round(time.Millisecond), r.err, r.msg)
		switch {
		case r.hung:
			t.Errorf("%s: read hung (over %v)", s.key, downReadBound)
		case r.err == nil && r.sum != sums[s.key]:
			t.Errorf("%s: read returned wrong bytes", s.key)
		case r.err == nil && ended < upAt:
			t.Errorf("%s: read succeeded while the server was down", s.key)
		case r.err != nil && !r.isEIO():
			t.Errorf("%s: failed with %q, want EIO", s.key, r.msg)
		case r.err != nil:
			eio++
			if ended < upAt {
				eioInOutage++
			}
		}
	}
	t.Logf("outage %v: %d connections reset, %d of %d reads failed with EIO, %d of them before the server was back",
		upAt.Round(time.Millisecond), resets, eio, len(results), eioInOutage)
	// The streaming read and the first read started in the outage fail
	// before it ends: the daemon gives up in seconds, not minutes.
	if eioInOutage < 2 {
		t.Errorf("only %d reads failed with EIO within a %v outage", eioInOutage, outage)
	}

	// Back up: every file reads exactly through the same mount.
	w.proxy.SetFault(nil)
	for key, sum := range sums {
		if got := sha256Of(t, d.path(key)); got != sum {
			t.Errorf("%s after the outage: sha256 %s, want %s", key, got, sum)
		}
	}
	if d.logCount("stream.pdf", 1) == 0 {
		t.Error("no log line names the file whose read failed")
	}
}

// completedGETs are the object GETs that sent their whole body.
func completedGETs(p *testenv.Proxy) []testenv.Request {
	var out []testenv.Request
	for _, g := range p.GETs() {
		if g.Err == "" && g.Status/100 == 2 {
			out = append(out, g)
		}
	}
	return out
}
