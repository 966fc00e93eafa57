package splitter

import (
	"context"
	"errors"
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
)

// Cache is what the service needs of the chunk cache: the source PDF as
// pinned chunk files, and a place to keep what it derives from it.
type Cache interface {
	Pin(ctx context.Context, v object.Version) (paths []string, release func(), err error)
	BlobID(v object.Version, what string) string
	OpenBlob(id string) (*os.File, error)
	TempFile() (*os.File, error)
	AdmitBlob(id, tmpPath string) (int64, error)
}

// Service answers page counts and page-range parts of object versions,
// from the cache when it can, else from a worker process. A version whose
// parse failed is remembered, so a broken PDF is parsed once, not once per
// lookup.
type Service struct {
	pool    *Pool
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

// NewService serves parts through pool, keeping results in cache. observe,
// if not nil, is told of every page count and part the workers make ("pages"
// or "part"), with its duration and outcome.
func NewService(pool *Pool, cache Cache, log *slog.Logger, observe func(op string, d time.Duration, err error)) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if observe == nil {
		observe = func(string, time.Duration, error) {}
	}
	return &Service{pool: pool, cache: cache, log: log, observe: observe, failures: map[string]error{}}
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
		n, err := s.pool.PageCount(ctx, s.source(v))
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
			tmp, err := s.cache.TempFile()
			if err != nil {
				return nil, err
			}
			tmp.Close()
			start := time.Now()
			_, err = s.pool.Extract(ctx, s.source(v), from, thru, tmp.Name())
			s.observe("part", time.Since(start), err)
			if err != nil {
				os.Remove(tmp.Name())
				return nil, err
			}
			_, err = s.cache.AdmitBlob(id, tmp.Name())
			return nil, err
		}, v)
		if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("part %d-%d of %s evicted as soon as it was made; is the cache too small?", from, thru, v.Key)
}

// shared runs fn once for all concurrent callers asking for id, on a context
// of its own (a caller giving up must not fail the others), and remembers
// failures that come from the document rather than from getting its bytes.
func (s *Service) shared(ctx context.Context, id string, fn func(context.Context) (any, error), v object.Version) (any, error) {
	ch := s.flights.DoChan(id, func() (any, error) {
		// The pool enforces the split timeout; this context only has to
		// outlive the callers.
		res, err := fn(context.Background())
		if err != nil && isDocumentFailure(err) {
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
// failure that is not its fault: fetching its bytes, starting a worker, a
// full disk, shutting down (try again next time).
func isDocumentFailure(err error) bool {
	var se *SourceError
	if errors.As(err, &se) {
		return false
	}
	var de *workerDocError
	return errors.As(err, &de) || errors.Is(err, ErrWorkerMemoryLimit) ||
		errors.Is(err, ErrWorkerTimeout) || errors.Is(err, ErrWorkerCrashed)
}

func (s *Service) source(v object.Version) Source {
	return Source{
		// Unique per version, and readable in the pool's log lines.
		ID:   v.Key + "@" + v.Identity(),
		Size: v.Size,
		Open: func(ctx context.Context) ([]string, func(), error) {
			paths, release, err := s.cache.Pin(ctx, v)
			if err != nil {
				return nil, nil, &SourceError{Key: v.Key, Err: err}
			}
			return paths, release, nil
		},
	}
}

// SourceError is a failure to get the PDF's bytes, not a fault of the PDF.
type SourceError struct {
	Key string
	Err error
}

func (e *SourceError) Error() string { return "read " + e.Key + ": " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

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
	if errors.Is(err, ErrNotPDF) {
		err = fmt.Errorf("%w: %w", object.ErrNotFound, err)
	}
	err = loggedError{err}
	s.failures[versionKey(v)] = err
	return err
}

// loggedError is a failure already logged here: the file system answers it
// on every lookup, and one log line per broken PDF is enough.
type loggedError struct{ error }

func (e loggedError) Unwrap() error       { return e.error }
func (e loggedError) AlreadyLogged() bool { return true }

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
	tmp, err := s.cache.TempFile()
	if err != nil {
		return
	}
	_, err = fmt.Fprintf(tmp, "%d\n", n)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		_, err = s.cache.AdmitBlob(id, tmp.Name())
	}
	if err != nil {
		os.Remove(tmp.Name())
		s.log.Warn("could not cache a page count", "err", err)
	}
}
