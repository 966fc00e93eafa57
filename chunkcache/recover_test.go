package chunkcache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

// The cache directory deleted under a running cache: reads go on (cached
// ones are fetched again), the directory is made again and locked, so a
// second cache on the path is refused, and that is logged once.
func TestDirDeletedWhileInUse(t *testing.T) {
	f := newFakeFetcher()
	a := f.add("a", randomBytes(40, 2*testChunk+3))
	b := f.add("b", randomBytes(41, testChunk+5))
	dir := filepath.Join(t.TempDir(), "cache")
	var logs testenv.LockedBuffer
	c, err := Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: dir, MaxBytes: 100 * testChunk, ChunkSize: testChunk,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	read := func(v object.Version) {
		t.Helper()
		got := make([]byte, v.Size)
		if _, err := c.ReadAt(context.Background(), v, got, 0); err != nil {
			t.Fatalf("read %s: %v", v.Key, err)
		}
		if !bytes.Equal(got, f.objects[v.Key]) {
			t.Fatalf("read %s: wrong bytes", v.Key)
		}
	}
	read(a)
	waitDownloads(t, c)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	read(b) // not cached: its download finds the directory gone
	read(a) // cached in the deleted directory: fetched again
	waitDownloads(t, c)
	if st, err := ReadStatus(dir); err != nil || st.Objects != 2 || c.Bytes() != a.Size+b.Size || !st.InUse {
		t.Fatalf("directory made again: %+v, %v, %d bytes indexed; want both objects, whole, in use", st, err, c.Bytes())
	}
	if _, err := Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: dir, MaxBytes: 100 * testChunk, ChunkSize: testChunk}, f); !errors.Is(err, ErrInUse) {
		t.Fatalf("second cache on the directory made again: %v, want ErrInUse", err)
	}
	if n := strings.Count(logs.String(), "made it again"); n != 1 {
		t.Fatalf("logged %d times that the directory was made again, want 1:\n%s", n, logs.String())
	}
	// The watcher needs no read to notice.
	os.RemoveAll(dir)
	testenv.WaitFor(t, 3*dirCheckEvery, "the directory made again", func() bool {
		info, err := os.Stat(filepath.Join(dir, "objects"))
		return err == nil && info.IsDir()
	})
	if _, err := Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: dir, MaxBytes: 100 * testChunk, ChunkSize: testChunk}, f); !errors.Is(err, ErrInUse) {
		t.Fatalf("second cache after the watcher made the directory again: %v, want ErrInUse", err)
	}
}

// The directory deleted and taken by another cache before this one
// noticed: this one serves reads uncached, says so once, never touches the
// other's files, and takes the directory back once the other is gone.
func TestDirTakenByAnotherCache(t *testing.T) {
	f := newFakeFetcher()
	a := f.add("a", randomBytes(42, 2*testChunk))
	b := f.add("b", randomBytes(43, 3*testChunk))
	dir := filepath.Join(t.TempDir(), "cache")
	var logs testenv.LockedBuffer
	c, err := Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: dir, MaxBytes: 100 * testChunk, ChunkSize: testChunk,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.ReadAt(context.Background(), a, make([]byte, a.Size), 0); err != nil {
		t.Fatal(err)
	}
	waitDownloads(t, c)
	os.RemoveAll(dir)
	other, err := Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: dir, MaxBytes: 100 * testChunk, ChunkSize: testChunk}, f)
	if err != nil {
		t.Fatalf("a second cache on the path of a deleted one: %v", err)
	}
	if _, err := other.ReadAt(context.Background(), a, make([]byte, a.Size), 0); err != nil {
		t.Fatal(err)
	}
	waitDownloads(t, other)
	before := snapshot(t, dir)
	for range 3 {
		got := make([]byte, b.Size)
		if _, err := c.ReadAt(context.Background(), b, got, 0); err != nil || !bytes.Equal(got, f.objects["b"]) {
			t.Fatalf("read while the directory is another's: %v", err)
		}
	}
	waitDownloads(t, c)
	if after := snapshot(t, dir); after != before {
		t.Fatalf("the other cache's directory was changed:\nbefore %s\nafter  %s", before, after)
	}
	if c.Stats().Uncached == 0 {
		t.Fatal("reads were not served uncached")
	}
	if n := strings.Count(logs.String(), "serving reads uncached"); n != 1 {
		t.Fatalf("logged %d times that reads are uncached, want 1:\n%s", n, logs.String())
	}
	// The other one goes away: this one takes the directory back.
	other.Close()
	testenv.WaitFor(t, 3*dirCheckEvery, "the directory taken back", func() bool { return !c.disk.lost.Load() })
	if _, err := c.ReadAt(context.Background(), b, make([]byte, b.Size), 0); err != nil {
		t.Fatal(err)
	}
	waitDownloads(t, c)
	if st, err := ReadStatus(dir); err != nil || !st.InUse || st.Objects != 2 || c.Bytes() != a.Size+b.Size {
		t.Fatalf("taken back: %+v, %v, %d bytes indexed; want in use, a's and b's chunks", st, err, c.Bytes())
	}
}

// Requests the kernel still sends after Close (a daemon exiting past its
// grace period) fail; they never use a descriptor Close released.
func TestUseAfterClose(t *testing.T) {
	f := newFakeFetcher()
	v := f.add("a", randomBytes(44, testChunk))
	c, err := Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: t.TempDir(), MaxBytes: 100 * testChunk, ChunkSize: testChunk}, f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadAt(context.Background(), v, make([]byte, v.Size), 0); err != nil {
		t.Fatal(err)
	}
	waitDownloads(t, c)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			if f, err := c.OpenBlob(c.geo.chunkID(v, 0)); err == nil {
				f.Close()
			}
		}
	}()
	c.Close()
	<-done
	if _, err := c.ReadAt(context.Background(), v, make([]byte, v.Size), 0); err == nil {
		t.Fatal("a read after Close succeeded")
	}
	if _, err := c.TempFile(); err == nil {
		t.Fatal("a temporary file made after Close")
	}
}
