// Package splitter answers the page count of a PDF and the parts of its
// pages (small PDFs of a page range) for the .parts/ tree. It keeps them in
// the chunk cache as blobs, makes them in worker processes (splitter/worker,
// which parse with splitter/pdfdoc) that read the PDF through the cache at
// the grain their reads show, and remembers a version whose parse failed
// for its own fault so that a broken PDF is parsed once.
package splitter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"s3docs/internal/object"
	"s3docs/splitter/worker"
)

// Kinds of document errors, as the worker names them across the process
// boundary (see worker.ServeOptions.Classify): the worker's wiring maps the
// PDF package's sentinel errors to these.
const (
	KindNotPDF    = "notpdf"
	KindEncrypted = "encrypted"
	KindPageRange = "pagerange"
)

// Cache is what the service needs of the chunk cache: the source PDF's
// bytes, read by ranges as the worker asks for them, and a place to keep
// what it derives from it.
type Cache interface {
	ReadAt(ctx context.Context, v object.Version, p []byte, off int64) (int, error)
	// ReadFragments is ReadAt for a small read: a miss fetches the few KiB
	// it touches, not the chunk.
	ReadFragments(ctx context.Context, v object.Version, p []byte, off int64) (int, error)
	// ReadPieces is ReadAt for a short scan: a miss fetches the pieces (an
	// eighth of a chunk) it touches.
	ReadPieces(ctx context.Context, v object.Version, p []byte, off int64) (int, error)
	// Prefetch fetches at once what reads of n bytes at each of offs need.
	Prefetch(ctx context.Context, v object.Version, offs []int64, n int) error
	BlobID(v object.Version, what string) string
	OpenBlob(id string) (*os.File, error)
	TempFile() (*os.File, error)
	AdmitBlob(id, tmpPath string) (int64, error)
}

// Workers is what the service needs of the worker pool (*worker.Pool).
type Workers interface {
	PageCount(ctx context.Context, src worker.Source) (int, error)
	Extract(ctx context.Context, src worker.Source, from, thru int, w io.Writer) (int64, error)
}

// Service answers page counts and page-range parts of object versions,
// from the cache when it can, else from a worker process. A version whose
// parse failed is remembered, so a broken PDF is parsed once, not once per
// lookup.
type Service struct {
	workers Workers
	cache   Cache
	log     *slog.Logger
	observe func(op string, d time.Duration, err error)
	flights singleflight.Group

	mu       sync.Mutex
	failures map[string]error // by version identity
}

// maxRememberedFailures bounds the failure memory; past it, the oldest
// knowledge is simply dropped (a re-parse is the only cost).
const maxRememberedFailures = 10000

// NewService serves parts through workers, keeping results in cache.
// observe, if not nil, is told of every page count and part the workers make
// ("pages" or "part"), with its duration and outcome.
func NewService(workers Workers, cache Cache, log *slog.Logger, observe func(op string, d time.Duration, err error)) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if observe == nil {
		observe = func(string, time.Duration, error) {}
	}
	return &Service{workers: workers, cache: cache, log: log, observe: observe, failures: map[string]error{}}
}

func versionKey(v object.Version) string { return v.Key + "\x00" + v.Identity() }

// PageCount returns the number of pages of v.
func (s *Service) PageCount(ctx context.Context, v object.Version) (int, error) {
	id := s.cache.BlobID(v, "pagecount")
	if n, err := s.cachedCount(id); err == nil {
		return n, nil
	}
	if err := s.failure(v); err != nil {
		return 0, err
	}
	res, err := s.shared(ctx, id, func(ctx context.Context) (any, error) {
		start := time.Now()
		n, err := s.workers.PageCount(ctx, s.source(v))
		s.observe("pages", time.Since(start), err)
		if err != nil {
			return nil, err
		}
		s.storeCount(id, n)
		return n, nil
	}, v)
	if err != nil {
		return 0, err
	}
	return res.(int), nil
}

// Part returns an open file holding pages from..thru of v as a PDF. The
// caller has checked the range against PageCount.
func (s *Service) Part(ctx context.Context, v object.Version, from, thru int) (*os.File, error) {
	id := s.cache.BlobID(v, fmt.Sprintf("pages-%d-%d", from, thru))
	for attempt := 0; attempt < 3; attempt++ {
		if f, err := s.cache.OpenBlob(id); err == nil {
			return f, nil
		}
		if err := s.failure(v); err != nil {
			return nil, err
		}
		_, err := s.shared(ctx, id, func(ctx context.Context) (any, error) {
			// Made by a flight that ended between our miss and this one.
			if f, err := s.cache.OpenBlob(id); err == nil {
				f.Close()
				return nil, nil
			}
			start := time.Now()
			err := s.makePart(ctx, v, from, thru, id)
			s.observe("part", time.Since(start), err)
			return nil, err
		}, v)
		if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("part %d-%d of %s evicted as soon as it was made; is the cache too small?", from, thru, v.Key)
}

// makePart has a worker stream the part into a temporary file of the
// cache, then admits it as blob id.
func (s *Service) makePart(ctx context.Context, v object.Version, from, thru int, id string) error {
	return s.admit(id, func(w io.Writer) error {
		_, err := s.workers.Extract(ctx, s.source(v), from, thru, w)
		return err
	})
}

// admit has write fill a temporary file of the cache, then admits it as
// blob id. The file is removed on every failure: the cache removes one it
// refuses, but not one it cannot tell for its own (its directory was
// replaced meanwhile), and removing a removed file costs nothing.
func (s *Service) admit(id string, write func(io.Writer) error) error {
	tmp, err := s.cache.TempFile()
	if err != nil {
		return err
	}
	err = write(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if _, err = s.cache.AdmitBlob(id, tmp.Name()); err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// shared runs fn once for all concurrent callers asking for id, on a context
// of its own (a caller giving up must not fail the others), and remembers
// failures that come from the document rather than from getting its bytes.
// A worker that died without saying why (killed from outside, say) gets one
// more try before the document is blamed.
func (s *Service) shared(ctx context.Context, id string, fn func(context.Context) (any, error), v object.Version) (any, error) {
	ch := s.flights.DoChan(id, func() (any, error) {
		// The pool enforces the split timeout; this context only has to
		// outlive the callers.
		res, err := fn(context.Background())
		if outcome, _ := worker.OutcomeOf(err); outcome == worker.Crashed {
			// Died of something other than a reported panic, its memory
			// limit or its timeout: a signal from outside (the kernel's
			// OOM killer, an operator), a runtime crash.
			s.log.Warn("split worker crashed; trying once more", "key", v.Key, "err", err)
			res, err = fn(context.Background())
		}
		if isDocumentFailure(err) {
			err = s.remember(v, err)
		}
		return res, err
	})
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// isDocumentFailure tells a broken or hostile PDF (remember it) from a
// failure that is not its fault: reading its bytes, starting a worker, a
// full disk, a range the caller got wrong, shutting down (try again next
// time).
func isDocumentFailure(err error) bool {
	outcome, kind := worker.OutcomeOf(err)
	switch outcome {
	case worker.Refused:
		return kind != KindPageRange
	case worker.Panicked, worker.OutOfMemory, worker.TimedOut, worker.BrokeProtocol, worker.Crashed:
		return true
	}
	return false
}

func (s *Service) source(v object.Version) worker.Source {
	return worker.Source{
		// Unique per version, and readable in the pool's log lines.
		ID:     v.Key + "@" + v.Identity(),
		Size:   v.Size,
		Reader: &versionReader{c: s.cache, v: v, start: -1, end: -1},
	}
}

// versionReader reads one version through the cache for a worker: only
// what the worker asks for is fetched, at the grain its reads show. A worker
// parsing a PDF jumps from object to object by small reads, wherever the
// cross-reference data sends it: each of those fetches a few KiB (a
// fragment), not the chunk around it. A run of reads that each continue the
// last is a scan (of a cross-reference table, of a stream's data): it
// fetches pieces (an eighth of a chunk) for its first scanPieces bytes,
// then whole chunks.
type versionReader struct {
	c Cache
	v object.Version

	mu         sync.Mutex
	start, end int64 // where the last read began and ended
	run        int   // reads in a row that each went on from the last
	scanned    int64 // bytes read by those reads
}

// smallRead is the largest read that may fetch fragments; scanRun is how
// many reads in a row make a scan; scanPieces is how far a scan fetches
// pieces before it fetches chunks.
const (
	smallRead  = 8 << 10
	scanRun    = 2
	scanPieces = 1 << 20
)

func (r *versionReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	n := int64(len(p))
	r.mu.Lock()
	switch {
	case off == r.end:
		r.run++
		r.scanned += n
		r.start, r.end = off, off+n
	case off >= r.start && off < r.end && off+n > r.end:
		// A read that overlaps the last one and goes on past it. A large
		// one goes on with a scan whose reads overlap: the worker reads a
		// piece, then the first bytes of the next (a 4 KiB block of its
		// cache), then the next piece from its start. A small one is a
		// look just past what was read (the block after a stream's data,
		// for "endstream" or the next object): it leaves the run as it
		// was, neither part of it nor a jump.
		if n > smallRead {
			r.run++
			r.scanned += n
			r.start, r.end = off, off+n
		}
	default:
		r.run, r.scanned = 0, n
		r.start, r.end = off, off+n
	}
	run, scanned := r.run, r.scanned
	r.mu.Unlock()
	switch {
	case n <= smallRead && run < scanRun:
		return r.c.ReadFragments(ctx, r.v, p, off)
	case scanned <= scanPieces:
		return r.c.ReadPieces(ctx, r.v, p, off)
	}
	return r.c.ReadAt(ctx, r.v, p, off)
}

// Prefetch fetches at once what the worker's announced reads need.
func (r *versionReader) Prefetch(ctx context.Context, offs []int64, n int) error {
	return r.c.Prefetch(ctx, r.v, offs, n)
}

func (s *Service) failure(v object.Version) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures[versionKey(v)]
}

func (s *Service) remember(v object.Version, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) >= maxRememberedFailures {
		for k := range s.failures {
			delete(s.failures, k)
			break
		}
	}
	s.log.Error("cannot split PDF; not trying this version again", "key", v.Key, "err", err)
	// Not a PDF is "no such directory" to the file system; everything else
	// is an I/O error.
	if _, kind := worker.OutcomeOf(err); kind == KindNotPDF {
		err = fmt.Errorf("%w: %w", object.ErrNotFound, err)
	}
	err = &object.LoggedError{Err: err}
	s.failures[versionKey(v)] = err
	return err
}

func (s *Service) cachedCount(id string) (int, error) {
	f, err := s.cache.OpenBlob(id)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// storeCount keeps the page count on disk so that listing a PDF's parts
// after a restart needs no parse. Failing to store it only costs a parse.
func (s *Service) storeCount(id string, n int) {
	err := s.admit(id, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%d\n", n)
		return err
	})
	if err != nil {
		s.log.Warn("could not cache a page count", "err", err)
	}
}
