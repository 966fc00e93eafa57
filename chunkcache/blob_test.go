package chunkcache

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

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
	des, _ := os.ReadDir(filepath.Join(dir, "blobs"))
	if len(des) != 1 {
		t.Fatalf("%d files for one blob", len(des))
	}
}
