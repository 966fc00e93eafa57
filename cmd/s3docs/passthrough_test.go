package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"s3docs/chunkcache"
	"s3docs/internal/pdfgen"
	"s3docs/internal/testenv"
)

// FUSE passthrough on real mounts (issue 21). With passthrough on (the
// default, --passthrough=auto), a file the cache holds whole is read by the
// kernel from the cache's file: warm reads do not reach the daemon. With
// S3DOCS_TEST_PASSTHROUGH=off (scripts/test.sh's second run) the same tests
// check that every read goes through the daemon and all else holds.

// readMetrics are the daemon's counters this file looks at.
type readMetrics struct {
	reads, passOpens, pinned, evictions, badChunks, cached float64
}

func (d *daemon) readMetrics(t *testing.T, addr string) readMetrics {
	t.Helper()
	text := scrape(t, "http://"+addr+"/metrics")
	return readMetrics{
		reads:     metricValue(t, text, `s3docs_fuse_request_duration_seconds_count{op="read"}`),
		passOpens: metricValue(t, text, "s3docs_passthrough_opens_total"),
		pinned:    metricValue(t, text, "s3docs_cache_pinned_bytes"),
		evictions: metricValue(t, text, "s3docs_cache_evictions_total"),
		badChunks: metricValue(t, text, "s3docs_cache_bad_chunks_total"),
		cached:    metricValue(t, text, "s3docs_cache_bytes"),
	}
}

// pinnedSettles returns the daemon's pinned bytes once they are want, or
// what they are after 10 s. A file's handle is released after close(2)
// returns (the kernel sends RELEASE on its own time), so a reader that has
// exited may still pin its object for a moment.
func (d *daemon) pinnedSettles(t *testing.T, addr string, want float64) float64 {
	t.Helper()
	pinned := d.readMetrics(t, addr).pinned
	testenv.Eventually(10*time.Second, func() bool {
		pinned = d.readMetrics(t, addr).pinned
		return pinned == want
	})
	return pinned
}

// waitCached waits until the cache holds at least n bytes: a reader has its
// bytes a moment before the cache has recorded the chunk they came in, and
// a file passes through only once the cache holds every chunk of it.
func (d *daemon) waitCached(t *testing.T, addr string, n int) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("the cache to hold %d bytes", n), func() bool {
		return d.readMetrics(t, addr).cached >= float64(n)
	})
}

// A warm read of a file the cache holds whole, with the page cache dropped:
// no read reaches the daemon (its read counter does not move), and no GET
// is made. The first read, cold, goes through the daemon and fills the
// cache's file; a part, one whole file, passes through at once. With
// passthrough off, both reads reach the daemon.
func TestPassthroughWarmReadsSkipTheDaemon(t *testing.T) {
	w := newWorld(t)
	size := 5*testChunkSize + 4321
	sum := putRandom(t, w, "big.pdf", 900, size)
	w.s3.Put(t, testBucket, "doc.pdf", pdfgen.Bytes(pdfgen.Options{Pages: 12, Title: "doc"}))
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d := w.mount(t, mountOpts{extra: []string{"--metrics-addr", addr}})
	on := testenv.Passthrough()
	if n := d.logCount("FUSE passthrough on", 1); (n == 1) != on {
		t.Fatalf("passthrough on logged %d times, passthrough wanted %v", n, on)
	}
	if got := sha256Of(t, d.path("big.pdf")); got != sum {
		t.Fatal("cold read: content differs")
	}
	w.proxy.WaitIdle(10 * time.Second)
	d.waitCached(t, addr, size)
	dropPageCache(t)
	w.proxy.Reset()
	before := d.readMetrics(t, addr)
	if got := sha256Of(t, d.path("big.pdf")); got != sum {
		t.Fatal("warm read: content differs")
	}
	after := d.readMetrics(t, addr)
	if n := len(w.proxy.GETs()); n != 0 {
		t.Errorf("warm read made %d GETs", n)
	}
	reads := after.reads - before.reads
	t.Logf("warm read of %d MiB: %v FUSE reads reached the daemon, %v opens passed through",
		size/mib, reads, after.passOpens-before.passOpens)
	switch {
	case on && (reads != 0 || after.passOpens-before.passOpens != 1):
		t.Errorf("passthrough on: %v reads reached the daemon and %v opens passed through; want 0 and 1",
			reads, after.passOpens-before.passOpens)
	case !on && (reads == 0 || after.passOpens != 0):
		t.Errorf("passthrough off: %v reads reached the daemon, %v opens passed through", reads, after.passOpens)
	}
	if pinned := d.pinnedSettles(t, addr, 0); pinned != 0 {
		t.Errorf("%v bytes pinned with no file open", pinned)
	}

	part := d.path(".parts/doc.pdf/pages-0003-0005.pdf")
	first, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	dropPageCache(t)
	before = d.readMetrics(t, addr)
	again, err := os.ReadFile(part)
	if err != nil || !bytes.Equal(first, again) {
		t.Fatalf("part read again: %v, equal %v", err, bytes.Equal(first, again))
	}
	after = d.readMetrics(t, addr)
	if reads := after.reads - before.reads; on && reads != 0 || !on && reads == 0 {
		t.Errorf("part read with passthrough %v: %v reads reached the daemon", on, reads)
	}
}

// A chunk whose bytes rotted on disk while the daemon was stopped is
// detected on its first read after the start (the file is not handed to
// the kernel before every chunk of it was checked), dropped, fetched again
// with one GET, and never served. The next open passes through.
func TestPassthroughCorruptChunkRefetched(t *testing.T) {
	w := newWorld(t)
	size := 4*testChunkSize + 99
	data := testenv.RandomBytes(901, size)
	w.s3.Put(t, testBucket, "doc.pdf", data)
	cacheDir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	opts := mountOpts{cacheDir: cacheDir, extra: []string{"--metrics-addr", addr}}
	d := w.mount(t, opts)
	if got := sha256Of(t, d.path("doc.pdf")); got != sha256Hex(data) {
		t.Fatal("content differs")
	}
	w.proxy.WaitIdle(10 * time.Second)
	d.waitCached(t, addr, size)
	mp := d.mountpoint
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	ranges, err := chunkcache.ReadRanges(cacheDir)
	if err != nil || len(ranges) != 5 {
		t.Fatalf("cache holds %d ranges (%v), want 5 chunks", len(ranges), err)
	}
	rotten := 2*testChunkSize + 12345
	f, err := os.OpenFile(filepath.Join(cacheDir, ranges[0].File), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{data[rotten] ^ 0x5a}, int64(rotten))
	f.Close()

	dropPageCache(t)
	w.proxy.Reset()
	d = w.mountAt(t, mp, opts)
	if got := sha256Of(t, d.path("doc.pdf")); got != sha256Hex(data) {
		t.Fatal("served rotten bytes")
	}
	w.proxy.WaitIdle(10 * time.Second)
	gets := rangedGETs(t, w.proxy)
	want := "/" + testBucket + "/doc.pdf " + chunkRef{"doc.pdf", 2}.rangeHeader(size)
	if len(gets) != 1 || gets[want] != 1 {
		t.Fatalf("GETs after the restart: %v, want chunk 2 once", gets)
	}
	m := d.readMetrics(t, addr)
	if m.badChunks != 1 || m.passOpens != 0 {
		t.Fatalf("after the restart: %v bad chunks, %v passthrough opens; want 1 and 0 (the first open checks)", m.badChunks, m.passOpens)
	}
	d.waitCached(t, addr, size)
	dropPageCache(t)
	if got := sha256Of(t, d.path("doc.pdf")); got != sha256Hex(data) {
		t.Fatal("content differs on the next open")
	}
	if m := d.readMetrics(t, addr); testenv.Passthrough() && m.passOpens != 1 {
		t.Fatalf("the next open, every chunk checked: %v passthrough opens, want 1", m.passOpens)
	}
}

// An object overwritten while a handle of the old version is open with
// passthrough: that handle reads its version, whole (the kernel reads the
// file it was given, which nothing changes); an open of the new version
// waits (EBUSY) until it is closed, and then reads the new version exactly,
// fetched under the new ETag. No read through any handle mixes versions.
func TestPassthroughOverwriteNeverMixes(t *testing.T) {
	w := newWorld(t)
	size := 2*testChunkSize + 77
	v1 := testenv.RandomBytes(902, size)
	v2 := testenv.RandomBytes(903, size)
	w.s3.Put(t, testBucket, "doc.pdf", v1)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d := w.mount(t, mountOpts{extra: []string{"--metadata-ttl", "0", "--metrics-addr", addr}})
	if got := sha256Of(t, d.path("doc.pdf")); got != sha256Hex(v1) {
		t.Fatal("content differs")
	}
	w.proxy.WaitIdle(10 * time.Second)
	d.waitCached(t, addr, size)
	dropPageCache(t)
	old, err := os.Open(d.path("doc.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	etag2 := w.s3.Put(t, testBucket, "doc.pdf", v2)
	w.proxy.Reset()
	_, err = os.ReadFile(d.path("doc.pdf")) // its lookup sees v2 (TTL 0)
	on := testenv.Passthrough()
	switch {
	case on && !errors.Is(err, syscall.EBUSY):
		t.Fatalf("open of the new version while the old one passes through: %v, want EBUSY", err)
	case !on && err != nil:
		t.Fatalf("open of the new version: %v", err)
	}
	// The old handle: its version whole with passthrough, else EIO (the
	// daemon knows it is gone); never v2.
	for _, off := range []int64{0, testChunkSize + 5, int64(size) - 4096} {
		got := readAtOutcome(old, off, 4096, v1, v2)
		if on && got != "v1" || !on && got != "v1" && got != "EIO" {
			t.Fatalf("old handle at %d: %s", off, got)
		}
	}
	old.Close()
	var got []byte
	// The kernel releases a closed file asynchronously: EBUSY until then.
	testenv.Eventually(5*time.Second, func() bool {
		got, err = os.ReadFile(d.path("doc.pdf"))
		return !errors.Is(err, syscall.EBUSY)
	})
	if err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("the new version once the old handle is closed: %v, equal %v", err, bytes.Equal(got, v2))
	}
	w.proxy.WaitIdle(10 * time.Second)
	for _, g := range w.proxy.GETs() {
		if g.IfMatch != etag2 {
			t.Errorf("GET for the new version with If-Match %s, want %s", g.IfMatch, etag2)
		}
	}
}

// 64 readers of 8 objects through a cache smaller than the objects, with
// passthrough handles of two of them open and read all along: every reader
// gets exact bytes, the passthrough handles too (their objects are pinned:
// none of their chunks is evicted meanwhile), and the cache keeps its bound
// on disk, pinned objects included.
func TestPassthroughHandlesDuringEviction(t *testing.T) {
	w := newWorld(t)
	const objects, readers = 8, 64
	size := 11*mib + 3333 // two of them fit in half the bound: both pinned
	sums := map[string]string{}
	var keys []string
	for i := range objects {
		key := fmt.Sprintf("evict/obj-%d.pdf", i)
		sums[key] = putRandom(t, w, key, int64(910+i), size+i*4096)
		keys = append(keys, key)
	}
	const bound = 48 * mib
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cacheDir := t.TempDir()
	d := w.mount(t, mountOpts{cacheDir: cacheDir, cacheSize: "48MiB", extra: []string{"--metrics-addr", addr}})
	on := testenv.Passthrough()
	// Two objects read whole, then held open: with passthrough, pinned.
	var held []*os.File
	for i, key := range keys[:2] {
		if got := sha256Of(t, d.path(key)); got != sums[key] {
			t.Fatalf("%s differs", key)
		}
		w.proxy.WaitIdle(10 * time.Second)
		d.waitCached(t, addr, (i+1)*size+i*4096)
		f, err := os.Open(d.path(key))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		held = append(held, f)
	}
	m := d.readMetrics(t, addr)
	if on && (m.passOpens != 2 || m.pinned != float64(2*size+4096)) {
		t.Fatalf("two whole objects opened: %v passthrough opens, %v bytes pinned; want 2 and %d", m.passOpens, m.pinned, 2*size+4096)
	}
	dropPageCache(t)

	stop := make(chan struct{})
	var heldErr error
	var heldReads int
	var wg sync.WaitGroup
	wg.Add(1)
	heldData := [][]byte{testenv.RandomBytes(910, size), testenv.RandomBytes(911, size+4096)}
	go func() { // the held handles read all along
		defer wg.Done()
		got := make([]byte, size+4096)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			f, key, data := held[i%2], keys[i%2], heldData[i%2]
			got := got[:len(data)]
			if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
				heldErr = fmt.Errorf("held handle of %s: %v, equal %v", key, err, bytes.Equal(got, data))
				return
			}
			heldReads++
		}
	}()
	errs := make(chan error, readers)
	var rwg sync.WaitGroup
	for i := range readers {
		key := keys[i%objects]
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			r := timedSum(d.path(key), 5*time.Minute)
			switch {
			case r.err != nil:
				errs <- fmt.Errorf("reader %d of %s: %v %s", i, key, r.err, r.msg)
			case r.sum != sums[key]:
				errs <- fmt.Errorf("reader %d of %s: wrong bytes", i, key)
			}
		}()
	}
	rwg.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if heldErr != nil {
		t.Fatal(heldErr)
	}
	w.proxy.WaitIdle(30 * time.Second)
	m = d.readMetrics(t, addr)
	onDisk := cacheDiskBytes(t, cacheDir)
	t.Logf("%d readers of %d objects, %d reads of the held handles: %v evictions, %v passthrough opens, %v bytes pinned, cache %d MiB on disk (bound %d MiB)",
		readers, objects, heldReads, m.evictions, m.passOpens, m.pinned, onDisk/mib, bound/mib)
	if m.evictions == 0 {
		t.Error("no eviction: the test did not churn the cache")
	}
	// Each object's map takes a block, and its short last chunk one more.
	if slack := int64(objects * 2 * 4096); onDisk > bound+slack {
		t.Errorf("cache takes %d bytes on disk, bound %d", onDisk, bound)
	}
	if on {
		if pinned := d.pinnedSettles(t, addr, float64(2*size+4096)); pinned != float64(2*size+4096) {
			t.Errorf("%v bytes pinned with the two handles open, want %d", pinned, 2*size+4096)
		}
	}
	for _, f := range held {
		f.Close()
	}
}
