// Package chunkcache serves byte ranges of immutable object versions from a
// bounded directory of cache files: one sparse file per object version,
// holding the chunks fetched so far at their offsets. Chunk i of an object
// holds bytes [i*ChunkSize, (i+1)*ChunkSize) and is fetched by exactly one
// ranged GET, however many readers want it at once. Each file's map records
// which chunks it holds: a restart reuses every complete chunk without a
// GET. A file that holds its whole object can be handed to the kernel, which
// then reads it without the daemon (FUSE passthrough: Reader.Backing).
package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
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

	// clock, when set, is the clock of the cache's two waits that tests
	// must be able to pass without waiting: the full disk's backoff and
	// the memory of failed ranges. The wall clock otherwise.
	clock clock
}

// clock tells the time.
type clock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Cache is safe for concurrent use. Its parts, each with one job:
//
//   - disk (disk.go, index.go, dir.go, recover.go; layout.go, objmap.go):
//     what is held. Objects' files and their maps, and blobs, in the locked
//     cache directory, and their LRU index of entries (chunks, pieces,
//     fragments, blobs) within the byte bound; entries by span, nothing of
//     fetches or access patterns.
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
//	disk.dirMu   → objFile.mu, index.mu, cacheDir.mu  (recovering the directory)
//	objFile.mu   → index.mu, objFile.mapMu, cacheDir.mu (reading, punching, removing)
//	objFile.mapMu → index.mu, cacheDir.mu              (appending to a map)
//	downloads.mu → index.mu, tasks.mu                 (starting a download)
//
// Every other lock (flight.mu, fullDisk.mu, Reader.mu, and those above
// when taken alone) is held with no other, and the index's lock never
// across I/O: evicted ranges are punched, and files removed, after it is
// released. An object's lock is held across the I/O on its file: shared by
// readers (no hole may open under them) and writers registering their
// range, exclusively while holes are punched or the file removed.
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
	if o.clock == nil {
		o.clock = wallClock{}
	}
	stats := &counters{}
	geo := newGeometry(o.Namespace, o.ChunkSize)
	st, err := openDisk(o.Dir, o.MaxBytes, geo, stats, o.Logger)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		Blobs: &Blobs{disk: st, namespace: o.Namespace},
		opt:   o,
		log:   o.Logger,
		geo:   geo,
		stats: stats,
		disk:  st,
		ahead: newReadahead(o),
		full:  &fullDisk{backoff: o.NoSpaceBackoff, now: o.clock.Now},
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
		now:     o.clock.Now,
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

// Discard drops what the cache holds of v, which the caller found gone from
// the object store (overwritten or deleted): those bytes can never be
// served again and would only take room until the LRU reached them. Its
// file is removed (a reader, or the kernel, holding it open keeps reading
// it); entries a reader is waiting for stay until the LRU evicts them.
func (c *Cache) Discard(v object.Version) {
	if n := c.disk.discard(c.geo.objectID(v)); n > 0 {
		c.log.Info("discarded chunks of a version gone from the store", "key", v.Key,
			"version", v.Identity(), "chunks", n)
	}
}

// PinnedBytes is the size of the objects whose files the kernel reads now
// (FUSE passthrough): never evicted while it does, at most half the bound.
func (c *Cache) PinnedBytes() int64 { return c.disk.idx.pinnedBytes() }

// ProbeFile is a file of the cache's file system, unlinked and empty, to
// try FUSE passthrough on at mount: whether the kernel takes the cache's
// files as backing files depends on their file system too.
func (c *Cache) ProbeFile() (*os.File, error) {
	f, err := c.disk.dir.Load().createTemp(blobTmpPrefix)
	if err != nil {
		return nil, err
	}
	if name, ok := c.disk.dir.Load().isTempOf(f.Name()); ok {
		c.disk.dir.Load().removeTemp(name)
	}
	return f, nil
}
