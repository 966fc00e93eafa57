package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// noSpaceLog is the daemon's line when the cache's file system is full, and
// noSpaceInterval how often it may repeat (chunkcache's NoSpaceBackoff
// default, which is also how long reads bypass the cache after ENOSPC).
const (
	noSpaceLog      = "cache file system full"
	noSpaceInterval = 10 * time.Second
)

// The cache directory on a 48 MiB tmpfs that a filler file has all but
// filled, with --cache-size far larger: reads of a 64 MiB object (larger
// than the whole tmpfs) and of a 12 MiB one still return exact bytes,
// served without caching; the full disk is logged at most once per
// interval; the daemon keeps running. Once the filler is deleted, caching
// resumes: a re-read makes no GET.
func TestCacheDiskFull(t *testing.T) {
	w := newWorld(t)
	fsDir := t.TempDir()
	if out, err := testenv.Command(testenv.Tool(t, "mount"), "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", fsDir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := testenv.Command(testenv.Tool(t, "umount"), "-l", fsDir).CombinedOutput(); err != nil {
			t.Errorf("umount tmpfs: %v: %s", err, out)
		}
	})
	filler := filepath.Join(fsDir, "filler")
	testenv.WriteRandomFile(t, filler, 1, 44*mib) // 4 MiB left: not one chunk
	cacheDir := filepath.Join(fsDir, "cache")

	big := testenv.RandomBytes(500, 64*mib+3)
	small := testenv.RandomBytes(501, 12*mib+7)
	w.s3.Put(t, testBucket, "big.pdf", big)
	w.s3.Put(t, testBucket, "small.pdf", small)
	sums := map[string]string{"big.pdf": sha256Hex(big), "small.pdf": sha256Hex(small)}
	slices := map[chunkSig]chunkRef{}
	sourceChunks(slices, "big.pdf", big)
	sourceChunks(slices, "small.pdf", small)
	big, small = nil, nil

	d := w.mount(t, mountOpts{cacheDir: cacheDir, cacheSize: "1GiB"})
	start := time.Now()
	w.proxy.Reset()
	// Two readers at once: both exact.
	var wg sync.WaitGroup
	for key, sum := range sums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := sha256Of(t, d.path(key)); got != sum {
				t.Errorf("%s on a full cache disk: sha256 %s, want %s", key, got, sum)
			}
		}()
	}
	wg.Wait()
	// Then again and again for longer than the log interval, so that the
	// daemon meets the full disk again once its bypass ends.
	rounds := 1
	for time.Since(start) < noSpaceInterval+2*time.Second {
		dropPageCache(t)
		for key, sum := range sums {
			if got := sha256Of(t, d.path(key)); got != sum {
				t.Fatalf("%s read again on a full cache disk: sha256 %s, want %s", key, got, sum)
			}
		}
		rounds++
	}
	elapsed := time.Since(start)
	w.proxy.WaitIdle(10 * time.Second)
	fullGETs := len(w.proxy.GETs())
	logged := d.logCount(noSpaceLog, 1)
	allowed := int(elapsed/noSpaceInterval) + 1
	t.Logf("full disk: 2 objects read %d times (%d MiB) in %v with %d GETs; %q logged %d times (allowed %d)",
		rounds, rounds*(64+12), elapsed.Round(time.Millisecond), fullGETs, noSpaceLog, logged, allowed)
	if logged == 0 {
		t.Errorf("the full disk was not logged")
	}
	if logged > allowed {
		t.Errorf("the full disk was logged %d times in %v, at most once per %v", logged, elapsed, noSpaceInterval)
	}
	select {
	case <-d.exited:
		t.Fatalf("the daemon exited (%d) on a full disk", d.exitCode)
	default:
	}

	// Space returns: after the bypass interval, reads are cached again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Not waiting for an event: the uncached spell (noSpaceInterval) passes
	// in the daemon, on the wall clock.
	time.Sleep(noSpaceInterval + time.Second)
	dropPageCache(t)
	if got := sha256Of(t, d.path("small.pdf")); got != sums["small.pdf"] {
		t.Fatal("small.pdf after space returned: content differs")
	}
	w.proxy.WaitIdle(10 * time.Second)
	dropPageCache(t)
	w.proxy.Reset()
	if got := sha256Of(t, d.path("small.pdf")); got != sums["small.pdf"] {
		t.Fatal("small.pdf re-read: content differs")
	}
	if n := len(w.proxy.GETs()); n != 0 {
		t.Errorf("re-read of small.pdf after space returned made %d GETs: caching did not resume", n)
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	found := checkChunkFiles(t, cacheDir, slices)
	var held []string
	for ref := range found {
		held = append(held, ref.String())
	}
	t.Logf("cache holds %d chunks: %s", len(found), strings.Join(held, " "))
	if tmps := tmpFiles(t, cacheDir); len(tmps) != 0 {
		t.Errorf("temp files left: %v", tmps)
	}
}
