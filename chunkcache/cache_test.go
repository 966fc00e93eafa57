package chunkcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

const testChunk = 64 << 10 // small chunks keep the tests fast; the arithmetic is the same

// fakeFetcher serves objects from memory and records every range asked for.
type fakeFetcher struct {
	mu      sync.Mutex
	objects map[string][]byte
	calls   map[string]int // "key@off" → count
	total   atomic.Int64
	// gate, when set, blocks every fetch until it is closed.
	gate chan struct{}
	// cutShort makes bodies end early (a truncated response).
	cutShort atomic.Bool
	// failures makes the next N fetches fail outright.
	failures atomic.Int64
	// hold, when set, stops every body after holdAfter bytes until it is
	// closed: a download in progress.
	hold      chan struct{}
	holdAfter int
}

func newFakeFetcher() *fakeFetcher {
	return &fakeFetcher{objects: map[string][]byte{}, calls: map[string]int{}}
}

func (f *fakeFetcher) add(key string, data []byte) object.Version {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[key] = data
	return object.Version{Key: key, ETag: fmt.Sprintf(`"%x"`, len(data)), Size: int64(len(data))}
}

func (f *fakeFetcher) GetRange(ctx context.Context, v object.Version, off, n int64) (io.ReadCloser, error) {
	f.total.Add(1)
	f.mu.Lock()
	f.calls[fmt.Sprintf("%s@%d", v.Key, off)]++
	data := f.objects[v.Key]
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.failures.Add(-1) >= 0 {
		return nil, errors.New("injected failure")
	}
	if n <= 0 || off+n > int64(len(data)) {
		return nil, fmt.Errorf("bad range %d+%d of %d", off, n, len(data))
	}
	body := data[off : off+n]
	if f.cutShort.Load() {
		body = body[:n/2]
	}
	if hold := f.hold; hold != nil && f.holdAfter < len(body) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(body[:f.holdAfter]),
			&heldReader{hold: hold, ctx: ctx, r: bytes.NewReader(body[f.holdAfter:])})), nil
	}
	return io.NopCloser(bytes.NewReader(body)), nil
}

// heldReader yields nothing until hold is closed.
type heldReader struct {
	hold <-chan struct{}
	ctx  context.Context
	r    io.Reader
}

func (h *heldReader) Read(p []byte) (int, error) {
	select {
	case <-h.hold:
		return h.r.Read(p)
	case <-h.ctx.Done():
		return 0, h.ctx.Err()
	}
}

func (f *fakeFetcher) callsFor(key string, off int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[fmt.Sprintf("%s@%d", key, off)]
}

// waitDownloads waits for the downloads running now: a read is answered as
// soon as its bytes arrive, possibly before its chunk is admitted.
func waitDownloads(t *testing.T, c *Cache) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "the downloads to end", func() bool { return c.downloads.running() == 0 })
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func openCache(t *testing.T, dir string, f Fetcher, maxBytes, readAhead int64) *Cache {
	t.Helper()
	c, err := Open(Options{
		Dir: dir, MaxBytes: maxBytes, ChunkSize: testChunk, Namespace: "test",
		MaxConcurrentGets: 4, ReadAhead: readAhead, ReadTimeout: 10 * time.Second,
		clock: newTestClock(),
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readerAt adapts the cache to io.ReaderAt for iotest and io.SectionReader.
type readerAt struct {
	c *Cache
	v object.Version
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	return r.c.ReadAt(context.Background(), r.v, p, off)
}

func TestChunkBoundaries(t *testing.T) {
	sizes := []int{0, 1, testChunk - 1, testChunk, testChunk + 1, 3*testChunk + 5}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			f := newFakeFetcher()
			data := randomBytes(uint64(size), size)
			v := f.add("obj", data)
			c := openCache(t, t.TempDir(), f, 100*testChunk, 0)
			got, err := io.ReadAll(io.NewSectionReader(readerAt{c, v}, 0, v.Size))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("content differs (got %d bytes, want %d)", len(got), len(data))
			}
			// Every chunk fetched exactly once, with the exact range.
			want := (size + testChunk - 1) / testChunk
			if n := f.total.Load(); n != int64(want) {
				t.Fatalf("fetches = %d, want %d", n, want)
			}
			for i := 0; i < want; i++ {
				if n := f.callsFor("obj", int64(i*testChunk)); n != 1 {
					t.Errorf("chunk %d fetched %d times", i, n)
				}
			}
			// Reading at and past the end.
			buf := make([]byte, 10)
			if n, err := c.ReadAt(context.Background(), v, buf, v.Size); n != 0 || err != io.EOF {
				t.Fatalf("read at end: %d, %v", n, err)
			}
			// iotest reads byte by byte; the small sizes cover its cases.
			if size <= testChunk+1 {
				if err := iotest.TestReader(io.NewSectionReader(readerAt{c, v}, 0, v.Size), data); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestRandomReadAt(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(7, 5*testChunk+123)
	v := f.add("obj", data)
	c := openCache(t, t.TempDir(), f, 3*testChunk, 0) // smaller than the object: churn while reading
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		off := r.Int64N(v.Size)
		n := r.IntN(2*testChunk + 10)
		p := make([]byte, n)
		got, err := c.ReadAt(context.Background(), v, p, off)
		wantN := min(int64(n), v.Size-off)
		if int64(got) != wantN {
			t.Fatalf("read %d at %d: got %d bytes, want %d (err %v)", n, off, got, wantN, err)
		}
		if int64(n) > wantN && err != io.EOF {
			t.Fatalf("short read at end without io.EOF: %v", err)
		}
		if int64(n) <= wantN && err != nil {
			t.Fatalf("read %d at %d: %v", n, off, err)
		}
		if !bytes.Equal(p[:got], data[off:off+int64(got)]) {
			t.Fatalf("read %d at %d: bytes differ", n, off)
		}
	}
}

func TestByteBoundUnderChurn(t *testing.T) {
	f := newFakeFetcher()
	var versions []object.Version
	var datas [][]byte
	for i := 0; i < 6; i++ {
		d := randomBytes(uint64(100+i), 4*testChunk+i*1000)
		datas = append(datas, d)
		versions = append(versions, f.add(fmt.Sprintf("obj%d", i), d))
	}
	const bound = 5*testChunk + testChunk/2
	dir := t.TempDir()
	c := openCache(t, dir, f, bound, 2*testChunk)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; i < 200; i++ {
				k := r.IntN(len(versions))
				off := r.Int64N(versions[k].Size)
				p := make([]byte, 1000)
				n, err := c.ReadAt(context.Background(), versions[k], p, off)
				if err != nil && err != io.EOF {
					errs <- err
					return
				}
				if !bytes.Equal(p[:n], datas[k][off:off+int64(n)]) {
					errs <- fmt.Errorf("bytes differ in obj%d at %d", k, off)
					return
				}
				if b := c.Bytes(); b > bound {
					errs <- fmt.Errorf("index holds %d bytes, bound %d", b, bound)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.Close()
	// On disk, as du counts: each object's file may take a block more than
	// its entries (its short last chunk), and its map a block.
	if got, slack := duBytes(t, dir), int64(len(versions)*2*4096); got > bound+slack {
		t.Fatalf("cache dir takes %d bytes after churn, bound %d (+%d for maps and last blocks)", got, bound, slack)
	}
	if c.Stats().Evictions == 0 {
		t.Fatal("expected evictions under churn")
	}
}

func TestRestartReusesChunks(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(3, 3*testChunk+17)
	v := f.add("obj", data)
	dir := t.TempDir()
	c := openCache(t, dir, f, 100*testChunk, 0)
	if _, err := io.ReadAll(io.NewSectionReader(readerAt{c, v}, 0, v.Size)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	before := f.total.Load()

	c2 := openCache(t, dir, f, 100*testChunk, 0)
	got, err := io.ReadAll(io.NewSectionReader(readerAt{c2, v}, 0, v.Size))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("content differs after restart")
	}
	if n := f.total.Load() - before; n != 0 {
		t.Fatalf("restart made %d fetches, want 0", n)
	}
	if c2.Stats().Hits == 0 {
		t.Fatal("no hits after restart")
	}
}

func TestRestartCleansTempAndInvalid(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(4, 2*testChunk)
	v := f.add("obj", data)
	dir := t.TempDir()
	c := openCache(t, dir, f, 100*testChunk, 0)
	if _, err := io.ReadAll(io.NewSectionReader(readerAt{c, v}, 0, v.Size)); err != nil {
		t.Fatal(err)
	}
	c.Close()

	files := objectFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("want 1 object's file, have %d", len(files))
	}
	write := func(path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Leftovers of a crash: temp files, a blob cut short, an object's file
	// without its map and a map without its file, the files of the
	// per-chunk layout, half a record at the end of the map, and a chunk
	// whose bytes rotted (its record says otherwise).
	partial := tmpName(fmt.Sprintf("%040x", 7), 123)
	write(filepath.Join(dir, "tmp", partial), []byte("partial"))
	write(filepath.Join(dir, "tmp", tmpName(blobTmpPrefix, 9)), []byte("part of a part"))
	short := filepath.Join(dir, "blobs", fileName(fmt.Sprintf("%040x", 1), 1000, 0))
	write(short, []byte("only a few bytes"))
	lone := filepath.Join(dir, "objects", fmt.Sprintf("%040x", 2))
	write(lone, []byte("no map"))
	loneMap := filepath.Join(dir, "objects", fmt.Sprintf("%040x", 3)+mapSuffix)
	write(loneMap, []byte("no file"))
	os.Mkdir(filepath.Join(dir, "chunks"), 0o700)
	legacy := filepath.Join(dir, "chunks", fileName(fmt.Sprintf("%040x", 4), 3, 0))
	write(legacy, []byte("old"))
	m, err := os.OpenFile(files[0]+mapSuffix, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.Write(make([]byte, mapRecordSize/2))
	m.Close()
	obj, err := os.OpenFile(files[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	obj.WriteAt([]byte{data[testChunk+100] ^ 0xff}, testChunk+100)
	obj.Close()

	before := f.total.Load()
	var logs strings.Builder
	c2, err := Open(Options{Dir: dir, MaxBytes: 100 * testChunk, ChunkSize: testChunk, Namespace: "test",
		MaxConcurrentGets: 4, ReadTimeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	for _, gone := range []string{filepath.Join(dir, "tmp", partial), filepath.Join(dir, "tmp", tmpName(blobTmpPrefix, 9)),
		short, lone, loneMap, legacy, filepath.Join(dir, "chunks")} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s survived the restart", gone)
		}
	}
	if n := strings.Count(logs.String(), "cache layout of an earlier version"); n != 1 {
		t.Errorf("the per-chunk layout's removal logged %d times, want once:\n%s", n, logs.String())
	}
	if info, _ := os.Stat(files[0] + mapSuffix); info.Size() != mapHeaderSize+2*mapRecordSize {
		t.Errorf("the map with half a record is %d bytes, want it rewritten to its 2 records", info.Size())
	}
	got, err := io.ReadAll(io.NewSectionReader(readerAt{c2, v}, 0, v.Size))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("served rotten bytes")
	}
	if n := f.total.Load() - before; n != 1 {
		t.Fatalf("want exactly 1 refetch (the rotten chunk), got %d", n)
	}
	if c2.Stats().BadChunks != 1 {
		t.Fatalf("bad chunks = %d, want 1", c2.Stats().BadChunks)
	}
}

// Bytes a download wrote into an object's file without recording them (a
// crash cut it short) are punched out at the next start: they are counted
// nowhere, and must not take room beyond the bound.
func TestRestartPunchesWhatNoEntryHolds(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(41, 4*testChunk)
	v := f.add("obj", data)
	dir := t.TempDir()
	c := openCache(t, dir, f, 100*testChunk, 0)
	if _, err := c.ReadAt(context.Background(), v, make([]byte, 10), testChunk); err != nil {
		t.Fatal(err)
	}
	waitDownloads(t, c)
	c.Close()
	file := objectFiles(t, dir)[0]
	obj, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	obj.WriteAt(data[2*testChunk:3*testChunk-500], 2*testChunk) // chunk 2, cut short
	obj.Close()
	if got := allocated(t, file); got < 2*testChunk-500 {
		t.Fatalf("the file takes %d bytes before the restart", got)
	}
	c2 := openCache(t, dir, f, 100*testChunk, 0)
	if got := allocated(t, file); got != testChunk {
		t.Fatalf("the file takes %d bytes after the restart, want %d (chunk 1)", got, testChunk)
	}
	before := f.total.Load()
	got := make([]byte, v.Size)
	if _, err := c2.ReadAt(context.Background(), v, got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after the restart: %v", err)
	}
	if n := f.total.Load() - before; n != 3 {
		t.Fatalf("%d fetches after the restart, want 3 (all but chunk 1)", n)
	}
}

// A directory holding anything s3docs did not make is refused, and nothing
// in it is deleted or changed: files in tmp/, objects/, blobs/ or chunks/ (of
// the per-chunk layout) that are not named
// as s3docs names them, subdirectories, files beside the layout (a home
// directory given as --cache-dir).
func TestForeignFilesRefusedNeverDeleted(t *testing.T) {
	f := newFakeFetcher()
	v := f.add("obj", randomBytes(5, testChunk+1))
	for _, foreign := range []string{"notes.txt", "chunks/garbage", "tmp/abc.123", "tmp/sub/deep.txt", "chunks/sub/",
		"chunks/" + fileName(fmt.Sprintf("%040x", 3), 5, 0) + "/", ".bashrc", "objects/garbage",
		"objects/" + fmt.Sprintf("%040x", 3) + ".txt", "objects/" + fmt.Sprintf("%040x", 3) + "/", "blobs/garbage",
		"blobs/" + fmt.Sprintf("%040x", 3)} {
		t.Run(strings.ReplaceAll(foreign, "/", "_"), func(t *testing.T) {
			dir := t.TempDir()
			c := openCache(t, dir, f, 100*testChunk, 0)
			if _, err := c.ReadAt(context.Background(), v, make([]byte, v.Size), 0); err != nil {
				t.Fatal(err)
			}
			c.Close()
			// A leftover of ours beside the foreign file: it must stay too.
			leftover := filepath.Join(dir, "tmp", tmpName(blobTmpPrefix, 1))
			os.WriteFile(leftover, []byte("x"), 0o600)
			path := filepath.Join(dir, foreign)
			if strings.HasSuffix(foreign, "/") {
				os.MkdirAll(path, 0o700)
			} else {
				os.MkdirAll(filepath.Dir(path), 0o700)
				os.WriteFile(path, []byte("mine"), 0o600)
			}
			before := snapshot(t, dir)
			_, err := Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: dir, MaxBytes: 100 * testChunk, ChunkSize: testChunk}, f)
			want := strings.TrimSuffix(foreign, "/")
			if foreign == "tmp/sub/deep.txt" {
				want = "tmp/sub" // a directory is named, not what it holds
			}
			if !errors.Is(err, ErrForeignFiles) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Open of a cache holding %s: %v; want ErrForeignFiles naming it", foreign, err)
			}
			if after := snapshot(t, dir); after != before {
				t.Fatalf("a refused directory was changed:\nbefore %s\nafter  %s", before, after)
			}
			if _, err := Clear(dir); !errors.Is(err, ErrForeignFiles) {
				t.Fatalf("Clear of a cache holding %s: %v; want ErrForeignFiles", foreign, err)
			}
			if after := snapshot(t, dir); after != before {
				t.Fatalf("a refused Clear changed the directory:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// A home directory given as the cache directory: refused before anything
// is made in it (no chunks/ or tmp/ appear).
func TestHomeDirRefusedUntouched(t *testing.T) {
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, ".bashrc"), []byte("x"), 0o600)
	before := snapshot(t, home)
	if _, err := Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: home, MaxBytes: 10 * testChunk, ChunkSize: testChunk}, newFakeFetcher()); !errors.Is(err, ErrForeignFiles) {
		t.Fatalf("Open of a home directory: %v, want ErrForeignFiles", err)
	}
	if after := snapshot(t, home); after != before {
		t.Fatalf("a refused directory was changed:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshot lists every path under dir with its size.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s:%d ", strings.TrimPrefix(path, dir), info.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestSingleflight(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(5, 4*testChunk)
	v := f.add("obj", data)
	f.gate = make(chan struct{})
	c := openCache(t, t.TempDir(), f, 100*testChunk, 0)
	const readers = 16
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := io.ReadAll(io.NewSectionReader(readerAt{c, v}, 0, v.Size))
			if err != nil {
				errs <- err
			} else if !bytes.Equal(got, data) {
				errs <- errors.New("content differs")
			}
		}()
	}
	// Let every reader pile up on the first chunk before any fetch completes.
	testenv.Eventually(5*time.Second, func() bool { return c.Stats().Misses >= readers })
	close(f.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if n := f.callsFor("obj", int64(i*testChunk)); n != 1 {
			t.Errorf("chunk %d fetched %d times, want 1", i, n)
		}
	}
	if c.Stats().Joins == 0 {
		t.Error("no reader joined another's fetch")
	}
}

func TestCancelledWaiterDoesNotCancelFetch(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(6, testChunk)
	v := f.add("obj", data)
	f.gate = make(chan struct{})
	c := openCache(t, t.TempDir(), f, 100*testChunk, 0)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.ReadAt(ctx, v, make([]byte, 10), 0)
		first <- err
	}()
	second := make(chan error, 1)
	p := make([]byte, 10)
	go func() {
		_, err := c.ReadAt(context.Background(), v, p, 0)
		second <- err
	}()
	testenv.WaitFor(t, 10*time.Second, "both readers waiting", func() bool { return c.Stats().Misses >= 2 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled reader got %v, want context.Canceled", err)
	}
	close(f.gate)
	if err := <-second; err != nil {
		t.Fatalf("other reader failed: %v", err)
	}
	if !bytes.Equal(p, data[:10]) {
		t.Fatal("bytes differ")
	}
	if n := f.total.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}

func TestTruncatedBodyNeverCached(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(8, testChunk)
	v := f.add("obj", data)
	dir := t.TempDir()
	c := openCache(t, dir, f, 100*testChunk, 0)
	f.cutShort.Store(true)
	// The bytes that did arrive may be served; the ones that did not, never.
	if _, err := c.ReadAt(context.Background(), v, make([]byte, 10), testChunk-10); err == nil {
		t.Fatal("read of a truncated body succeeded")
	}
	for _, sub := range []string{"objects", "tmp"} {
		if du := duBytes(t, filepath.Join(dir, sub)); du > 4096 {
			t.Fatalf("%s takes %d bytes after a truncated body (its map alone: a block)", sub, du)
		}
	}
	f.cutShort.Store(false)
	p := make([]byte, 10)
	// The range failed moments ago: it fails at once, without a GET.
	before := f.total.Load()
	if _, err := c.ReadAt(context.Background(), v, p, 0); err == nil {
		t.Fatal("a range that just failed was fetched again at once")
	}
	if n := f.total.Load() - before; n != 0 {
		t.Fatalf("a range that just failed made %d GETs", n)
	}
	forgetFailures(c)
	if _, err := c.ReadAt(context.Background(), v, p, 0); err != nil || !bytes.Equal(p, data[:10]) {
		t.Fatalf("read after recovery: %v", err)
	}
}

// A readahead that failed with no reader waiting leaves nothing behind: the
// first reader of its range tries the store at once (TestServerDownMidRead
// read EIO just after the outage ended, from a readahead that failed in its
// last second).
func TestBackgroundFailureNotRemembered(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(11, 2*testChunk)
	v := f.add("obj", data)
	c := openCache(t, t.TempDir(), f, 100*testChunk, 0)
	f.failures.Store(1)
	fl, started, err := c.downloads.join(v, c.geo.chunk(v, 1), true)
	if err != nil || !started {
		t.Fatalf("background download: started %v, err %v", started, err)
	}
	if err := fl.wait(context.Background()); err == nil {
		t.Fatal("the background download did not fail")
	}
	// The flight ended after its outcome was noted and it left the
	// table (download.go's join).
	p := make([]byte, 10)
	before := f.total.Load()
	if _, err := c.ReadAt(context.Background(), v, p, testChunk); err != nil {
		t.Fatalf("read after a failed readahead: %v", err)
	}
	if !bytes.Equal(p, data[testChunk:testChunk+10]) {
		t.Fatal("bytes differ")
	}
	if n := f.total.Load() - before; n != 1 {
		t.Fatalf("read after a failed readahead made %d GETs, want 1", n)
	}
}

// forgetFailures lets failedRangeMemory pass on the clock of a cache
// opened by openCache.
func forgetFailures(c *Cache) {
	c.opt.clock.(*testClock).advance(failedRangeMemory + time.Nanosecond)
}

// testClock is a clock that moves only when a test moves it (Options.clock).
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Unix(1_800_000_000, 0)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestFetchErrorPropagates(t *testing.T) {
	f := newFakeFetcher()
	v := f.add("obj", randomBytes(9, 100))
	c := openCache(t, t.TempDir(), f, 100*testChunk, 0)
	if _, err := c.ReadAt(context.Background(), v, make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	// A failure of the fetcher (which has retried on its own) reaches the
	// reader: the cache adds no retries of its own, one GetRange per
	// download.
	v2 := f.add("obj2", randomBytes(10, 100))
	f.failures.Store(1)
	before := f.total.Load()
	_, err := c.ReadAt(context.Background(), v2, make([]byte, 10), 0)
	if err == nil {
		t.Fatal("want error")
	}
	if n := f.total.Load() - before; n != 1 {
		t.Fatalf("a failed download made %d GetRange calls, want 1", n)
	}
	// Asked again at once (the kernel retrying a failed readahead), the
	// range fails with the same error, and no GET.
	before = f.total.Load()
	_, again := c.ReadAt(context.Background(), v2, make([]byte, 10), 50)
	if again == nil || again.Error() != err.Error() {
		t.Fatalf("read again at once: %v, want %v", again, err)
	}
	if n := f.total.Load() - before; n != 0 {
		t.Fatalf("read again at once made %d GETs", n)
	}
	// Another object is not affected.
	v3 := f.add("obj3", randomBytes(11, 100))
	if _, err := c.ReadAt(context.Background(), v3, make([]byte, 10), 0); err != nil {
		t.Fatalf("another object after a failure: %v", err)
	}
	forgetFailures(c)
	if _, err := c.ReadAt(context.Background(), v2, make([]byte, 10), 0); err != nil {
		t.Fatalf("read after the failures: %v", err)
	}
}

// silentFetcher accepts every request and never answers: a server that
// takes the connection and says nothing.
type silentFetcher struct{ calls atomic.Int64 }

func (s *silentFetcher) GetRange(ctx context.Context, v object.Version, off, n int64) (io.ReadCloser, error) {
	s.calls.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// One deadline for a read, retries included: against a store that never
// answers, a read fails once ReadTimeout is over (not after one timeout per
// attempt), and so does every waiter of the same download. The kernel's
// retry of the range then fails at once.
func TestReadTimeoutBoundsEveryAttempt(t *testing.T) {
	f := &silentFetcher{}
	const timeout = 400 * time.Millisecond
	c, err := Open(Options{Dir: t.TempDir(), MaxBytes: 100 * testChunk, ChunkSize: testChunk,
		MaxConcurrentGets: 4, ReadTimeout: timeout}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	v := object.Version{Key: "silent", ETag: `"s"`, Size: 3 * testChunk}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = c.ReadAt(context.Background(), v, make([]byte, 100), int64(i*1000))
		})
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		if err == nil {
			t.Fatalf("reader %d: no error from a store that never answers", i)
		}
	}
	if took < timeout {
		t.Fatalf("failed after %v, before the %v deadline", took, timeout)
	}
	// Generous: the deadline and the reader's grace, plus scheduling noise.
	if limit := timeout + readGrace + time.Second; took > limit {
		t.Fatalf("failed after %v, want at most %v (one deadline for every attempt)", took, limit)
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("%d GETs: the three readers shared one download, whose one attempt used up the deadline", n)
	}
	start = time.Now()
	if _, err := c.ReadAt(context.Background(), v, make([]byte, 4096), 0); err == nil || time.Since(start) > timeout/2 {
		t.Fatalf("range read again after its failure: %v after %v, want a failure at once", err, time.Since(start))
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("the failed range was fetched again at once (%d GETs)", n)
	}
}

func TestChangedObjectIsNotRetried(t *testing.T) {
	f := &changedFetcher{}
	c := openCache(t, t.TempDir(), f, 100*testChunk, 0)
	v := object.Version{Key: "gone", ETag: `"x"`, Size: 100}
	if _, err := c.ReadAt(context.Background(), v, make([]byte, 10), 0); !errors.Is(err, object.ErrChanged) {
		t.Fatalf("got %v, want ErrChanged", err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("a changed object was fetched %d times", n)
	}
}

type changedFetcher struct{ calls atomic.Int64 }

func (f *changedFetcher) GetRange(ctx context.Context, v object.Version, off, n int64) (io.ReadCloser, error) {
	f.calls.Add(1)
	return nil, fmt.Errorf("412: %w", object.ErrChanged)
}

func TestReadaheadSequentialOnly(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(10, 8*testChunk)
	v := f.add("obj", data)
	c := openCache(t, t.TempDir(), f, 100*testChunk, 3*testChunk)

	// Random: far-apart reads never start readahead.
	r := c.NewReader(v)
	for _, off := range []int64{5 * testChunk, 1 * testChunk, 7 * testChunk, 3 * testChunk} {
		if _, err := r.ReadAt(context.Background(), make([]byte, 100), off); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Stats().Readaheads; n != 0 {
		t.Fatalf("random reads started %d readaheads", n)
	}

	// Sequential: reading the start in small steps fetches the next chunks
	// in the background, at most 3 ahead.
	v2 := f.add("seq", data)
	r2 := c.NewReader(v2)
	for off := int64(0); off < 4096*4; off += 4096 {
		if _, err := r2.ReadAt(context.Background(), make([]byte, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(5*time.Second, func() bool {
		return f.callsFor("seq", 1*testChunk) > 0 && f.callsFor("seq", 2*testChunk) > 0 && f.callsFor("seq", 3*testChunk) > 0
	})
	c.Close() // waits for background fetches
	for i := 1; i <= 3; i++ {
		if f.callsFor("seq", int64(i)*testChunk) != 1 {
			t.Errorf("chunk %d not read ahead exactly once", i)
		}
	}
	if f.callsFor("seq", 4*testChunk) != 0 {
		t.Error("read ahead beyond the window")
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	dir := t.TempDir()
	openCache(t, dir, newFakeFetcher(), 10*testChunk, 0)
	if _, err := Open(Options{MaxConcurrentGets: testGets, ReadTimeout: testReadTimeout, Dir: dir, MaxBytes: 10 * testChunk, ChunkSize: testChunk}, newFakeFetcher()); err == nil {
		t.Fatal("second Open of a locked directory succeeded")
	}
}

func TestChunkNamesDoNotContainKey(t *testing.T) {
	f := newFakeFetcher()
	v := f.add("../../etc/passwd", randomBytes(11, 100))
	dir := t.TempDir()
	c := openCache(t, dir, f, 10*testChunk, 0)
	if _, err := c.ReadAt(context.Background(), v, make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	waitDownloads(t, c)
	des, _ := os.ReadDir(filepath.Join(dir, "objects"))
	if len(des) != 2 {
		t.Fatalf("want an object's file and its map, have %d files", len(des))
	}
	for _, de := range des {
		if _, _, ok := parseObjectName(de.Name()); !ok {
			t.Fatalf("unexpected file name %q", de.Name())
		}
	}
}

func TestReadaheadAfterATailRead(t *testing.T) {
	f := newFakeFetcher()
	v := f.add("doc.pdf", randomBytes(12, 8*testChunk))
	c := openCache(t, t.TempDir(), f, 100*testChunk, 2*testChunk)
	r := c.NewReader(v)
	// A PDF reader looks at the trailer first, then reads from the start.
	if _, err := r.ReadAt(context.Background(), make([]byte, 100), v.Size-100); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	for off := int64(0); off < 4*4096; off += 4096 {
		if _, err := r.ReadAt(context.Background(), make([]byte, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(5*time.Second, func() bool { return f.callsFor("doc.pdf", testChunk) > 0 })
	c.Close()
	if c.Stats().Readaheads == 0 {
		t.Fatal("a tail read disabled readahead for the scan that followed")
	}
}
