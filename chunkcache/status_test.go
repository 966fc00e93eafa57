package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestReadStatus(t *testing.T) {
	dir := t.TempDir()
	f := newFakeFetcher()
	a := f.add("a", randomBytes(1, 3*testChunk+5))
	b := f.add("b", randomBytes(2, testChunk))
	c := openCache(t, dir, f, 100*testChunk, 0)
	ctx := context.Background()
	if _, err := c.ReadAt(ctx, a, make([]byte, a.Size), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadAt(ctx, b, make([]byte, b.Size), 0); err != nil {
		t.Fatal(err)
	}
	// A blob is a file of its own.
	tmp, err := c.TempFile()
	if err != nil {
		t.Fatal(err)
	}
	tmp.Write([]byte("derived"))
	tmp.Close()
	if _, err := c.AdmitBlob(c.BlobID(a, "pages"), tmp.Name()); err != nil {
		t.Fatal(err)
	}

	st, err := ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Bytes as du counts them: objects' files are sparse, maps and blobs
	// take a block each.
	onDisk := duBytes(t, filepath.Join(dir, objectsDirName)) + duBytes(t, filepath.Join(dir, blobsDirName))
	want := Status{Entries: 3, Objects: 2, Blobs: 1, Bytes: onDisk, InUse: true}
	if st != want {
		t.Fatalf("status of an open cache: %+v, want %+v", st, want)
	}
	if st.Bytes < c.Bytes() || st.Bytes > c.Bytes()+6*4096 {
		t.Fatalf("status counts %d bytes, the cache %d", st.Bytes, c.Bytes())
	}

	c.Close()
	// Leftovers that the next start deletes are counted apart: a file of
	// the per-chunk layout, a map without its object's file, a blob cut
	// short, a temporary file.
	os.MkdirAll(filepath.Join(dir, "chunks"), 0o700)
	os.WriteFile(filepath.Join(dir, "chunks", fileName(fmt.Sprintf("%040x", 1), 3, 0)), []byte("xyz"), 0o600)
	os.WriteFile(filepath.Join(dir, "objects", fmt.Sprintf("%040x", 2)+".map"), []byte("xyz"), 0o600)
	os.WriteFile(filepath.Join(dir, "blobs", fileName(fmt.Sprintf("%040x", 3), 10, 0)), []byte("xyz"), 0o600)
	os.WriteFile(filepath.Join(dir, "tmp", tmpName(blobTmpPrefix, 123)), []byte("partial"), 0o600)
	// And files that are not s3docs's are counted, never as its own.
	os.WriteFile(filepath.Join(dir, "objects", "not-an-object"), []byte("xyz"), 0o600)
	st, err = ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	want = Status{Entries: 3, Objects: 2, Blobs: 1, Bytes: onDisk, Invalid: 3, Legacy: 1, InvalidBytes: 3 * 4096,
		TempFiles: 1, TempBytes: 4096, Foreign: 1, ForeignExample: "objects/not-an-object"}
	if st != want {
		t.Fatalf("status after Close: %+v, want %+v", st, want)
	}
}

func TestReadStatusRefusesOtherDirs(t *testing.T) {
	if _, err := ReadStatus(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing dir: %v", err)
	}
	if _, err := ReadStatus(t.TempDir()); !errors.Is(err, ErrNotCacheDir) {
		t.Fatalf("empty dir: %v", err)
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	if _, err := ReadStatus(file); err == nil {
		t.Fatal("a file is not a cache directory")
	}
}

func TestClear(t *testing.T) {
	dir := t.TempDir()
	f := newFakeFetcher()
	v := f.add("a", randomBytes(3, 2*testChunk+1))
	c := openCache(t, dir, f, 100*testChunk, 0)
	if _, err := c.ReadAt(context.Background(), v, make([]byte, v.Size), 0); err != nil {
		t.Fatal(err)
	}

	if _, err := Clear(dir); !errors.Is(err, ErrInUse) {
		t.Fatalf("Clear while the cache is open: %v, want ErrInUse", err)
	}
	if st, _ := ReadStatus(dir); st.Entries != 1 {
		t.Fatalf("a refused Clear removed chunks: %+v", st)
	}

	c.Close()
	os.WriteFile(filepath.Join(dir, "tmp", tmpName(fmt.Sprintf("%040x", 2), 1)), []byte("partial"), 0o600)
	onDisk := duBytes(t, filepath.Join(dir, objectsDirName))
	removed, err := Clear(dir)
	if err != nil {
		t.Fatal(err)
	}
	if removed.Entries != 1 || removed.Bytes != onDisk || removed.TempFiles != 1 {
		t.Fatalf("Clear reports %+v", removed)
	}
	st, err := ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st != (Status{}) {
		t.Fatalf("status after Clear: %+v", st)
	}
	for _, sub := range []string{"objects", "blobs", "tmp"} {
		if info, err := os.Stat(filepath.Join(dir, sub)); err != nil || !info.IsDir() {
			t.Fatalf("%s/ after Clear: %v", sub, err)
		}
	}

	// Clear released its lock: a cache opens there and fetches again.
	c = openCache(t, dir, f, 100*testChunk, 0)
	before := f.total.Load()
	if _, err := c.ReadAt(context.Background(), v, make([]byte, v.Size), 0); err != nil {
		t.Fatal(err)
	}
	if n := f.total.Load() - before; n != 3 {
		t.Fatalf("%d fetches after Clear, want 3", n)
	}
}

func TestClearRefusesOtherDirs(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "tmp", "precious")
	os.MkdirAll(filepath.Dir(keep), 0o700)
	os.WriteFile(keep, []byte("x"), 0o600)
	if _, err := Clear(dir); !errors.Is(err, ErrForeignFiles) {
		t.Fatalf("Clear of a directory that is no cache: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatal("Clear removed a file of a directory that is no cache")
	}
	empty := t.TempDir()
	if _, err := Clear(empty); !errors.Is(err, ErrNotCacheDir) {
		t.Fatalf("Clear of an empty directory: %v", err)
	}
	for _, d := range []string{dir, empty} {
		if _, err := os.Stat(filepath.Join(d, "lock")); err == nil {
			t.Fatal("Clear left a lock file in a directory that is no cache")
		}
	}
}
