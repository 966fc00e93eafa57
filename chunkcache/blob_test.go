package chunkcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestPinProtectsChunksUntilReleased(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(20, 3*testChunk+10)
	v := f.add("doc.pdf", data)
	c := openCache(t, t.TempDir(), f, 8*testChunk, 0)
	paths, release, err := c.Pin(context.Background(), v)
	if err != nil {
		t.Fatal(err)
	}
	var joined []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, b...)
	}
	if !bytes.Equal(joined, data) {
		t.Fatal("pinned files do not concatenate to the object")
	}
	churn := func() {
		for i := 0; i < 3; i++ {
			other := f.add(fmt.Sprintf("other%d", i), randomBytes(uint64(30+i), 4*testChunk))
			if _, err := io.ReadAll(io.NewSectionReader(readerAt{c, other}, 0, other.Size)); err != nil {
				t.Fatal(err)
			}
		}
	}
	churn()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("pinned chunk evicted: %v", err)
		}
	}
	release()
	release() // idempotent
	churn()
	gone := 0
	for _, p := range paths {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			gone++
		}
	}
	if gone == 0 {
		t.Fatal("released chunks were never evicted")
	}
	if b := c.Bytes(); b > 8*testChunk {
		t.Fatalf("cache holds %d bytes after release, bound %d", b, 8*testChunk)
	}
}

func TestPinRefusesObjectsTooLargeForTheCache(t *testing.T) {
	f := newFakeFetcher()
	v := f.add("huge.pdf", randomBytes(21, 5*testChunk))
	c := openCache(t, t.TempDir(), f, 8*testChunk, 0)
	if _, _, err := c.Pin(context.Background(), v); err == nil {
		t.Fatal("pinned an object larger than half the cache")
	}
	if f.total.Load() != 0 {
		t.Fatal("fetched chunks of an object it refused")
	}
}

func TestBlobsSurviveRestartAndAreBounded(t *testing.T) {
	f := newFakeFetcher()
	v := f.add("doc.pdf", randomBytes(22, 100))
	dir := t.TempDir()
	c := openCache(t, dir, f, 4*testChunk, 0)
	id := c.BlobID(v, "pages-1-2")
	if id == c.BlobID(v, "pages-1-3") || id == c.geo.chunkID(v, 0) {
		t.Fatal("blob ids collide")
	}
	if _, err := c.OpenBlob(id); !errors.Is(err, ErrNotCached) {
		t.Fatalf("missing blob: %v", err)
	}
	tmp, err := c.TempFile()
	if err != nil {
		t.Fatal(err)
	}
	content := randomBytes(23, 5000)
	tmp.Write(content)
	tmp.Close()
	if n, err := c.AdmitBlob(id, tmp.Name()); err != nil || n != 5000 {
		t.Fatalf("admit: %d, %v", n, err)
	}
	c.Close()

	c2 := openCache(t, dir, f, 4*testChunk, 0)
	bf, err := c2.OpenBlob(id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(bf)
	bf.Close()
	if !bytes.Equal(got, content) {
		t.Fatal("blob content differs after restart")
	}
	other := f.add("other", randomBytes(24, 6*testChunk))
	if _, err := io.ReadAll(io.NewSectionReader(readerAt{c2, other}, 0, other.Size)); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.OpenBlob(id); !errors.Is(err, ErrNotCached) {
		t.Fatalf("blob survived churn past the bound: %v", err)
	}
}

func TestBlobAdmittedTwiceKeepsOneFile(t *testing.T) {
	f := newFakeFetcher()
	v := f.add("doc.pdf", randomBytes(25, 100))
	dir := t.TempDir()
	c := openCache(t, dir, f, 4*testChunk, 0)
	id := c.BlobID(v, "pages-1-1")
	for i := 0; i < 2; i++ {
		tmp, err := c.TempFile()
		if err != nil {
			t.Fatal(err)
		}
		tmp.Write(randomBytes(uint64(26+i), 24)) // same id, other bytes
		tmp.Close()
		if _, err := c.AdmitBlob(id, tmp.Name()); err != nil {
			t.Fatal(err)
		}
	}
	if b := c.Bytes(); b != 24 {
		t.Fatalf("index holds %d bytes, want 24", b)
	}
	des, _ := os.ReadDir(filepath.Join(dir, "chunks"))
	if len(des) != 1 {
		t.Fatalf("%d files for one blob", len(des))
	}
}
