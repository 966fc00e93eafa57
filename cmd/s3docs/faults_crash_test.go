package main

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// kill -9 of the daemon while eight readers stream six objects: the readers
// fail (ENOTCONN), none hangs; `fusermount3 -u` frees the mount point; a
// daemon restarted there on the same cache directory punches out the bytes
// of the downloads the kill cut short, reuses every chunk that was complete
// at the kill (no GET for its range), fetches only the others, and every
// byte re-read is exact.
func TestKill9DuringReadsThenRestart(t *testing.T) {
	w := newWorld(t)
	const objects = 6
	size := 5*testChunkSize + 12345 // 6 chunks, the last short
	sums, slices := putObjects(t, w, "crash", objects, size, 400)
	// 8 MiB/s per GET: about a second per chunk, so the kill finds some
	// chunks complete and others half-way written into their files.
	throttleGETs(w, 8*mib)
	cacheDir := t.TempDir()
	d := w.mount(t, mountOpts{cacheDir: cacheDir})
	mp := d.mountpoint

	var wg sync.WaitGroup
	var mu sync.Mutex
	var readers []readResult
	for i := range 8 {
		key := fmt.Sprintf("crash/obj-%d.pdf", i%objects)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := timedSum(d.path(key), 2*time.Minute)
			mu.Lock()
			readers = append(readers, r)
			mu.Unlock()
		}()
	}
	if !testenv.Eventually(time.Minute, func() bool { return chunkCount(cacheDir) >= 6 && w.proxy.InFlight() >= 4 }) {
		t.Fatalf("after a minute: %d chunks on disk, %d GETs in flight", chunkCount(cacheDir), w.proxy.InFlight())
	}
	inFlight := w.proxy.InFlight()
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	killedAt := time.Now()
	// What survived the kill: complete chunks (recorded in their objects'
	// maps), and the bytes of fetches cut short (recorded nowhere).
	complete := checkChunkFiles(t, cacheDir, slices)
	leftovers := unrecordedBytes(t, cacheDir)
	t.Logf("killed with %d GETs in flight: %d complete chunks of %d, %d bytes of fetches cut short", inFlight, len(complete), len(slices), leftovers)
	if len(complete) == 0 || len(complete) == len(slices) {
		t.Fatalf("%d of %d chunks complete at the kill: the test did not catch the daemon mid-read", len(complete), len(slices))
	}

	wg.Wait()
	for _, r := range readers {
		if r.hung {
			t.Errorf("a reader hung after the daemon was killed")
		} else if r.err == nil {
			t.Errorf("a reader read to the end through a killed daemon")
		}
	}
	t.Logf("all %d readers ended within %v of the kill; e.g. %q", len(readers), time.Since(killedAt).Round(time.Millisecond), readers[0].msg)

	// The dead mount is freed the way an operator would, and the mount
	// point is an empty directory again.
	if out, err := testenv.Command(testenv.Tool(t, "fusermount3"), "-u", mp).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u %s: %v: %s", mp, err, out)
	}
	if mounted, _ := isMountPoint(mp); mounted {
		t.Fatal("still mounted after fusermount3 -u")
	}
	if names, err := os.ReadDir(mp); err != nil || len(names) != 0 {
		t.Fatalf("mount point after fusermount3 -u: %v, %v", names, err)
	}

	// Restart on the same mount point and cache directory.
	w.proxy.SetFault(nil)
	w.proxy.WaitIdle(10 * time.Second)
	w.proxy.Reset()
	d2 := w.mountAt(t, mp, mountOpts{cacheDir: cacheDir})
	if tmps := tmpFiles(t, cacheDir); len(tmps) != 0 {
		t.Errorf("temp files after the restart: %v", tmps)
	}
	if extra := unrecordedBytes(t, cacheDir); extra != 0 {
		t.Errorf("after the restart, the objects' files take %d bytes more than their maps record", extra)
	}
	for key, sum := range sums {
		if got := sha256Of(t, d2.path(key)); got != sum {
			t.Errorf("%s after the restart: sha256 %s, want %s", key, got, sum)
		}
	}
	w.proxy.WaitIdle(10 * time.Second)
	fetched := map[string]int{}
	for _, g := range w.proxy.GETs() {
		fetched[g.Path+" "+g.Range]++
	}
	reused, refetched := 0, 0
	for _, ref := range slices {
		n := fetched["/"+testBucket+"/"+ref.key+" "+ref.rangeHeader(size)]
		if _, ok := complete[ref]; ok {
			reused++
			if n != 0 {
				t.Errorf("%v was complete at the kill, and fetched %d times after the restart", ref, n)
			}
		} else {
			refetched++
			if n != 1 {
				t.Errorf("%v was not complete at the kill, and fetched %d times after the restart", ref, n)
			}
		}
	}
	var ranges []string
	for r := range fetched {
		ranges = append(ranges, r)
	}
	sort.Strings(ranges)
	t.Logf("after the restart: %d chunks reused with no GET, %d fetched, %d GETs", reused, refetched, len(w.proxy.GETs()))
	if len(ranges) != refetched {
		t.Errorf("GETs after the restart: %v", ranges)
	}
	// Every chunk is now on disk, sound.
	if all := checkChunkFiles(t, cacheDir, slices); len(all) != len(slices) {
		t.Errorf("%d of %d chunks cached after the re-read", len(all), len(slices))
	}
}
