package splitter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"s3docs/internal/object"
	"s3docs/splitter/worker"
)

// fakeCache keeps blobs in a directory and serves the source from memory.
type fakeCache struct {
	dir           string
	source        []byte
	mu            sync.Mutex
	reads         int     // ReadAt: reads that fetch chunks
	fragmentReads int     // ReadFragments: small reads
	pieceReads    int     // ReadPieces: short scans
	prefetched    []int64 // offsets announced to Prefetch
	admitErr      error   // AdmitBlob fails so, leaving the file, as the real cache does when its directory was replaced
}

func newFakeCache(t *testing.T, source []byte) *fakeCache {
	return &fakeCache{dir: t.TempDir(), source: source}
}

// ReadFragments reads like ReadAt and counts the small reads.
func (c *fakeCache) ReadFragments(ctx context.Context, v object.Version, p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.fragmentReads++
	c.mu.Unlock()
	return c.readSource(p, off)
}

// ReadPieces reads like ReadAt and counts the short scans.
func (c *fakeCache) ReadPieces(ctx context.Context, v object.Version, p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.pieceReads++
	c.mu.Unlock()
	return c.readSource(p, off)
}

// Prefetch records the offsets.
func (c *fakeCache) Prefetch(ctx context.Context, v object.Version, offs []int64, n int) error {
	c.mu.Lock()
	c.prefetched = append(c.prefetched, offs...)
	c.mu.Unlock()
	return nil
}

func (c *fakeCache) ReadAt(ctx context.Context, v object.Version, p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.readSource(p, off)
}

func (c *fakeCache) readSource(p []byte, off int64) (int, error) {
	if off >= int64(len(c.source)) {
		return 0, io.EOF
	}
	n := copy(p, c.source[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (c *fakeCache) BlobID(v object.Version, what string) string {
	return strings.NewReplacer("/", "_", ":", "_", "\"", "").Replace(v.Key + "-" + v.Identity() + "-" + what)
}

func (c *fakeCache) OpenBlob(id string) (*os.File, error) { return os.Open(filepath.Join(c.dir, id)) }

func (c *fakeCache) TempFile() (*os.File, error) { return os.CreateTemp(c.dir, "tmp.*") }

func (c *fakeCache) AdmitBlob(id, tmpPath string) (int64, error) {
	if c.admitErr != nil {
		return 0, c.admitErr
	}
	fi, err := os.Stat(tmpPath)
	if err != nil {
		return 0, err
	}
	return fi.Size(), os.Rename(tmpPath, filepath.Join(c.dir, id))
}

func (c *fakeCache) temps(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(c.dir, "tmp.*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fakeWorkers answers from a script of outcomes, one per call.
type fakeWorkers struct {
	mu    sync.Mutex
	errs  []error // the next calls' errors; nil entries and an empty list succeed
	calls int
	part  []byte
}

func (f *fakeWorkers) next() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

func (f *fakeWorkers) PageCount(ctx context.Context, src worker.Source) (int, error) {
	// Read like a worker would: through the source.
	if _, err := src.Reader.ReadAt(ctx, make([]byte, 4), 0); err != nil {
		return 0, err
	}
	if err := f.next(); err != nil {
		return 0, err
	}
	return 7, nil
}

func (f *fakeWorkers) Extract(ctx context.Context, src worker.Source, from, thru int, w io.Writer) (int64, error) {
	// A worker streams part of the part before it fails.
	n, err := w.Write(f.part[:len(f.part)/2])
	if err != nil {
		return int64(n), err
	}
	if err := f.next(); err != nil {
		return int64(n), err
	}
	m, err := w.Write(f.part[len(f.part)/2:])
	return int64(n + m), err
}

var testVersion = object.Version{Key: "a/b.pdf", ETag: `"e1"`, Size: 8}

// failed is an error of the pool with outcome o.
func failed(o worker.Outcome, err error) error {
	var de *worker.DocError
	kind := ""
	if errors.As(err, &de) {
		kind = de.Kind
	}
	return &worker.Error{Outcome: o, Kind: kind, Err: err}
}

func crash(what string) error {
	return failed(worker.Crashed, fmt.Errorf("a/b.pdf@x: %w: %s (signal: killed)", worker.ErrCrashed, what))
}

func TestServiceRetriesAWorkerCrashOnce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		errs       []error
		wantCalls  int
		served     bool
		wantErr    error // also matched, if not nil
		remembered bool
	}{
		{"one crash", []error{crash("killed")}, 2, true, nil, false},
		{"two crashes", []error{crash("killed"), crash("killed again")}, 2, false, worker.ErrCrashed, true},
		{"crash then memory", []error{crash("killed"), failed(worker.OutOfMemory, worker.ErrMemoryLimit)}, 2, false, worker.ErrMemoryLimit, true},
		{"crash then timeout", []error{crash("killed"), failed(worker.TimedOut, worker.ErrTimeout)}, 2, false, worker.ErrTimeout, true},
		{"memory limit", []error{failed(worker.OutOfMemory, worker.ErrMemoryLimit)}, 1, false, worker.ErrMemoryLimit, true},
		{"timeout", []error{failed(worker.TimedOut, worker.ErrTimeout)}, 1, false, worker.ErrTimeout, true},
		{"reported panic", []error{failed(worker.Panicked, fmt.Errorf("%w: %w", worker.ErrCrashed, &worker.DocError{Kind: worker.KindPanic, Msg: "panic: x"}))}, 1, false, worker.ErrCrashed, true},
		{"protocol", []error{failed(worker.BrokeProtocol, worker.ErrProtocol)}, 1, false, worker.ErrProtocol, true},
		{"parse error", []error{failed(worker.Refused, &worker.DocError{Msg: "bad xref"})}, 1, false, nil, true},
		{"source", []error{failed(worker.SourceFailed, errors.New("503"))}, 1, false, nil, false},
		{"source timeout", []error{failed(worker.SourceFailed, worker.ErrTimeout)}, 1, false, worker.ErrTimeout, false},
		{"start", []error{failed(worker.NotStarted, errors.New("exec: permission denied"))}, 1, false, nil, false},
		{"page range", []error{failed(worker.Refused, &worker.DocError{Kind: KindPageRange, Msg: "pages 9-9 of 7"})}, 1, false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := newFakeCache(t, []byte("%PDF-1.7"))
			fw := &fakeWorkers{errs: tc.errs}
			s := NewService(fw, cache, nil, nil)
			n, err := s.PageCount(context.Background(), testVersion)
			if fw.calls != tc.wantCalls {
				t.Errorf("%d calls of the workers, want %d", fw.calls, tc.wantCalls)
			}
			if tc.served {
				if err != nil || n != 7 {
					t.Fatalf("PageCount = %d, %v; want 7", n, err)
				}
				return
			}
			if err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("PageCount = %d, %v; want an error matching %v", n, err, tc.wantErr)
			}
			// Remembered or not: the next call fails at once, or asks again.
			before := fw.calls
			_, err2 := s.PageCount(context.Background(), testVersion)
			if asked := fw.calls > before; asked == tc.remembered {
				t.Errorf("second call asked the workers: %v; remembered should be %v (err %v)", asked, tc.remembered, err2)
			}
			var logged *object.LoggedError
			if tc.remembered && !errors.As(err, &logged) {
				t.Errorf("remembered failure %v is not marked logged", err)
			}
		})
	}
}

// A part or page count the cache does not admit leaves no temporary file,
// whoever's job removing it was; the page count is answered all the same.
func TestServiceRefusedBlobLeavesNoFile(t *testing.T) {
	cache := newFakeCache(t, []byte("%PDF-1.7"))
	cache.admitErr = errors.New("no temporary file of the cache")
	s := NewService(&fakeWorkers{part: []byte("part bytes")}, cache, nil, nil)
	if _, err := s.Part(context.Background(), testVersion, 1, 2); err == nil {
		t.Error("Part succeeded though the cache refused it")
	}
	if n, err := s.PageCount(context.Background(), testVersion); n != 7 || err != nil {
		t.Errorf("PageCount with a refused blob: %d, %v; want 7", n, err)
	}
	if tmps := cache.temps(t); len(tmps) != 0 {
		t.Errorf("refused blobs left %v", tmps)
	}
}

func TestServiceNotPDFIsNotFound(t *testing.T) {
	fw := &fakeWorkers{errs: []error{failed(worker.Refused, &worker.DocError{Kind: KindNotPDF, Msg: "no %PDF- header"})}}
	s := NewService(fw, newFakeCache(t, []byte("<html>")), nil, nil)
	if _, err := s.PageCount(context.Background(), testVersion); !errors.Is(err, object.ErrNotFound) {
		t.Errorf("not a PDF: %v, want object.ErrNotFound", err)
	}
}

// A part streams into a temporary file of the cache and is admitted as a
// blob; a failed one leaves nothing behind.
func TestServicePartStreamsIntoTheCache(t *testing.T) {
	cache := newFakeCache(t, []byte("%PDF-1.7"))
	part := bytes.Repeat([]byte("part bytes "), 100_000)
	fw := &fakeWorkers{part: part, errs: []error{failed(worker.SourceFailed, errors.New("503"))}}
	s := NewService(fw, cache, nil, nil)
	if _, err := s.Part(context.Background(), testVersion, 1, 2); err == nil {
		t.Fatal("Part with a failing source succeeded")
	}
	if tmps := cache.temps(t); len(tmps) != 0 {
		t.Errorf("a failed part left %v", tmps)
	}
	f, err := s.Part(context.Background(), testVersion, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, part) {
		t.Fatalf("part of %d bytes, %v; want %d", len(got), err, len(part))
	}
	calls := fw.calls
	if f2, err := s.Part(context.Background(), testVersion, 1, 2); err != nil {
		t.Fatal(err)
	} else {
		f2.Close()
	}
	if fw.calls != calls {
		t.Error("a cached part was made again")
	}
}

// TestVersionReaderPolicy: a worker's small reads that jump fetch
// fragments; a run of reads that each continue the last (a scan) and large
// reads fetch pieces for their first MiB, then chunks; prefetches reach the
// cache.
func TestVersionReaderPolicy(t *testing.T) {
	cache := newFakeCache(t, make([]byte, 4<<20))
	s := NewService(nil, cache, nil, nil)
	r := s.source(object.Version{Key: "a.pdf", ETag: `"1"`, Size: 4 << 20}).Reader.(*versionReader)
	ctx := context.Background()
	read := func(off int64, n int) {
		t.Helper()
		if _, err := r.ReadAt(ctx, make([]byte, n), off); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name                   string
		do                     func()
		chunks, pieces, smalls int
	}{
		{"small reads here and there", func() { read(100<<10, 4096); read(500<<10, 4096); read(8<<10, 1000) }, 0, 0, 3},
		{"an object across two blocks", func() { read(40960, 4096); read(45056, 4096) }, 0, 0, 2},
		{"a short scan", func() { read(0, 4096); read(4096, 4096); read(8192, 4096); read(12288, 4096) }, 0, 2, 2},
		{"a large read", func() { read(200<<10, 64<<10) }, 0, 1, 0},
		{"a long scan", func() {
			for off := int64(0); off < 2<<20; off += 32 << 10 {
				read(off, 32<<10)
			}
		}, 32, 32, 0},
		// A scan whose reads overlap: findEndstream and the rebuild read a
		// piece and the first bytes of the next (the worker's 4 KiB
		// block), then the next piece from its start. Each read was taken
		// for a jump: pieces and fragments all the way (a rebuild of
		// 1 GiB: 1,024 GETs of 1 MiB, not 128 chunks), 0, 32 and 32 here.
		{"a long scan of overlapping reads", func() {
			for off := int64(0); off < 2<<20; off += 64 << 10 {
				read(off, 64<<10)
				read(off+64<<10, 4096)
			}
		}, 34, 29, 1},
		// findEndstream's reads: 64 KiB and 16 bytes, each from where
		// the last's 64 KiB ended.
		{"a search for endstream", func() {
			for off := int64(0); off < 2<<20; off += 64 << 10 {
				read(off, 64<<10+16)
			}
		}, 17, 15, 0},
		// A stream's data, then the block after its end (is "endstream"
		// there?), then the next block: not a scan.
		{"a stream's data and what follows", func() { read(10000, 20000); read(28672, 4096); read(32768, 4096) }, 0, 1, 2},
	} {
		cache.mu.Lock()
		cache.reads, cache.pieceReads, cache.fragmentReads = 0, 0, 0
		cache.mu.Unlock()
		r.start, r.end = -1, -1
		tc.do()
		if cache.reads != tc.chunks || cache.pieceReads != tc.pieces || cache.fragmentReads != tc.smalls {
			t.Errorf("%s: %d chunk reads, %d piece reads and %d small reads, want %d, %d and %d", tc.name,
				cache.reads, cache.pieceReads, cache.fragmentReads, tc.chunks, tc.pieces, tc.smalls)
		}
	}
	if err := r.Prefetch(ctx, []int64{1, 2}, 1024); err != nil || len(cache.prefetched) != 2 {
		t.Errorf("Prefetch: %v, cache saw %v", err, cache.prefetched)
	}
}
