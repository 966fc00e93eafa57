package chunkcache

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"s3docs/internal/object"
)

// fragmentChunk is the chunk size of the fragment tests: 128 fragments a
// chunk, so that a few are sparse and a sixteenth (8) dense.
const fragmentChunk = 128 * fragmentSize

func openFragmentCache(t *testing.T, dir string, f Fetcher, maxBytes int64) *Cache {
	t.Helper()
	c, err := Open(Options{
		Dir: dir, MaxBytes: maxBytes, ChunkSize: fragmentChunk, Namespace: "test",
		MaxConcurrentGets: 4, ReadTimeout: 10 * time.Second,
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A parser's small reads fetch the fragments they touch; prefetches fetch
// many at once, or the chunk where they are dense; what fragments hold
// serves any reader without a GET, survives a restart, and a chunk on disk
// is used instead of fragments.
func TestFragments(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(7, 4*fragmentChunk+100)
	v := f.add("doc.pdf", data)
	dir := t.TempDir()
	c := openFragmentCache(t, dir, f, 100*fragmentChunk)
	ctx := context.Background()
	check := func(read func(context.Context, object.Version, []byte, int64) (int, error), off, n int64) {
		t.Helper()
		p := make([]byte, n)
		if _, err := read(ctx, v, p, off); err != nil || !bytes.Equal(p, data[off:off+n]) {
			t.Fatalf("read %d+%d: %v (bytes equal: %v)", off, n, err, bytes.Equal(p, data[off:off+n]))
		}
		waitDownloads(t, c)
	}

	// A small read fetches its fragment; one across two, both.
	check(c.ReadFragments, 10*fragmentSize+100, 300)
	check(c.ReadFragments, 20*fragmentSize-10, 20)
	for _, off := range []int64{10, 19, 20} {
		if got := f.callsFor("doc.pdf", off*fragmentSize); got != 1 {
			t.Fatalf("fragment %d fetched %d times, want 1", off, got)
		}
	}
	if got := f.total.Load(); got != 3 {
		t.Fatalf("%d GETs, want 3", got)
	}
	// The fragments serve a plain read of their range, fetching nothing.
	check(c.ReadAt, 10*fragmentSize, fragmentSize)
	if got := f.total.Load(); got != 3 {
		t.Fatalf("a read of what a fragment holds made a GET (%d)", got)
	}

	// A sparse prefetch in chunk 1 fetches fragments; a dense one in chunk
	// 2 (16 offsets: 16 fragments, an eighth of it) fetches the chunk.
	sparse := []int64{fragmentChunk + 5*fragmentSize + 7, fragmentChunk + 90*fragmentSize}
	var dense []int64
	for k := range 16 {
		dense = append(dense, 2*fragmentChunk+int64(k)*8*fragmentSize)
	}
	if err := c.Prefetch(ctx, v, append(sparse, dense...), 512); err != nil {
		t.Fatal(err)
	}
	if got := f.total.Load(); got != 3+3 {
		t.Fatalf("prefetch made %d GETs, want 3 (two fragments, one chunk)", got-3)
	}
	if f.callsFor("doc.pdf", 2*fragmentChunk) != 1 || f.callsFor("doc.pdf", fragmentChunk+90*fragmentSize) != 1 {
		t.Fatal("prefetch did not fetch the dense chunk and the sparse fragments")
	}
	// What was prefetched serves the reads that follow; a prefetch of it
	// again fetches nothing.
	for _, off := range append(sparse, dense...) {
		check(c.ReadFragments, off, 100)
	}
	if err := c.Prefetch(ctx, v, append(sparse, dense...), 512); err != nil {
		t.Fatal(err)
	}
	if got := f.total.Load(); got != 6 {
		t.Fatalf("reads of prefetched ranges made %d more GETs", got-6)
	}
	// A chunk on disk serves small reads in it: no fragment is fetched.
	check(c.ReadFragments, 2*fragmentChunk+3*fragmentSize, 10)
	if got := f.total.Load(); got != 6 {
		t.Fatal("a small read in a cached chunk fetched a fragment")
	}
	// A read of more than a few fragments fetches its chunk.
	check(c.ReadFragments, 3*fragmentChunk, 8*fragmentSize)
	if f.callsFor("doc.pdf", 3*fragmentChunk) != 1 {
		t.Fatal("a long read did not fetch its chunk")
	}
	// Pieces: a short scan's read fetches the pieces it touches.
	ps := pieceSizeFor(fragmentChunk)
	check(c.ReadPieces, fragmentChunk-ps-10, 20)
	if f.callsFor("doc.pdf", fragmentChunk-2*ps) != 1 || f.callsFor("doc.pdf", fragmentChunk-ps) != 1 {
		t.Fatal("a read across two pieces did not fetch those two")
	}

	// Restart: the fragments are reused.
	total := f.total.Load()
	c.Close()
	c2 := openFragmentCache(t, dir, f, 100*fragmentChunk)
	p := make([]byte, 300)
	if _, err := c2.ReadFragments(ctx, v, p, 10*fragmentSize+100); err != nil || !bytes.Equal(p, data[10*fragmentSize+100:][:300]) {
		t.Fatalf("read after a restart: %v", err)
	}
	if f.total.Load() != total {
		t.Fatal("a fragment was fetched again after a restart")
	}
}

// The index keeps at most maxSmall small entries: fragments beyond it are
// evicted, least recently used first, though the byte bound has room.
func TestFragmentsAreBoundedInNumber(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(8, 64*fragmentChunk)
	v := f.add("doc.pdf", data)
	c := openFragmentCache(t, t.TempDir(), f, 1000*fragmentChunk)
	maxSmall := c.disk.idx.maxSmall
	if maxSmall != 16384 {
		t.Fatalf("maxSmall = %d for a bound of %d", maxSmall, 1000*fragmentChunk)
	}
	c.disk.idx.maxSmall = 10
	ctx := context.Background()
	var offs []int64
	for i := range int64(30) {
		offs = append(offs, i*2*fragmentChunk/3) // sparse: one or two a chunk
	}
	if err := c.Prefetch(ctx, v, offs, 100); err != nil {
		t.Fatal(err)
	}
	waitDownloads(t, c)
	if got := c.disk.idx.small.len; got != 10 {
		t.Fatalf("%d small entries, want 10", got)
	}
	if got, want := c.Bytes(), int64(10*fragmentSize); got != want {
		t.Fatalf("the cache holds %d bytes, want %d", got, want)
	}
	if got := smallEntriesFor(64 << 20); got != 4096 {
		t.Errorf("smallEntriesFor(64 MiB) = %d", got)
	}
	if got := smallEntriesFor(1 << 20); got != 1024 {
		t.Errorf("smallEntriesFor(1 MiB) = %d", got)
	}
}

// A prefetch's plan costs what its offsets cost, whatever the length of
// the reads it announces: reads longer than a few fragments fetch their
// chunks, and so do their prefetches, without listing their fragments. A
// worker's one prefetch frame of 4,096 offsets of 1 MiB listed a million
// fragments and hashed their names: 534 MiB allocated in the daemon.
func TestPrefetchPlanOfLongReads(t *testing.T) {
	c := openFragmentCache(t, t.TempDir(), newFakeFetcher(), 100*fragmentChunk)
	c.geo = newGeometry("test", 8<<20)
	v := object.Version{Key: "big.pdf", ETag: `"1"`, Size: 8 << 30}
	var offs []int64
	for i := range int64(4096) {
		offs = append(offs, i*(2<<20)+12345)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	want := c.prefetchPlan(v, offs, 1<<20)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("the plan allocated %d MiB", alloc>>20)
	}
	if len(want) != 1024 {
		t.Fatalf("%d entries planned, want the 1,024 chunks", len(want))
	}
	for i, s := range want {
		if s.off != int64(i)*(8<<20) || s.n != 8<<20 {
			t.Fatalf("entry %d: %d+%d, want chunk %d", i, s.off, s.n, i)
		}
	}
	// Short reads far apart are still fragments.
	if want := c.prefetchPlan(v, offs[:10], 512); len(want) != 10 || want[0].n != fragmentSize {
		t.Fatalf("short reads planned %d entries (%d bytes the first)", len(want), want[0].n)
	}
}

// The bound on small entries is for fragments: the splitter's page counts
// (a few bytes each) and small parts are not evicted by a walk's
// fragments, though the LRU may evict them for bytes. They were small
// entries like fragments: one walk of a big scattered PDF (3,400
// fragments) evicted the page counts of every other PDF from a 64 MiB
// cache (4,096 small entries), and every listing of those PDFs' parts
// then made a worker walk them again. After a restart, a blob found is
// counted as small until it is used.
func TestBlobsOutliveFragments(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(9, 64*fragmentChunk)
	v := f.add("doc.pdf", data)
	dir := t.TempDir()
	c := openFragmentCache(t, dir, f, 1000*fragmentChunk)
	const blobs = 20
	ids := make([]string, blobs)
	for i := range ids {
		ids[i] = c.BlobID(object.Version{Key: fmt.Sprintf("other-%d.pdf", i), ETag: `"1"`, Size: 1000}, "pagecount")
		tmp, err := c.TempFile()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(tmp, "%d\n", 100+i)
		tmp.Close()
		if _, err := c.AdmitBlob(ids[i], tmp.Name()); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	walk := func(c *Cache, seed int64) {
		t.Helper()
		var offs []int64
		for i := range int64(30) {
			offs = append(offs, i*2*fragmentChunk/3+seed*fragmentSize)
		}
		if err := c.Prefetch(ctx, v, offs, 100); err != nil {
			t.Fatal(err)
		}
		waitDownloads(t, c)
	}
	check := func(c *Cache, when string) {
		t.Helper()
		for i, id := range ids {
			bf, err := c.OpenBlob(id)
			if err != nil {
				t.Fatalf("%s: page count %d: %v", when, i, err)
			}
			bf.Close()
		}
	}
	c.disk.idx.maxSmall = 10
	walk(c, 0)
	if got := c.disk.idx.small.len; got != 10 {
		t.Fatalf("%d small entries, want 10 fragments", got)
	}
	check(c, "after a walk")
	c.Close()

	c2 := openFragmentCache(t, dir, f, 1000*fragmentChunk)
	c2.disk.idx.maxSmall = 10
	check(c2, "after a restart")
	walk(c2, 1)
	check(c2, "after a restart and a walk")
}
