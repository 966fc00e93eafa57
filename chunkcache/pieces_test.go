package chunkcache

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"s3docs/internal/object"
)

// A reader that keeps jumping fetches only the pieces its reads touch; the
// pieces serve any reader of that range afterwards, survive a restart, and
// go with their version.
func TestRandomReaderFetchesPieces(t *testing.T) {
	ps := pieceSizeFor(testChunk)
	if ps == 0 || testChunk%ps != 0 {
		t.Fatalf("piece size %d for chunks of %d", ps, testChunk)
	}
	f := newFakeFetcher()
	data := randomBytes(31, 4*testChunk+99)
	v := f.add("obj", data)
	dir := t.TempDir()
	c := openCache(t, dir, f, 100*testChunk, 0)
	r := c.NewReader(v)
	read := func(r interface {
		ReadAt(context.Context, []byte, int64) (int, error)
	}, off, n int64) {
		t.Helper()
		p := make([]byte, n)
		if _, err := r.ReadAt(context.Background(), p, off); err != nil || !bytes.Equal(p, data[off:off+n]) {
			t.Fatalf("read %d+%d: %v (bytes equal: %v)", off, n, err, bytes.Equal(p, data[off:off+n]))
		}
		waitDownloads(t, c)
	}

	// The first jump still fetches its chunk: it may begin a scan.
	read(r, 3*testChunk+100, 10)
	if f.callsFor("obj", 3*testChunk) != 1 {
		t.Fatal("first read did not fetch its chunk")
	}
	// The second makes the reader random: only the piece touched.
	read(r, testChunk+2*ps+100, 10)
	if got := f.callsFor("obj", testChunk+2*ps); got != 1 {
		t.Fatalf("piece fetched %d times, want 1", got)
	}
	if got := f.callsFor("obj", testChunk); got != 0 {
		t.Fatalf("random read fetched its whole chunk (%d GETs)", got)
	}
	// A read across two pieces fetches both.
	read(r, 2*testChunk+ps-5, 10)
	if f.callsFor("obj", 2*testChunk) != 1 || f.callsFor("obj", 2*testChunk+ps) != 1 {
		t.Fatal("a read across two pieces did not fetch exactly those two")
	}
	total := f.total.Load()
	if want := int64(4); total != want {
		t.Fatalf("%d GETs, want %d", total, want)
	}
	if got, want := c.Bytes(), testChunk+3*ps; got != want {
		t.Fatalf("cache holds %d bytes, want a chunk and three pieces (%d)", got, want)
	}

	// Any reader of a range the pieces hold is served from them.
	read(plainReader{c, v}, testChunk+2*ps, ps)
	if f.total.Load() != total {
		t.Fatal("a range held by pieces was fetched again")
	}
	// A range they do not cover, for a reader that is not random, is a
	// whole chunk.
	read(plainReader{c, v}, testChunk, testChunk)
	if f.callsFor("obj", testChunk) != 1 {
		t.Fatal("a sequential read of a chunk did not fetch the chunk")
	}

	// Restart: the pieces are reused, checksums checked on first read.
	c.Close()
	c2 := openCache(t, dir, f, 100*testChunk, 0)
	before := f.total.Load()
	p := make([]byte, 10)
	if _, err := c2.ReadAt(context.Background(), v, p, 2*testChunk+ps-5); err != nil || !bytes.Equal(p, data[2*testChunk+ps-5:2*testChunk+ps+5]) {
		t.Fatalf("read from pieces after a restart: %v", err)
	}
	if f.total.Load() != before {
		t.Fatal("pieces were not reused after a restart")
	}

	// Discard drops pieces with the chunks.
	c2.Discard(v)
	if got := c2.Bytes(); got != 0 {
		t.Fatalf("%d bytes left after Discard", got)
	}
	if des, _ := os.ReadDir(filepath.Join(dir, "objects")); len(des) != 0 {
		t.Fatalf("%d files left after Discard", len(des))
	}
}

// plainReader reads through Cache.ReadAt, with no access pattern.
type plainReader struct {
	c *Cache
	v object.Version
}

func (r plainReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return r.c.ReadAt(ctx, r.v, p, off)
}

// policyCache is a Cache with only what the policy of what to fetch looks
// at: the geometry, the readahead distance, and what the disk holds.
func policyCache(readaheadChunks int64) *Cache {
	return &Cache{geo: newGeometry("test", testChunk), ahead: readahead{chunks: readaheadChunks},
		disk: &disk{idx: newIndex(1<<30, newGeometry("test", testChunk))}, downloads: &downloads{flights: map[string]*flight{}}}
}

// Which entries serve a read of one chunk: the chunk when it is held or
// being fetched; pieces when they are all held, or when the policy is to
// fetch pieces; else the chunk.
func TestEntriesFor(t *testing.T) {
	c := policyCache(0)
	v := object.Version{Key: "obj", ETag: `"e"`, Size: 3*testChunk + 10}
	ps := c.geo.pieceSize
	chunk := func(idx int64) span { return c.geo.chunk(v, idx) }
	piece := func(idx, k int64) span { return c.geo.piece(v, idx, k) }
	admit := func(spans ...span) {
		for _, s := range spans {
			objectWith(c.disk.idx, s.obj, s.size, s.key)
		}
	}
	admit(piece(1, 0), piece(1, 1), piece(2, 0), chunk(0))
	for _, tc := range []struct {
		name        string
		idx, within int64
		n           int64
		miss        missPolicy
		want        []span
	}{
		{"chunk held", 0, 100, 10, fetchPieces, []span{chunk(0)}},
		{"pieces held", 1, ps - 5, 10, fetchChunks, []span{piece(1, 0), piece(1, 1)}},
		{"a piece missing", 2, ps - 5, 10, fetchChunks, []span{chunk(2)}},
		{"pieces fetched", 2, ps - 5, 10, fetchPieces, []span{piece(2, 0), piece(2, 1)}},
		{"last chunk's one piece", 3, 0, 10, fetchPieces, []span{piece(3, 0)}},
		{"nothing held", 3, 0, 10, fetchChunks, []span{chunk(3)}},
	} {
		got := c.entriesFor(nil, v, tc.idx, tc.within, tc.n, tc.miss)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: entries %v, want %v", tc.name, got, tc.want)
		}
	}
	// A chunk being fetched serves its range, pieces or not.
	c.downloads.flights[chunk(3).id] = newFlight()
	if got := c.entriesFor(nil, v, 3, 0, 10, fetchPieces); !slices.Equal(got, []span{chunk(3)}) {
		t.Errorf("chunk being fetched: entries %v, want the chunk", got)
	}
	if last := piece(3, 0); last.off != 3*testChunk || last.n != 10 {
		t.Fatalf("the last chunk's piece is %+v, want 10 bytes at %d", last, 3*testChunk)
	}
}

// A random reader whose read falls in a chunk that another reader is
// fetching waits for that fetch instead of fetching the piece again: with
// concurrent readers of one file, the kernel's reordered reads made one of
// them look random, and its pieces were fetched beside the chunks.
func TestRandomReaderJoinsAChunkBeingFetched(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(32, 4*testChunk)
	v := f.add("obj", data)
	c := openCache(t, t.TempDir(), f, 100*testChunk, 0)
	ps := pieceSizeFor(testChunk)

	// A reader made random by two jumps.
	r := c.NewReader(v)
	for _, off := range []int64{3*testChunk + 5, 5} {
		p := make([]byte, 10)
		if _, err := r.ReadAt(context.Background(), p, off); err != nil {
			t.Fatal(err)
		}
	}
	waitDownloads(t, c)
	// A sequential reader's fetch of chunk 1, held in progress.
	f.hold, f.holdAfter = make(chan struct{}), 10
	seqDone := make(chan error, 1)
	go func() {
		p := make([]byte, 10)
		_, err := plainReader{c, v}.ReadAt(context.Background(), p, testChunk)
		seqDone <- err
	}()
	for f.callsFor("obj", testChunk) == 0 {
		runtime.Gosched()
	}
	// The random reader reads inside chunk 1.
	got := make(chan error, 1)
	p := make([]byte, 10)
	off := testChunk + 3*ps + 7
	joins := c.Stats().Joins
	go func() {
		_, err := r.ReadAt(context.Background(), p, off)
		got <- err
	}()
	// Held until the read waits: on the chunk's fetch, or on a piece's.
	for c.Stats().Joins == joins && f.callsFor("obj", testChunk+3*ps) == 0 {
		runtime.Gosched()
	}
	close(f.hold)
	if err := <-got; err != nil || !bytes.Equal(p, data[off:off+10]) {
		t.Fatalf("random read in a chunk being fetched: %v", err)
	}
	if err := <-seqDone; err != nil {
		t.Fatal(err)
	}
	waitDownloads(t, c)
	if n := f.callsFor("obj", testChunk+3*ps); n != 0 {
		t.Fatalf("the piece was fetched %d times beside its chunk", n)
	}
	if n := f.callsFor("obj", testChunk); n != 1 {
		t.Fatalf("chunk 1 fetched %d times", n)
	}
}
