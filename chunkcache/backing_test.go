package chunkcache

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"s3docs/internal/object"
)

// readAll reads v whole through a Reader.
func readAll(t *testing.T, c *Cache, v object.Version) []byte {
	t.Helper()
	got, err := io.ReadAll(io.NewSectionReader(readerAt{c, v}, 0, v.Size))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A version's file is handed out (for FUSE passthrough) only once the
// cache holds all of it; it then holds exactly the version's bytes, and
// none of them is evicted while it is out, however the cache churns.
func TestBackingOfAWholeVersionIsPinned(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(50, 3*testChunk+77)
	v := f.add("doc", data)
	c := openCache(t, t.TempDir(), f, 8*testChunk, 0)
	r := c.NewReader(v)
	defer r.Close()
	if _, err := r.ReadAt(context.Background(), make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	waitDownloads(t, c)
	if r.Backing() != nil {
		t.Fatal("a backing file for a version the cache holds a chunk of")
	}
	readAll(t, c, v)
	waitDownloads(t, c)
	b := r.Backing()
	if b == nil {
		t.Fatal("no backing file for a version the cache holds whole")
	}
	if c.PinnedBytes() != v.Size || c.Stats().Backings != 1 {
		t.Fatalf("pinned %d bytes, %d backings; want %d, 1", c.PinnedBytes(), c.Stats().Backings, v.Size)
	}
	// Churn: other objects through the rest of the cache.
	for i := range 6 {
		other := f.add("other"+string(rune('a'+i)), randomBytes(uint64(60+i), 2*testChunk))
		readAll(t, c, other)
		waitDownloads(t, c)
		if c.Bytes() > c.Limit() {
			t.Fatalf("cache holds %d bytes, bound %d", c.Bytes(), c.Limit())
		}
	}
	got, err := io.ReadAll(io.NewSectionReader(b, 0, v.Size+1))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the backing file holds other bytes than the version after churn (%v)", err)
	}
	if info, _ := b.Stat(); info.Size() != v.Size {
		t.Fatalf("the backing file is %d bytes, the version %d", info.Size(), v.Size)
	}
}

// Pinned versions stay within half the bound: past that, no backing file
// (the open is served by the daemon). A second open of a pinned version
// gets its file too.
func TestBackingWithinHalfTheBound(t *testing.T) {
	f := newFakeFetcher()
	a := f.add("a", randomBytes(51, 3*testChunk))
	b := f.add("b", randomBytes(52, 3*testChunk))
	c := openCache(t, t.TempDir(), f, 10*testChunk, 0)
	readAll(t, c, a)
	readAll(t, c, b)
	waitDownloads(t, c)
	ra, rb, ra2 := c.NewReader(a), c.NewReader(b), c.NewReader(a)
	if ra.Backing() == nil {
		t.Fatal("no backing file for a, within half the bound")
	}
	if rb.Backing() != nil {
		t.Fatal("a backing file for b, past half the bound")
	}
	if ra2.Backing() == nil {
		t.Fatal("no backing file for a second reader of a pinned version")
	}
	ra.Close()
	ra2.Close()
	if c.PinnedBytes() != 0 {
		t.Fatalf("%d bytes pinned after every reader closed", c.PinnedBytes())
	}
	if rb.Backing() == nil {
		t.Fatal("no backing file for b once a is unpinned")
	}
	rb.Close()
}

// A file once handed to the kernel is never punched (a program may keep it
// mapped after its last handle is closed): when its turn comes it goes
// whole, and whoever has it open still reads the version. This is recorded
// in its map, for the next daemon too; after a restart, its entries are
// checked by a read through the cache before it is handed out again.
func TestExportedFileGoesWhole(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(53, 3*testChunk)
	v := f.add("doc", data)
	dir := t.TempDir()
	c := openCache(t, dir, f, 8*testChunk, 0)
	readAll(t, c, v)
	waitDownloads(t, c)
	r := c.NewReader(v)
	kernel, err := os.Open(r.Backing().Name()) // what the kernel keeps
	if err != nil {
		t.Fatal(err)
	}
	defer kernel.Close()
	r.Close()
	c.Close()

	c = openCache(t, dir, f, 8*testChunk, 0)
	r = c.NewReader(v)
	if r.Backing() != nil {
		t.Fatal("a file handed out after a restart before its entries were checked")
	}
	readAll(t, c, v) // checks them
	if r.Backing() == nil {
		t.Fatal("no backing file once its entries were checked")
	}
	r.Close()
	obj := filepath.Join(dir, "objects", c.geo.objectID(v))
	// Other objects push it out: its first chunk due takes the file whole.
	for i := range 4 {
		readAll(t, c, f.add("other"+string(rune('a'+i)), randomBytes(uint64(70+i), 2*testChunk)))
		waitDownloads(t, c)
	}
	if _, err := os.Stat(obj); !os.IsNotExist(err) {
		t.Fatalf("the exported file is still there after its chunks were evicted: %v", err)
	}
	got, err := io.ReadAll(kernel)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("an open exported file was changed by eviction (%v)", err)
	}
}
