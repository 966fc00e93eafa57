package chunkcache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

// A read of the first bytes of a missing chunk is answered once those bytes
// have arrived, not when the whole chunk has: that is the time to first byte
// of a cold file, and the latency of a random read. Bytes not yet arrived
// are waited for, and the chunk is still fetched once.
func TestReadServedWhileChunkArrives(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(21, 3*testChunk)
	v := f.add("obj", data)
	f.hold, f.holdAfter = make(chan struct{}), 1000
	c := openCache(t, t.TempDir(), f, 100*testChunk, 0)

	head := make([]byte, 10)
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadAt(context.Background(), v, head, 5)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil || !bytes.Equal(head, data[5:15]) {
			t.Fatalf("early read: %v, bytes equal %v", err, bytes.Equal(head, data[5:15]))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a read of bytes already downloaded waited for the whole chunk")
	}

	tail := make([]byte, 10)
	late := make(chan error, 1)
	go func() {
		_, err := c.ReadAt(context.Background(), v, tail, testChunk-10)
		late <- err
	}()
	select {
	case err := <-late:
		t.Fatalf("a read past the bytes downloaded returned before they arrived: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if c.disk.has(c.geo.chunk(v, 0)) {
		t.Fatal("chunk admitted before its download ended")
	}
	close(f.hold)
	if err := <-late; err != nil || !bytes.Equal(tail, data[testChunk-10:testChunk]) {
		t.Fatalf("late read: %v", err)
	}
	if n := f.callsFor("obj", 0); n != 1 {
		t.Fatalf("chunk 0 fetched %d times, want 1", n)
	}
	if st := c.Stats(); st.Joins != 1 || st.Misses != 2 {
		t.Fatalf("stats %+v: want 2 misses, 1 join", st)
	}
}

// A reader that gives up while waiting for bytes of a download in progress
// returns at once, and the download goes on for the others.
func TestWaitForArrivingBytesHonoursCancel(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(22, testChunk)
	v := f.add("obj", data)
	f.hold, f.holdAfter = make(chan struct{}), 100
	c := openCache(t, t.TempDir(), f, 100*testChunk, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.ReadAt(ctx, v, make([]byte, 10), 500); err == nil {
		t.Fatal("a cancelled wait succeeded")
	}
	close(f.hold)
	p := make([]byte, 10)
	if _, err := c.ReadAt(context.Background(), v, p, 500); err != nil || !bytes.Equal(p, data[500:510]) {
		t.Fatalf("read after release: %v", err)
	}
	if n := f.callsFor("obj", 0); n != 1 {
		t.Fatalf("chunk fetched %d times, want 1", n)
	}
}

// With the cache's file system full, reads still return exact bytes,
// straight from the store, one error is logged per backoff period, and once
// space returns chunks are cached again.
func TestFullDiskServesUncached(t *testing.T) {
	testenv.Require(t, os.Geteuid() == 0, "mounting a tmpfs needs root")
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	// Leave room for about one chunk (testChunk is 64 KiB).
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20-96<<10), 0o600); err != nil {
		t.Fatal(err)
	}

	f := newFakeFetcher()
	data := randomBytes(23, 8*testChunk+123)
	v := f.add("obj", data)
	var logs strings.Builder
	var logMu = make(chan struct{}, 1)
	logMu <- struct{}{}
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logs, logMu}, nil))
	clk := newTestClock()
	c, err := Open(Options{
		Dir: filepath.Join(dir, "cache"), MaxBytes: 100 * testChunk, ChunkSize: testChunk, Namespace: "test",
		MaxConcurrentGets: 4, ReadTimeout: 10 * time.Second, Logger: logger,
		NoSpaceBackoff: time.Second, clock: clk,
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	readAll := func() {
		t.Helper()
		got := make([]byte, len(data))
		// Reads of 16 KiB, like a small-buffered reader.
		for off := 0; off < len(data); off += 16 << 10 {
			end := min(off+16<<10, len(data))
			if _, err := c.ReadAt(context.Background(), v, got[off:end], int64(off)); err != nil {
				t.Fatalf("read at %d with a full disk: %v", off, err)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatal("bytes differ")
		}
	}
	readAll()
	st := c.Stats()
	if st.Uncached == 0 {
		t.Fatalf("no read went uncached with a full disk: %+v", st)
	}
	<-logMu
	n := strings.Count(logs.String(), "cache file system full")
	logMu <- struct{}{}
	if n != 1 {
		t.Fatalf("%d 'file system full' lines for one backoff period, want 1:\n%s", n, logs.String())
	}
	if tmps, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmps) != 0 {
		t.Fatalf("%d temp files left after failed stores", len(tmps))
	}

	// Space returns; after the backoff, chunks are cached again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second + time.Millisecond)
	readAll()
	before := f.total.Load()
	readAll()
	if after := f.total.Load(); after != before {
		t.Fatalf("a re-read after space returned made %d GETs, want 0 (caching did not resume)", after-before)
	}
	if got := c.Bytes(); got != int64(len(data)) {
		t.Fatalf("cache holds %d bytes, want the whole object (%d)", got, len(data))
	}
}

type lockedWriter struct {
	b  *strings.Builder
	mu chan struct{}
}

func (w lockedWriter) Write(p []byte) (int, error) {
	<-w.mu
	defer func() { w.mu <- struct{}{} }()
	return w.b.Write(p)
}

func TestCacheDirMustBePrivate(t *testing.T) {
	base := t.TempDir()
	f := newFakeFetcher()
	open := func(dir string) error {
		c, err := Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: dir, MaxBytes: 10 * testChunk, ChunkSize: testChunk}, f)
		if err == nil {
			c.Close()
		}
		return err
	}

	fresh := filepath.Join(base, "new", "cache")
	if err := open(fresh); err != nil {
		t.Fatalf("new directory: %v", err)
	}
	if info, err := os.Stat(fresh); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("new cache directory: %v, mode %v; want 0700", err, info.Mode().Perm())
	}

	// An empty directory of ours that others may enter is what `mkdir`
	// under umask 022 makes: it is tightened, with one log line.
	wideEmpty := filepath.Join(base, "wide-empty")
	mkdirMode(t, wideEmpty, 0o755)
	var logged testenv.LockedBuffer
	c, err := Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: wideEmpty, MaxBytes: 10 * testChunk, ChunkSize: testChunk,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))}, f)
	if err != nil {
		t.Fatalf("empty 0755 directory: %v; want it made private and used", err)
	}
	c.Close()
	if info, err := os.Stat(wideEmpty); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("empty 0755 directory after Open: %v, mode %v; want 0700", err, info.Mode().Perm())
	}
	if n := strings.Count(logged.String(), "made it private"); n != 1 {
		t.Fatalf("log says %d times that the directory was made private, want once:\n%s", n, logged.String())
	}

	// A wide directory that holds other things is refused and left as it
	// is: the fix is not ours to make (it may be /tmp or a home directory).
	wideFull := filepath.Join(base, "wide-full")
	mkdirMode(t, wideFull, 0o755)
	if err := os.WriteFile(filepath.Join(wideFull, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = open(wideFull)
	if err == nil || !strings.Contains(err.Error(), "mode 0755") || !strings.Contains(err.Error(), "holds other files") ||
		strings.Contains(err.Error(), "chmod") {
		t.Fatalf("non-empty 0755 directory: %v; want a refusal naming the mode, and no chmod advice", err)
	}
	if des, _ := os.ReadDir(wideFull); len(des) != 1 {
		t.Fatalf("refused directory was written to: %d entries", len(des))
	}
	if info, _ := os.Stat(wideFull); info.Mode().Perm() != 0o755 {
		t.Fatalf("refused directory's mode changed to %v", info.Mode().Perm())
	}

	// Our own cache widened by hand: refused, and chmod is the advice.
	ours := filepath.Join(base, "ours")
	if err := open(ours); err != nil {
		t.Fatal(err)
	}
	os.Chmod(ours, 0o750)
	if err := open(ours); err == nil || !strings.Contains(err.Error(), "mode 0750") || !strings.Contains(err.Error(), "chmod 700 "+ours) {
		t.Fatalf("widened cache directory: %v; want a refusal with the chmod fix", err)
	}

	// Through a symlink, the advice names the directory a chmod would
	// change, not the link.
	link := filepath.Join(base, "link")
	if err := os.Symlink(ours, link); err != nil {
		t.Fatal(err)
	}
	if err := open(link); err == nil || !strings.Contains(err.Error(), link+" (a symlink to "+ours+")") ||
		!strings.Contains(err.Error(), "chmod 700 "+ours+")") {
		t.Fatalf("widened cache directory through a symlink: %v; want the link and its target named, chmod of the target", err)
	}
	// A symlink to a wide directory holding other things: no chmod advice.
	etc := filepath.Join(base, "etc")
	mkdirMode(t, etc, 0o755)
	os.WriteFile(filepath.Join(etc, "passwd"), []byte("root:x:0:0"), 0o644)
	etcLink := filepath.Join(base, "etc-link")
	os.Symlink(etc, etcLink)
	if err := open(etcLink); err == nil || strings.Contains(err.Error(), "chmod") || !strings.Contains(err.Error(), "holds other files") {
		t.Fatalf("symlink to a shared directory: %v; want a refusal without chmod advice", err)
	}

	notDir := filepath.Join(base, "file")
	os.WriteFile(notDir, nil, 0o600)
	if err := open(notDir); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a file as cache dir: %v", err)
	}

	if os.Geteuid() == 0 {
		theirs := filepath.Join(base, "theirs")
		os.Mkdir(theirs, 0o700)
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := open(theirs); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Fatalf("directory of another user: %v", err)
		}
	}
}

// Chunk files, temp files and the lock are private to the daemon's user.
func TestCacheFilesArePrivate(t *testing.T) {
	f := newFakeFetcher()
	v := f.add("obj", randomBytes(24, 2*testChunk))
	dir := t.TempDir()
	c := openCache(t, dir, f, 100*testChunk, 0)
	if _, err := c.ReadAt(context.Background(), v, make([]byte, 2*testChunk), 0); err != nil {
		t.Fatal(err)
	}
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if info.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm()&^want != 0 {
			t.Errorf("%s has mode %v, wider than %v", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A version found gone from the store leaves the cache at once, except the
// chunks someone is waiting for.
func TestDiscardDropsAVersion(t *testing.T) {
	f := newFakeFetcher()
	old := f.add("doc", randomBytes(25, 3*testChunk+7))
	other := f.add("other", randomBytes(26, testChunk))
	dir := t.TempDir()
	c := openCache(t, dir, f, 100*testChunk, 0)
	if _, err := c.ReadAt(context.Background(), old, make([]byte, old.Size), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadAt(context.Background(), other, make([]byte, other.Size), 0); err != nil {
		t.Fatal(err)
	}
	waitDownloads(t, c)
	pinned := c.geo.chunk(old, 1)
	c.disk.hold(pinned.id, 1)
	c.Discard(old)
	if got, want := c.Bytes(), other.Size+testChunk; got != want {
		t.Fatalf("cache holds %d bytes after Discard, want %d (the other object and the awaited chunk)", got, want)
	}
	files := objectFiles(t, dir)
	if len(files) != 2 {
		t.Fatalf("%d objects' files after Discard, want 2", len(files))
	}
	// The old version's file holds the awaited chunk and nothing else.
	if got := allocated(t, filepath.Join(dir, "objects", pinned.obj)); got != testChunk {
		t.Fatalf("the discarded version's file takes %d bytes, want %d (the awaited chunk)", got, testChunk)
	}
	if !c.disk.has(pinned) || !c.disk.has(c.geo.chunk(other, 0)) {
		t.Fatal("Discard dropped an awaited chunk or another object's")
	}
	c.disk.hold(pinned.id, -1)
}

// A --cache-size larger than its file system: when the cache's own chunks
// fill the disk, its bound comes down to what fits, and caching goes on
// within it instead of staying uncached for good.
func TestBoundLoweredWhenOwnChunksFillTheDisk(t *testing.T) {
	testenv.Require(t, os.Geteuid() == 0, "mounting a tmpfs needs root")
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=512k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	f := newFakeFetcher()
	data := randomBytes(27, 16*testChunk)
	v := f.add("obj", data)
	var logs strings.Builder
	logMu := make(chan struct{}, 1)
	logMu <- struct{}{}
	clk := newTestClock()
	c, err := Open(Options{
		Dir: dir, MaxBytes: 100 * testChunk, ChunkSize: testChunk, Namespace: "test",
		MaxConcurrentGets: 1, ReadTimeout: 10 * time.Second, NoSpaceBackoff: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&logs, logMu}, nil)), clock: clk,
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make([]byte, testChunk)
	for idx := range 16 {
		off := int64(idx) * testChunk
		if _, err := c.ReadAt(context.Background(), v, got, off); err != nil || !bytes.Equal(got, data[off:off+testChunk]) {
			t.Fatalf("chunk %d: %v", idx, err)
		}
		waitDownloads(t, c)
	}
	total, limit := c.disk.idx.usage()
	if limit >= 100*testChunk || total > limit {
		t.Fatalf("bound %d, holding %d: want the bound lowered below 512 KiB and kept", limit, total)
	}
	<-logMu
	lowered := strings.Count(logs.String(), "cache bound lowered")
	logMu <- struct{}{}
	if lowered == 0 {
		t.Fatal("lowering the bound was not logged")
	}
	// Within the lowered bound, chunks are cached again after the backoff.
	clk.advance(300 * time.Millisecond)
	last := int64(15) * testChunk
	for range 2 {
		if _, err := c.ReadAt(context.Background(), v, got, last); err != nil || !bytes.Equal(got, data[last:]) {
			t.Fatalf("re-read: %v", err)
		}
		waitDownloads(t, c)
	}
	if n := f.callsFor("obj", last); n > 3 {
		t.Fatalf("last chunk fetched %d times: caching did not resume within the lowered bound", n)
	}
	if !c.disk.has(c.geo.chunk(v, 15)) {
		t.Fatal("last chunk not cached after the backoff")
	}
}

// mkdirMode makes dir with exactly mode, whatever the umask.
func mkdirMode(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// A disk full for a moment (another program's file, deleted since) lowers
// the bound only while it lasts: once there is room again, the bound is
// --cache-size again, and Limit says so.
func TestBoundRaisedWhenSpaceReturns(t *testing.T) {
	testenv.Require(t, os.Geteuid() == 0, "mounting a tmpfs needs root")
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	f := newFakeFetcher()
	data := randomBytes(28, 12*testChunk)
	v := f.add("obj", data)
	const maxBytes = 10 * testChunk
	clk := newTestClock()
	c, err := Open(Options{
		Dir: filepath.Join(dir, "cache"), MaxBytes: maxBytes, ChunkSize: testChunk, Namespace: "test",
		MaxConcurrentGets: 1, ReadTimeout: 10 * time.Second, NoSpaceBackoff: 100 * time.Millisecond, clock: clk,
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make([]byte, testChunk)
	read := func(idx int) {
		t.Helper()
		off := int64(idx) * testChunk
		if _, err := c.ReadAt(context.Background(), v, got, off); err != nil || !bytes.Equal(got, data[off:off+testChunk]) {
			t.Fatalf("chunk %d: %v", idx, err)
		}
		waitDownloads(t, c)
	}
	for idx := range 6 {
		read(idx)
	}
	// Another program takes all the room there is left.
	filler := filepath.Join(dir, "filler")
	fill, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := fill.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	fill.Close()
	for idx := 6; idx < 12; idx++ {
		read(idx)
		clk.advance(150 * time.Millisecond) // past the backoff: the next fetch meets the full disk
	}
	if limit := c.Limit(); limit >= maxBytes {
		t.Fatalf("bound %d after a full disk: want it lowered below %d", limit, maxBytes)
	}
	os.Remove(filler)
	c.disk.raiseBound()
	if limit := c.Limit(); limit != maxBytes {
		t.Fatalf("bound %d once the disk has room again, want %d", limit, maxBytes)
	}
	if c.MaxBytes() != maxBytes {
		t.Fatalf("MaxBytes %d", c.MaxBytes())
	}
}

// Every refusal of a directory for what it is says so (ErrRefused), so that
// the command can tell the operator's mistake (exit 2) from an I/O failure;
// a directory that is fine does not.
func TestRefusalsAreErrRefused(t *testing.T) {
	base := t.TempDir()
	f := newFakeFetcher()
	open := func(dir string) (*Cache, error) {
		return Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: dir, MaxBytes: 10 * testChunk, ChunkSize: testChunk}, f)
	}
	wide := filepath.Join(base, "wide")
	mkdirMode(t, wide, 0o755)
	os.WriteFile(filepath.Join(wide, "notes.txt"), []byte("x"), 0o600)
	foreign := filepath.Join(base, "foreign")
	mkdirMode(t, foreign, 0o700)
	os.WriteFile(filepath.Join(foreign, ".bashrc"), []byte("x"), 0o600)
	notDir := filepath.Join(base, "file")
	os.WriteFile(notDir, nil, 0o600)
	for _, dir := range []string{wide, foreign, notDir} {
		if _, err := open(dir); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", dir, err)
		}
	}
	ok := filepath.Join(base, "ok")
	c, err := open(ok)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := open(ok); !errors.Is(err, ErrRefused) || !errors.Is(err, ErrInUse) {
		t.Errorf("second daemon on one directory: %v, want ErrRefused and ErrInUse", err)
	}
}

// A version of any size is discarded in bounded time and memory: the size
// comes from the server (a listing may claim exabytes), and Discard runs in
// the lookup that learned of the new version. Versions too big to enumerate
// are left to the LRU, which never serves them (their ids hold the version).
func TestDiscardOfAHugeVersion(t *testing.T) {
	f := newFakeFetcher()
	small := f.add("doc", randomBytes(27, 2*testChunk))
	c := openCache(t, t.TempDir(), f, 100*testChunk, 0)
	if _, err := c.ReadAt(context.Background(), small, make([]byte, small.Size), 0); err != nil {
		t.Fatal(err)
	}
	waitDownloads(t, c)
	for _, size := range []int64{1 << 62, math.MaxInt64} {
		c.Discard(object.Version{Key: "huge", ETag: `"h"`, Size: size})
	}
	if c.Bytes() != small.Size {
		t.Fatalf("cache holds %d bytes, want %d: a huge version's discard dropped another's", c.Bytes(), small.Size)
	}
	c.Discard(small)
	if c.Bytes() != 0 {
		t.Fatalf("cache holds %d bytes after discarding its only version", c.Bytes())
	}
}
