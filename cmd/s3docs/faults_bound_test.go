package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// Issue 14 finding 5: a disk full for a moment (another program's file)
// lowered the cache's bound until a restart (64 MiB became 48 MiB after one
// fill and free) while s3docs_cache_max_bytes still said 64 MiB. Now the
// metric shows the bound in force, lowered while the disk is full, and the
// bound comes back once there is room: the cache fills to --cache-size
// again.
func TestCacheBoundComesBackAfterDiskFull(t *testing.T) {
	w := newWorld(t)
	fsDir := t.TempDir()
	if out, err := testenv.Command(testenv.Tool(t, "mount"), "-t", "tmpfs", "-o", "size=96m,mode=0700", "tmpfs", fsDir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := testenv.Command(testenv.Tool(t, "umount"), "-l", fsDir).CombinedOutput(); err != nil {
			t.Errorf("umount tmpfs: %v: %s", err, out)
		}
	})
	const objects, bound = 10, 64 * mib
	sums := map[string]string{}
	keys := make([]string, objects)
	for i := range objects {
		keys[i] = fmt.Sprintf("doc-%d.pdf", i)
		sums[keys[i]] = putRandom(t, w, keys[i], int64(400+i), testChunkSize) // one chunk each
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d := w.mount(t, mountOpts{cacheDir: filepath.Join(fsDir, "cache"), cacheSize: "64MiB",
		extra: []string{"--metrics-addr", addr, "--read-ahead", "0"}})
	metric := func(name string) int64 {
		return int64(metricValue(t, scrape(t, "http://"+addr+"/metrics"), name))
	}
	read := func(key string) {
		t.Helper()
		if got := sha256Of(t, d.path(key)); got != sums[key] {
			t.Fatalf("%s: content differs", key)
		}
	}
	for _, key := range keys[:6] {
		read(key)
	}
	w.proxy.WaitIdle(10 * time.Second)

	// Another program takes every byte left.
	filler := filepath.Join(fsDir, "filler")
	fillDisk(t, filler)
	for _, key := range keys[6:8] {
		read(key) // served uncached; the fetch meets the full disk
	}
	lowered := metric("s3docs_cache_max_bytes")
	t.Logf("disk full: bound %d MiB, cache %d MiB", lowered/mib, metric("s3docs_cache_bytes")/mib)
	if lowered >= bound {
		t.Errorf("s3docs_cache_max_bytes %d while the disk is full: want the lowered bound in force", lowered)
	}

	// Room again: the bound comes back, and the cache fills to it.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Not waiting for an event: the uncached spell (noSpaceInterval) passes
	// in the daemon, on the wall clock.
	time.Sleep(noSpaceInterval + time.Second)
	for _, key := range keys {
		read(key)
	}
	w.proxy.WaitIdle(10 * time.Second)
	limit, cached := metric("s3docs_cache_max_bytes"), metric("s3docs_cache_bytes")
	t.Logf("room again: bound %d MiB, cache %d MiB (lowered bound was %d MiB)", limit/mib, cached/mib, lowered/mib)
	if limit != bound {
		t.Errorf("s3docs_cache_max_bytes %d once there is room again, want %d", limit, bound)
	}
	if cached <= lowered || cached > bound {
		t.Errorf("cache holds %d bytes after reading %d MiB: want more than the lowered bound %d, at most %d",
			cached, objects*testChunkSize/mib, lowered, bound)
	}
	// On disk: what the metric counts, and a map (a block) per object.
	if disk := cacheDiskBytes(t, filepath.Join(fsDir, "cache")); disk < cached || disk > cached+objects*4096 {
		t.Errorf("cache directory holds %d bytes, the metric says %d (and %d objects' maps)", disk, cached, objects)
	}
}

// fillDisk writes path until its file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	for len(buf) > 1 { // and the last bytes
		buf = buf[:len(buf)/2]
		f.Write(buf)
	}
}
