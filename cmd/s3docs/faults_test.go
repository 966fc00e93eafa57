package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// Reads through a flaky server: 1 in 5 object GETs answered 500 or 503
// (SlowDown), 1 in 7 bodies cut halfway, 1 in 20 held 2 s before answering
// and 1 in 20 paused 2 s halfway through the body. Every byte read must be
// exact; every chunk file left on disk must hold what its name says and be
// one of the source's 8 MiB slices; nothing is left in tmp/; and a remount
// on the same cache serves everything again with no GET.
//
// 20 objects of 10–100 MiB (1.06 GiB, sizes not chunk-aligned): about a
// minute under -race on 2 cores. Only one object is in memory at a time.
func TestFlakyServerGivesExactBytes(t *testing.T) {
	w := newWorld(t)
	const objects = 20
	minSize, step := 10*mib, 4*mib+699*1024+13 // 10 MiB .. 99.9 MiB
	want := map[string]string{}
	sizes := map[string]int{}
	slices := map[chunkSig]chunkRef{}
	total := 0
	for i := range objects {
		key := fmt.Sprintf("flaky/obj-%02d.pdf", i)
		size := minSize + i*step + 3*i + 1
		// One object in memory at a time: made, summed, uploaded, dropped.
		data := testenv.RandomBytes(int64(100+i), size)
		sourceChunks(slices, key, data)
		w.s3.Put(t, testBucket, key, data)
		want[key], sizes[key] = sha256Hex(data), size
		total += size
	}
	t.Logf("%d objects, %d MiB, %d chunks", objects, total/mib, len(slices))

	var mu sync.Mutex
	r := rand.New(rand.NewPCG(7, 11))
	injected := map[string]int{}
	w.proxy.SetFault(func(req *http.Request) testenv.Fault {
		if !testenv.IsObjectGET(req) {
			return testenv.Fault{}
		}
		var from, thru int64
		if _, err := fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-%d", &from, &thru); err != nil {
			thru = -1
		}
		half := (thru - from + 1) / 2
		mu.Lock()
		defer mu.Unlock()
		switch n := r.IntN(140); {
		case n < 28: // 1 in 5
			injected["5xx"]++
			return testenv.Fault{Status: []int{500, 503}[n%2]} // 503 answers SlowDown
		case n < 48 && half > 0: // 1 in 7
			injected["cut"]++
			return testenv.Fault{CutAfter: half}
		case n < 55: // 1 in 20
			injected["delay"]++
			return testenv.Fault{Delay: 2 * time.Second}
		case n < 62 && half > 0: // 1 in 20
			injected["pause"]++
			return testenv.Fault{PauseAfter: half, Pause: 2 * time.Second}
		}
		return testenv.Fault{}
	})
	cacheDir := t.TempDir()
	d := w.mount(t, mountOpts{cacheDir: cacheDir, cacheSize: "4GiB"})
	start := time.Now()
	// Four readers at a time, like a few workers.
	var wg sync.WaitGroup
	keys := make(chan string)
	errs := make(chan error, objects)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range keys {
				if got := sha256Of(t, d.path(key)); got != want[key] {
					errs <- fmt.Errorf("%s: sha256 %s, want %s", key, got, want[key])
				}
			}
		}()
	}
	for key := range want {
		keys <- key
	}
	close(keys)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mu.Lock()
	t.Logf("read %d MiB in %v; injected %v over %d object GETs", total/mib, time.Since(start).Round(time.Millisecond),
		injected, len(w.proxy.GETs()))
	mu.Unlock()
	if injected["5xx"] == 0 || injected["cut"] == 0 || injected["pause"] == 0 {
		t.Fatalf("faults were not injected: %v", injected)
	}
	w.proxy.SetFault(nil)
	w.proxy.WaitIdle(10 * time.Second)
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// Every chunk file holds what its name says, and is a slice of a source.
	found := checkChunkFiles(t, cacheDir, slices)
	if len(found) != len(slices) {
		t.Errorf("%d of %d chunks cached (the cache is larger than the data)", len(found), len(slices))
	}
	if tmps := tmpFiles(t, cacheDir); len(tmps) != 0 {
		t.Fatalf("temp files left: %v", tmps)
	}
	// And a remount serves everything from them.
	d2 := w.mount(t, mountOpts{cacheDir: cacheDir, cacheSize: "4GiB"})
	w.proxy.Reset()
	for key, sum := range want {
		if got := sha256Of(t, d2.path(key)); got != sum {
			t.Fatalf("%s from the cache: sha256 %s, want %s", key, got, sum)
		}
	}
	if n := len(w.proxy.GETs()); n != 0 {
		t.Fatalf("re-read from the cache made %d GETs", n)
	}
	t.Logf("%d chunk files verified against the source; remount re-read %d MiB with 0 GETs", len(found), total/mib)
}
