// Package chunkcache serves byte ranges of immutable object versions from a
// bounded directory of fixed-size chunk files. Chunk i of an object holds
// bytes [i*ChunkSize, (i+1)*ChunkSize) and is fetched by exactly one ranged
// GET, however many readers want it at once. The directory is the index: a
// restart reuses every complete chunk without a GET.
package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"s3docs/internal/object"
)

// Fetcher reads bytes [off, off+n) of exactly version v. The reader must yield
// n bytes or fail; the cache checks the length anyway.
type Fetcher interface {
	GetRange(ctx context.Context, v object.Version, off, n int64) (io.ReadCloser, error)
}

// Options configure a Cache.
type Options struct {
	Dir       string
	MaxBytes  int64
	ChunkSize int64
	// Namespace separates objects of different buckets or endpoints that
	// share a cache directory's key space (e.g. "endpoint|bucket|prefix").
	Namespace string
	// MaxConcurrentGets bounds fetches in flight, foreground and readahead.
	MaxConcurrentGets int
	// ReadAhead bounds the bytes a sequential reader may have fetched ahead of
	// it. It is further capped at half the cache so readahead cannot evict
	// what is about to be read.
	ReadAhead int64
	// ReadTimeout is the one deadline of a read: the download of a chunk,
	// every attempt and resume included, ends by then, and a reader waits
	// at most readGrace longer (see retry.go). Downloads run detached from
	// the reader's context, so this is what stops a stuck one.
	ReadTimeout time.Duration
	// NoSpaceBackoff is how long reads bypass the cache once its file
	// system was found full, before a fetch tries to store a chunk again:
	// long enough not to waste a GET per read on a disk that stays full,
	// short enough that caching resumes soon after space returns.
	NoSpaceBackoff time.Duration
	Logger         *slog.Logger
	// OnFetch, if set, is told of every chunk fetch (one ranged GET, with its
	// retries and resumes) when it ends: bytes stored, time taken, outcome.
	OnFetch func(bytes int64, d time.Duration, err error)
}

// Cache is safe for concurrent use. Its parts, each with one job:
//
//   - disk (disk.go, index.go, dir.go, recover.go; layout.go): what is
//     held. Entry files in the locked cache directory and their LRU index,
//     within the byte bound; entries by id, nothing of objects or fetches.
//   - downloads (download.go, flight.go, retry.go): what is being fetched.
//     One download per entry shared by its readers, its retries under one
//     deadline, the memory of ranges that just failed, the GET slots.
//   - the policy of what to fetch, applied per read: the Reader of a file
//     handle (reader.go) tells sequential from random access; readahead.go
//     fetches ahead of sequential readers; pieces.go has random ones fetch
//     pieces; read.go serves each read from the entries they name.
//   - fullDisk (uncached.go): reads served uncached while the disk is full.
//   - Blobs (blob.go): the splitter's derived files, entries of the disk.
//   - tasks (tasks.go): the goroutines, stopped by Close.
//
// Lock order. These are the only locks taken while another is held (the
// one on the left):
//
//	disk.dirMu   → index.mu, cacheDir.mu  (recovering the directory)
//	downloads.mu → index.mu, tasks.mu     (starting a download)
//
// Every other lock (flight.mu, fullDisk.mu, Reader.mu, and those above
// when taken alone) is held with no other, and the index's lock never
// across I/O: evicted files are unlinked after it is released.
type Cache struct {
	*Blobs

	opt       Options
	log       *slog.Logger
	geo       geometry
	stats     *counters
	disk      *disk
	downloads *downloads
	ahead     readahead
	full      *fullDisk
	tasks     *tasks
}

// Open takes the directory (creating it), locks it against a second daemon,
// rebuilds the index from the chunk files there and removes leftovers.
func Open(o Options, f Fetcher) (*Cache, error) {
	if o.ChunkSize <= 0 {
		return nil, errors.New("chunkcache: chunk size must be positive")
	}
	if o.MaxBytes < o.ChunkSize {
		return nil, fmt.Errorf("chunkcache: cache size %d is smaller than one chunk (%d)", o.MaxBytes, o.ChunkSize)
	}
	// Their defaults are mountopts's (--max-concurrent-gets,
	// --read-timeout), passed down: defined once, there.
	if o.MaxConcurrentGets <= 0 {
		return nil, errors.New("chunkcache: MaxConcurrentGets must be positive")
	}
	if o.ReadTimeout <= 0 {
		return nil, errors.New("chunkcache: ReadTimeout must be positive")
	}
	if o.NoSpaceBackoff <= 0 {
		o.NoSpaceBackoff = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	stats := &counters{}
	st, err := openDisk(o.Dir, o.MaxBytes, o.ChunkSize, stats, o.Logger)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		Blobs: &Blobs{disk: st, namespace: o.Namespace},
		opt:   o,
		log:   o.Logger,
		geo:   newGeometry(o.Namespace, o.ChunkSize),
		stats: stats,
		disk:  st,
		ahead: newReadahead(o),
		full:  &fullDisk{backoff: o.NoSpaceBackoff},
		tasks: newTasks(),
	}
	c.downloads = &downloads{
		geo:     c.geo,
		fetcher: f,
		disk:    st,
		full:    c.full,
		tasks:   c.tasks,
		stats:   stats,
		log:     o.Logger,
		timeout: o.ReadTimeout,
		onFetch: o.OnFetch,
		gets:    newSlots(o.MaxConcurrentGets),
		flights: map[string]*flight{},
		failed:  map[string]failure{},
	}
	c.tasks.add()
	go func() {
		defer c.tasks.done()
		st.watch(c.tasks.ctx)
	}()
	return c, nil
}

// Close stops background fetches and releases the directory lock.
func (c *Cache) Close() error {
	c.tasks.stop()
	c.disk.close()
	return nil
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats { return c.stats.snapshot() }

// MaxBytes is the configured bound of the cache (--cache-size).
func (c *Cache) MaxBytes() int64 { return c.opt.MaxBytes }

// Limit is the bound the cache keeps now: MaxBytes, or less while its file
// system has no room for that much (see disk.shrinkToFit and raiseBound).
func (c *Cache) Limit() int64 { return c.disk.idx.bound() }

// Bytes is the size of all chunks in the index.
func (c *Cache) Bytes() int64 { return c.disk.idx.bytes() }

// Discard drops every cached chunk of v, which the caller found gone from
// the object store (overwritten or deleted): they can never be served again
// and would only take room until the LRU reached them. Chunks a reader is
// waiting for or a worker has pinned stay until the LRU evicts them.
//
// The ids are hashes, so every id v can have is computed and looked up:
// work in proportion to v's size, which comes from the server. A version of
// more than maxDiscardChunks chunks is left to the LRU (its entries can
// never be served: their ids hold the version), and the ids are made a
// batch at a time, so that a size of exabytes costs neither memory nor a
// hung lookup.
func (c *Cache) Discard(v object.Version) {
	chunks := c.geo.chunks(v)
	if chunks > maxDiscardChunks {
		c.log.Debug("version too big to discard; its chunks are left to eviction", "key", v.Key,
			"version", v.Identity(), "size", v.Size)
		return
	}
	n := 0
	for from := int64(0); from < chunks; from += discardBatch {
		n += c.disk.discard(c.geo.entryIDs(v, from, min(from+discardBatch, chunks)))
	}
	if n > 0 {
		c.log.Info("discarded chunks of a version gone from the store", "key", v.Key,
			"version", v.Identity(), "chunks", n)
	}
}

// maxDiscardChunks bounds what Discard enumerates: 512 GiB of 8 MiB chunks,
// about 600,000 hashes with their pieces, a fraction of a second.
// discardBatch is how many chunks' ids it holds at once.
const (
	maxDiscardChunks = 1 << 16
	discardBatch     = 1024
)
