package main

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// readAtOutcome reads n bytes at off through f and classifies the result
// against the two versions: "v1", "v2", "EIO", or what else it was. A short
// read counts as the version its bytes are a prefix of.
func readAtOutcome(f *os.File, off int64, n int, v1, v2 []byte) string {
	b := make([]byte, n)
	m, err := f.ReadAt(b, off)
	b = b[:m]
	switch {
	case m == 0 && errors.Is(err, syscall.EIO):
		return "EIO"
	case m == 0:
		return "error " + err.Error()
	case bytes.Equal(b, v1[off:off+int64(m)]):
		return "v1"
	case v2 != nil && bytes.Equal(b, v2[off:off+int64(m)]):
		return "v2"
	}
	return "MIXED or wrong bytes"
}

// eventuallyEIO reads 4 KiB at off until the read fails with EIO, for at
// most 2 s (the page cache is dropped asynchronously), and returns the last
// outcome. Any outcome other than the old bytes or EIO ends it at once.
func eventuallyEIO(f *os.File, off int64, old []byte) string {
	var got string
	testenv.Eventually(2*time.Second, func() bool {
		got = readAtOutcome(f, off, 4096, old, nil)
		return got != "v1"
	})
	return got
}

// An object overwritten (new ETag, same size) while a handle has it open.
// The handle serves its own version (v1) until the daemon learns of the
// change; from then on every read of it fails with EIO, cached ranges
// included; no read ever returns v2 bytes, or a mix, through it. A new open
// reads v2 exactly, with every v2 chunk fetched by a GET pinned to the new
// ETag: v1's chunk files, still on disk, are never served for v2 (their
// names hash the version), and are left to the LRU.
// (TestOverwriteWhileOpen covers the first EIO; this test the rest.)
func TestOverwriteWhileOpenNeverMixes(t *testing.T) {
	w := newWorld(t)
	size := 3*testChunkSize + 5
	v1 := testenv.RandomBytes(300, size)
	v2 := testenv.RandomBytes(301, size)
	etag1 := w.s3.Put(t, testBucket, "doc.pdf", v1)
	cacheDir := t.TempDir()
	d := w.mount(t, mountOpts{cacheDir: cacheDir, extra: []string{"--read-ahead", "0"}})
	f, err := os.Open(d.path("doc.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := readAtOutcome(f, 0, 4096, v1, v2); got != "v1" {
		t.Fatalf("first read: %s", got)
	}
	etag2 := w.s3.Put(t, testBucket, "doc.pdf", v2)
	if etag1 == etag2 {
		t.Fatal("same ETag for other bytes")
	}
	// A read is answered as soon as its bytes arrive: let chunk 0 finish.
	w.proxy.WaitIdle(10 * time.Second)
	w.proxy.Reset()

	// Chunk 0 is cached (the page cache holds only the first pages): the
	// handle still serves v1, the version it opened, with no GET.
	if got := readAtOutcome(f, 4*mib, 64<<10, v1, v2); got != "v1" {
		t.Fatalf("cached range before the change is known: %s, want v1", got)
	}
	if n := len(w.proxy.GETs()); n != 0 {
		t.Fatalf("a cached range made %d GETs", n)
	}
	// A read across the end of chunk 0 into chunk 1, which is not cached:
	// the GET for chunk 1 carries v1's ETag and fails; the read returns at
	// most v1 bytes of chunk 0, never any of v2.
	if got := readAtOutcome(f, testChunkSize-8192, 16384, v1, v2); got != "v1" && got != "EIO" {
		t.Fatalf("read across the cached end of chunk 0: %s", got)
	}
	if got := readAtOutcome(f, 2*testChunkSize+100, 4096, v1, v2); got != "EIO" {
		t.Fatalf("uncached range after the change: %s, want EIO", got)
	}
	for _, g := range w.proxy.GETs() {
		if g.IfMatch != etag1 || g.Status != 412 {
			t.Errorf("GET through the old handle: If-Match %s, status %d; want %s and 412", g.IfMatch, g.Status, etag1)
		}
	}
	// Now the daemon knows: cached ranges fail too, on disk or in the
	// kernel's page cache (at 0).
	for _, off := range []int64{6 * mib, 0} {
		if got := eventuallyEIO(f, off, v1); got != "EIO" {
			t.Fatalf("cached range at %d once the change is known: %s, want EIO", off, got)
		}
	}

	// A new open reads v2, all of it fetched under v2's ETag.
	w.proxy.Reset()
	g, err := os.Open(d.path("doc.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	all := make([]byte, size+1)
	n, _ := g.ReadAt(all, 0)
	if n != size || !bytes.Equal(all[:n], v2) {
		t.Fatalf("new open read %d bytes, equal to v2: %v", n, bytes.Equal(all[:min(n, size)], v2[:min(n, size)]))
	}
	w.proxy.WaitIdle(10 * time.Second)
	var ranges []string
	for _, g := range w.proxy.GETs() {
		if g.IfMatch != etag2 || g.Status != 206 {
			t.Errorf("GET for the new open: If-Match %s, status %d", g.IfMatch, g.Status)
		}
		ranges = append(ranges, g.Range)
	}
	slices.Sort(ranges)
	var want []string
	for i := range 4 {
		want = append(want, chunkRef{"doc.pdf", i}.rangeHeader(size))
	}
	slices.Sort(want)
	if !slices.Equal(ranges, want) {
		t.Errorf("new open fetched %v, want every chunk of v2 once: %v", ranges, want)
	}
	// The old handle, still open, keeps failing; the new one keeps working.
	if got := readAtOutcome(f, 100, 4096, v1, v2); got != "EIO" {
		t.Errorf("old handle after a new open: %s, want EIO", got)
	}
	if got := readAtOutcome(g, 100, 4096, v1, v2); got != "v2" {
		t.Errorf("new handle: %s, want v2", got)
	}
	f.Close()
	g.Close()
	// What the cache holds: v2's four chunks, and nothing of v1, whose
	// chunks were discarded once the daemon learned it was gone.
	sigs := map[chunkSig]chunkRef{}
	sourceChunks(sigs, "v1", v1)
	sourceChunks(sigs, "v2", v2)
	found := checkChunkFiles(t, cacheDir, sigs)
	var held []string
	for ref := range found {
		held = append(held, ref.String())
	}
	slices.Sort(held)
	t.Logf("cache holds %v", held)
	for i := range 4 {
		if _, ok := found[chunkRef{"v2", i}]; !ok {
			t.Errorf("v2 chunk %d not cached", i)
		}
		if _, ok := found[chunkRef{"v1", i}]; ok {
			t.Errorf("v1 chunk %d still on disk after v1 was found gone", i)
		}
	}
}

// An object deleted while a handle has it open. As for an overwrite, the
// handle serves its version until the daemon learns it is gone (here: a GET
// answered 404), and then every read fails with EIO, cached ranges
// included. A new open fails with ENOENT. An object deleted without being
// read is dropped from listings once --metadata-ttl has passed.
func TestDeleteWhileOpen(t *testing.T) {
	w := newWorld(t)
	size := 3*testChunkSize + 5
	data := testenv.RandomBytes(310, size)
	w.s3.Put(t, testBucket, "dir/doc.pdf", data)
	w.s3.Put(t, testBucket, "dir/other.pdf", []byte("other"))
	w.s3.Put(t, testBucket, "dir/kept.pdf", []byte("kept"))
	const ttl = 2 * time.Second
	d := w.mount(t, mountOpts{extra: []string{"--read-ahead", "0", "--metadata-ttl", ttl.String()}})
	if names := readDirNames(t, d.path("dir")); !slices.Equal(names, []string{"doc.pdf", "kept.pdf", "other.pdf"}) {
		t.Fatalf("listing: %v", names)
	}
	f, err := os.Open(d.path("dir/doc.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := readAtOutcome(f, 0, 4096, data, nil); got != "v1" {
		t.Fatalf("first read: %s", got)
	}
	w.s3.Delete(t, testBucket, "dir/doc.pdf")
	w.s3.Delete(t, testBucket, "dir/other.pdf")
	deletedAt := time.Now()

	// Cached, before the daemon knows: served, the bytes of the version
	// opened.
	if got := readAtOutcome(f, 4*mib, 4096, data, nil); got != "v1" {
		t.Fatalf("cached range before the deletion is known: %s, want the old bytes", got)
	}
	// Not cached: the GET answers 404, the read EIO.
	w.proxy.WaitIdle(10 * time.Second)
	w.proxy.Reset()
	if got := readAtOutcome(f, 2*testChunkSize, 4096, data, nil); got != "EIO" {
		t.Fatalf("uncached range after the deletion: %s, want EIO", got)
	}
	if gets := w.proxy.GETs(); len(gets) == 0 || gets[0].Status != 404 {
		t.Fatalf("GETs for the uncached range: %+v", gets)
	}
	// Known now: cached ranges fail too, and keep failing, also those in
	// the kernel's page cache (at 100), which the daemon drops right after
	// the failed read.
	for _, off := range []int64{6 * mib, 100, testChunkSize + 10} {
		if got := eventuallyEIO(f, off, data); got != "EIO" {
			t.Errorf("read at %d once the deletion is known: %s, want EIO", off, got)
		}
	}
	if d.logCount("dir/doc.pdf", 1) == 0 {
		t.Error("no log line names the deleted key")
	}
	// A new open: ENOENT (the failed read dropped the cached listing).
	if _, err := os.Open(d.path("dir/doc.pdf")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("open after the deletion: %v, want ENOENT", err)
	}
	// other.pdf was never read: the listing may show it until the TTL ends,
	// and must not after. Not waiting for an event: the TTL passes, in the
	// daemon and in the kernel's caches (on the wall clock).
	time.Sleep(time.Until(deletedAt.Add(ttl + time.Second)))
	if names := readDirNames(t, d.path("dir")); !slices.Equal(names, []string{"kept.pdf"}) {
		t.Errorf("listing %v after the TTL, want [kept.pdf]", names)
	}
	if _, err := os.Stat(d.path("dir/other.pdf")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat of a deleted object after the TTL: %v, want ENOENT", err)
	}
	if b, err := os.ReadFile(d.path("dir/kept.pdf")); err != nil || string(b) != "kept" {
		t.Errorf("the other file: %q, %v", b, err)
	}
}
