package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// 64 concurrent readers over 16 objects of 12–20 MiB (about 256 MiB) through
// a 64 MiB cache, so that chunks are evicted all the time: every reader gets
// exact bytes, the cache stays within its bound, and afterwards the daemon
// has as many goroutines and open files as before, give or take a few:
// counted before, after a first round and after a second one.
func TestManyReadersConstantEviction(t *testing.T) {
	w := newWorld(t)
	const objects, readers = 16, 64
	sums := map[string]string{}
	var keys []string
	for i := range objects {
		key := fmt.Sprintf("churn/obj-%02d.pdf", i)
		sums[key] = putRandom(t, w, key, int64(600+i), 12*mib+i*mib/2+i*7+1)
		keys = append(keys, key)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cacheDir := t.TempDir()
	d := w.mount(t, mountOpts{cacheDir: cacheDir, cacheSize: "64MiB", extra: []string{"--metrics-addr", addr, "--pprof"}})
	metrics := "http://" + addr + "/metrics"

	// settle closes the daemon's idle connections to the server (by
	// resetting them at the proxy: the HTTP client keeps idle ones for a
	// minute or more, each with two goroutines) and lets it quiesce, then
	// counts its goroutines and open files.
	settle := func() (goroutines int, fds []string) {
		w.proxy.WaitIdle(30 * time.Second)
		w.proxy.SetDown(true)
		w.proxy.SetDown(false)
		// The goroutines of the connections reset end as their reads
		// fail, which shows only in the count. (The scrape's own
		// connection is kept alive: it is one, the same each time.)
		n := testenv.Settled(t, 30*time.Second, time.Second, "the daemon's goroutines to settle", func() int64 {
			return int64(metricValue(t, scrape(t, metrics), "go_goroutines"))
		})
		return int(n), d.openFDs()
	}
	// One round: 64 readers at once, each must read exact bytes.
	round := func(n int) {
		dropPageCache(t) // every read reaches the daemon
		start := time.Now()
		w.proxy.Reset()
		var wg sync.WaitGroup
		errs := make(chan error, readers)
		for i := range readers {
			key := keys[i%objects]
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := timedSum(d.path(key), 5*time.Minute)
				switch {
				case r.err != nil:
					errs <- fmt.Errorf("round %d, reader %d of %s: %v %s", n, i, key, r.err, r.msg)
				case r.sum != sums[key]:
					errs <- fmt.Errorf("round %d, reader %d of %s: wrong bytes", n, i, key)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		w.proxy.WaitIdle(30 * time.Second)
		onDisk := cacheDiskBytes(t, cacheDir)
		evictions := metricValue(t, scrape(t, metrics), "s3docs_cache_evictions_total")
		t.Logf("round %d: %d readers of %d objects in %v: %d GETs, %v evictions so far, cache %d MiB on disk (bound 64 MiB)",
			n, readers, objects, time.Since(start).Round(time.Millisecond), len(w.proxy.GETs()), evictions, onDisk/mib)
		if onDisk > 64*mib {
			t.Errorf("cache holds %d bytes, bound %d", onDisk, 64*mib)
		}
		if evictions == 0 {
			t.Error("no eviction: the test did not churn the cache")
		}
	}
	// A first read warms up what is made once (pools, the metrics server).
	if got := sha256Of(t, d.path(keys[0])); got != sums[keys[0]] {
		t.Fatal("warm-up read: content differs")
	}
	g0, f0 := settle()
	// The first round also grows go-fuse's pool of splice pipes to the peak
	// number of concurrent reads: kept for reuse, two fds each, not a leak.
	// The second round must not grow anything.
	round(1)
	g1, f1 := settle()
	round(2)
	g2, f2 := settle()
	t.Logf("goroutines %d before, %d after round 1, %d after round 2; open fds %d, %d, %d",
		g0, g1, g2, len(f0), len(f1), len(f2))
	t.Logf("open fds after round 1: %v\nafter round 2: %v", f1, f2)
	const slack = 4
	if g1 > g0+slack || g2 > g1+slack {
		t.Errorf("goroutines grow: %d, %d, %d", g0, g1, g2)
		t.Logf("goroutines:\n%s", firstLines(scrapeText(t, "http://"+addr+"/debug/pprof/goroutine?debug=1"), 200))
	}
	if len(f2) > len(f1)+slack {
		t.Errorf("open files grow: %d after round 1, %d after round 2", len(f1), len(f2))
	}
	// The daemon holds the cache directory and its objects/, blobs/ and
	// tmp/ open (it locks the one and works through the others); no file
	// in them.
	for _, f := range f2 {
		if strings.HasPrefix(f, cacheDir+"/objects/") || strings.HasPrefix(f, cacheDir+"/blobs/") ||
			strings.HasPrefix(f, cacheDir+"/tmp/") {
			t.Errorf("chunk file still open after the load: %s", f)
		}
	}
}

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Logf("GET %s: %v", url, err)
		return ""
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
