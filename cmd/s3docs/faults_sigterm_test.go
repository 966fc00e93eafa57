package main

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// SIGTERM while six readers stream four objects (the server sends 1 MiB/s
// per GET, so the reads would take longer than the grace period): the
// daemon unmounts and exits 0 within its grace period plus slack, the
// readers end (with an error, or with exact bytes if they finished), none
// hangs, no temp file is left in the cache directory, and every chunk file
// on disk is sound.
func TestSIGTERMUnderLoad(t *testing.T) {
	w := newWorld(t)
	const objects = 4
	size := 6*testChunkSize - 999
	sums, slices := putObjects(t, w, "load", objects, size, 700)
	throttleGETs(w, 1*mib)
	cacheDir := t.TempDir()
	d := w.mount(t, mountOpts{cacheDir: cacheDir})

	var wg sync.WaitGroup
	var mu sync.Mutex
	var results []readResult
	for i := range 6 {
		key := fmt.Sprintf("load/obj-%d.pdf", i%objects)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := timedSum(d.path(key), 2*time.Minute)
			mu.Lock()
			defer mu.Unlock()
			results = append(results, r)
			if r.err == nil && r.sum != sums[key] {
				t.Errorf("%s: read to the end with wrong bytes", key)
			}
		}()
	}
	testenv.WaitFor(t, time.Minute, "4 GETs in flight", func() bool { return w.proxy.InFlight() >= 4 })
	// Not waiting for an event: the bytes flow to the readers for a
	// second, so that SIGTERM comes mid-stream.
	time.Sleep(time.Second)
	inFlight := w.proxy.InFlight()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	const bound = shutdownGrace + 5*time.Second
	select {
	case <-d.exited:
	case <-time.After(bound):
		t.Fatalf("daemon still running %v after SIGTERM:\n%s", bound, d.stderr.String())
	}
	took := time.Since(start)
	if d.exitCode != 0 {
		t.Errorf("exit code %d after SIGTERM", d.exitCode)
	}
	if mounted, _ := isMountPoint(d.mountpoint); mounted {
		t.Error("still mounted after the daemon exited")
	}
	wg.Wait()
	failed := 0
	for _, r := range results {
		if r.hung {
			t.Error("a reader hung after the daemon exited")
		}
		if r.err != nil {
			failed++
		}
	}
	leftovers := tmpFiles(t, cacheDir)
	found := checkChunkFiles(t, cacheDir, slices)
	t.Logf("SIGTERM with %d GETs in flight and 6 readers: exit %d after %v (grace %v); %d readers failed (e.g. %q); %d sound chunks on disk, %d temp files",
		inFlight, d.exitCode, took.Round(time.Millisecond), shutdownGrace, failed, firstMsg(results), len(found), len(leftovers))
	if len(leftovers) != 0 {
		t.Errorf("temp files left in the cache directory: %v", leftovers)
	}
	if names, err := os.ReadDir(d.mountpoint); err != nil || len(names) != 0 {
		t.Errorf("mount point after exit: %v, %v", names, err)
	}
}

func firstMsg(rs []readResult) string {
	for _, r := range rs {
		if r.msg != "" {
			return r.msg
		}
	}
	return ""
}
