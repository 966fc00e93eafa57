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
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/semaphore"

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

// Stats are counters since Open.
type Stats struct {
	Gets       int64 // GETs started: chunk fetches, and uncached reads while the disk is full
	GetBytes   int64 // bytes stored by completed fetches
	Hits       int64 // chunk reads served from disk at once
	Misses     int64 // chunk reads that had to wait for a fetch
	Joins      int64 // misses that shared another caller's fetch
	Evictions  int64
	Readaheads int64 // fetches started by readahead
	BadChunks  int64 // chunk files dropped for a wrong checksum or size
	InFlight   int64 // fetches running now
	Uncached   int64 // reads served straight from the store: the cache's disk was full
}

type counters struct {
	gets, getBytes, hits, misses, joins, evictions, readaheads, badChunks, inFlight, uncached atomic.Int64
}

// entry is one chunk file on disk.
type entry struct {
	name string
	size int64
	crc  uint32
	// verified is false for chunks found at startup until their checksum has
	// been checked once; a crash can leave a renamed file with bad content
	// only through disk corruption, but a wrong byte is never acceptable.
	verified bool
	// touched is when the file's mtime was last set: the mtime is the
	// recency a restart sorts by, so hits refresh it, at most once per
	// touchEvery so that hits stay cheap.
	touched time.Time
}

const touchEvery = 10 * time.Minute

// Cache is safe for concurrent use.
type Cache struct {
	opt       Options
	fetcher   Fetcher
	log       *slog.Logger
	raChunks  int64 // readahead distance in chunks
	gets      *semaphore.Weighted
	readahead *semaphore.Weighted
	stats     counters

	// ctx owns every background fetch; Close cancels it and waits for them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	lru    *simplelru.LRU[string, entry]
	total  int64
	// awaited counts readers waiting for a chunk they missed, and pins (see
	// Pin). Eviction skips those chunks: otherwise a small cache under churn
	// could evict a chunk between its fetch and its waiters opening it.
	awaited map[string]int
	// flights are the chunk downloads running now, by chunk id.
	flights map[string]*flight
	// noSpaceUntil: the cache's file system was full; reads bypass the
	// cache until then (see noteNoSpace).
	noSpaceUntil, noSpaceLogged time.Time
	// limit is the bound eviction keeps: --cache-size, lowered when the
	// file system fills up before the cache does.
	limit int64
	// pieceSize is the size of the pieces random readers fetch (see
	// piece.go); 0 for none.
	pieceSize int64
	// failed are chunks whose download failed moments ago (retry.go).
	failed map[string]failure

	// dir is the cache directory held open and locked; it changes only
	// when the directory was deleted under the daemon (see recover.go).
	dir   atomic.Pointer[cacheDir]
	dirMu sync.Mutex // serializes recoverDir
	// retired are directories found deleted, closed by Close: a reader
	// may still be using them.
	retired []*cacheDir
	// lost: the cache directory is gone and could not be made again;
	// reads are served uncached until it can.
	lost atomic.Bool
	// movedLogged: the path was found to name another directory than the
	// one held, and that was logged.
	movedLogged bool
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
	if o.MaxConcurrentGets <= 0 {
		o.MaxConcurrentGets = 16
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.NoSpaceBackoff <= 0 {
		o.NoSpaceBackoff = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		opt:     o,
		fetcher: f,
		log:     o.Logger,
		gets:    semaphore.NewWeighted(int64(o.MaxConcurrentGets)),
		awaited: map[string]int{},
		flights: map[string]*flight{},
		failed:  map[string]failure{},
		limit:   o.MaxBytes,

		pieceSize: pieceSizeFor(o.ChunkSize),
	}
	c.raChunks = min(o.ReadAhead/o.ChunkSize, o.MaxBytes/o.ChunkSize/2)
	if c.raChunks > 0 {
		c.readahead = semaphore.NewWeighted(c.raChunks * o.ChunkSize)
	}
	// The LRU is bounded in bytes by us, not in entries by the library.
	c.lru, _ = simplelru.NewLRU[string, entry](math.MaxInt, nil)
	d, l, err := takeDir(o.Dir, o.Logger)
	if err != nil {
		return nil, err
	}
	c.dir.Store(d)
	c.rebuild(d, l)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.watchDir()
	}()
	return c, nil
}

// takeDir makes dir private (or checks that it is), locks it, and checks
// that it holds nothing but s3docs's own files: a directory that holds
// anything else is refused, never cleaned.
func takeDir(dir string, log *slog.Logger) (*cacheDir, layout, error) {
	if err := ensurePrivateDir(dir, log); err != nil {
		return nil, layout{}, err
	}
	return lockDir(dir)
}

// rebuild indexes the entries l found in d's chunks/ from names and sizes
// alone (no reads), so a large cache starts in seconds, and deletes
// leftovers: temporary files of interrupted fetches and entries of the
// wrong size (all named as s3docs names them: lockDir refused anything
// else). The index held before is dropped.
func (c *Cache) rebuild(d *cacheDir, l layout) {
	for _, t := range l.tmps {
		d.removeTemp(t.name)
	}
	removed := 0
	for _, e := range l.invalid {
		d.remove(e.name)
		removed++
	}
	type found struct {
		id    string
		e     entry
		mtime time.Time
	}
	var keep []found
	for _, fe := range l.entries {
		id, size, crc, _ := parseName(fe.name)
		keep = append(keep, found{id, entry{name: fe.name, size: size, crc: crc, touched: fe.info.ModTime()}, fe.info.ModTime()})
	}
	// Oldest first, so the most recently used end up most recent in the LRU.
	sort.Slice(keep, func(i, j int) bool { return keep[i].mtime.Before(keep[j].mtime) })
	c.mu.Lock()
	c.lru.Purge()
	c.total = 0
	var dups []entry
	for _, f := range keep {
		if old, ok := c.lru.Peek(f.id); ok {
			// Two files for one id: keep the newer.
			c.total -= old.size
			dups = append(dups, old)
			removed++
		}
		c.lru.Add(f.id, f.e)
		c.total += f.e.size
	}
	victims := c.evictLocked()
	chunks, total := c.lru.Len(), c.total
	c.mu.Unlock()
	for _, e := range dups {
		d.remove(e.name)
	}
	c.unlink(victims)
	c.log.Info("chunk cache ready", "dir", d.path, "chunks", chunks, "bytes", total,
		"removed_invalid", removed, "removed_tmp", len(l.tmps), "evicted", len(victims))
}

// Close stops background fetches and releases the directory lock.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	for _, d := range c.retired {
		d.close()
	}
	c.dir.Load().close()
	return nil
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Gets:       c.stats.gets.Load(),
		GetBytes:   c.stats.getBytes.Load(),
		Hits:       c.stats.hits.Load(),
		Misses:     c.stats.misses.Load(),
		Joins:      c.stats.joins.Load(),
		Evictions:  c.stats.evictions.Load(),
		Readaheads: c.stats.readaheads.Load(),
		BadChunks:  c.stats.badChunks.Load(),
		InFlight:   c.stats.inFlight.Load(),
		Uncached:   c.stats.uncached.Load(),
	}
}

// MaxBytes is the configured bound of the cache (--cache-size).
func (c *Cache) MaxBytes() int64 { return c.opt.MaxBytes }

// Limit is the bound the cache keeps now: MaxBytes, or less while its file
// system has no room for that much (see noteNoSpace and raiseBound).
func (c *Cache) Limit() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit
}

// Bytes is the size of all chunks in the index.
func (c *Cache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// ReadAt reads len(p) bytes of v at off, fetching missing chunks. Like
// io.ReaderAt it returns io.EOF when it stops short at the end of the object.
func (c *Cache) ReadAt(ctx context.Context, v object.Version, p []byte, off int64) (int, error) {
	return c.readAt(ctx, v, p, off, false)
}

// readAt is ReadAt for a reader whose access is random (see Reader): a miss
// then fetches only the pieces the read touches.
func (c *Cache) readAt(ctx context.Context, v object.Version, p []byte, off int64, random bool) (int, error) {
	parent := ctx
	ctx, cancel := c.readDeadline(ctx)
	defer cancel()
	n, err := c.readChunks(ctx, v, p, off, random)
	if err != nil && !errors.Is(err, io.EOF) && ctx.Err() != nil && parent.Err() == nil {
		err = fmt.Errorf("read %s at %d: no answer within %v: %w", v.Key, off, c.opt.ReadTimeout+readGrace, err)
	}
	return n, err
}

func (c *Cache) readChunks(ctx context.Context, v object.Version, p []byte, off int64, random bool) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset", v.Key)
	}
	if off >= v.Size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), v.Size)
	n := 0
	for off < end {
		idx := off / c.opt.ChunkSize
		within := off - idx*c.opt.ChunkSize
		want := min(end-off, c.opt.ChunkSize-within)
		m, err := c.readChunk(ctx, v, idx, p[n:n+int(want)], within, random)
		n += m
		off += int64(m)
		if err != nil {
			return n, err
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readChunk fills p from chunk idx at offset within: from the chunk if it is
// cached; else from pieces of it if they hold the range; else, for a random
// reader, by fetching the pieces the range touches; else by fetching the
// chunk.
func (c *Cache) readChunk(ctx context.Context, v object.Version, idx int64, p []byte, within int64, random bool) (int, error) {
	whole := c.chunkSpan(v, idx)
	if c.pieceSize > 0 && !c.cached(whole.id) && (random || c.piecesCached(v, idx, within, int64(len(p)))) {
		return c.readPieces(ctx, v, idx, p, within)
	}
	return c.readSpan(ctx, v, whole, p, within)
}

// readSpan fills p from entry s at offset within, fetching it if missing. An
// entry evicted between lookup and open is simply fetched again. A missing
// entry is served from its download as soon as the bytes wanted have
// arrived.
func (c *Cache) readSpan(ctx context.Context, v object.Version, s span, p []byte, within int64) (int, error) {
	id := s.id
	missed := false
	for range reopenAttempts {
		f, err := c.openChunk(id)
		if errors.Is(err, ErrNotCached) {
			if !missed {
				c.stats.misses.Add(1)
				c.await(id, 1)
				defer c.await(id, -1)
			}
			missed = true
			if c.bypassing() {
				return c.readThrough(ctx, v, p, s.off+within)
			}
			fl, err := c.join(v, s, false)
			if err != nil {
				return 0, err
			}
			ok, err := fl.readAt(ctx, p, within, s.n)
			if err != nil {
				return 0, err
			}
			if ok {
				return len(p), nil
			}
			select {
			case <-fl.done:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			if uncachedFailure(fl.err) {
				return c.readThrough(ctx, v, p, s.off+within)
			}
			if fl.err != nil {
				return 0, fl.err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		// The file stays readable through f even if it is evicted now.
		n, err := f.ReadAt(p, within)
		f.Close()
		if n == len(p) {
			if !missed {
				c.stats.hits.Add(1)
			}
			return n, nil
		}
		c.drop(id, fmt.Sprintf("short read at %d: %v", within, err))
	}
	return 0, fmt.Errorf("read %s at %d: cache entry evicted or invalid repeatedly", v.Key, s.off+within)
}

// ErrNotCached: no such chunk or blob in the cache (never made, or evicted).
var ErrNotCached = errors.New("not cached")

// openChunk opens a cached chunk and marks it recently used.
func (c *Cache) openChunk(id string) (*os.File, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.lru.Get(id)
	touch := ok && now.Sub(e.touched) > touchEvery
	if touch {
		e.touched = now
		c.lru.Add(id, e)
	}
	c.mu.Unlock()
	if !ok {
		return nil, ErrNotCached
	}
	d := c.dir.Load()
	if touch {
		d.touch(e.name, now)
	}
	f, err := d.open(e.name)
	if errors.Is(err, os.ErrNotExist) {
		c.forget(id, e)
		return nil, ErrNotCached
	}
	if err != nil {
		return nil, fmt.Errorf("open chunk: %w", err)
	}
	if !e.verified {
		if err := verify(f, e.size, e.crc); err != nil {
			f.Close()
			c.drop(id, err.Error())
			return nil, ErrNotCached
		}
		c.markVerified(id)
	}
	return f, nil
}

func (c *Cache) markVerified(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.lru.Peek(id); ok {
		e.verified = true
		c.lru.Add(id, e)
	}
}

// Discard drops every cached chunk of v, which the caller found gone from
// the store (overwritten or deleted): they can never be served again and
// would only take room until the LRU reached them. Chunks a reader is
// waiting for or a worker has pinned stay until the LRU evicts them.
func (c *Cache) Discard(v object.Version) {
	n := (v.Size + c.opt.ChunkSize - 1) / c.opt.ChunkSize
	var ids []string
	for idx := range n {
		ids = append(ids, c.chunkID(v, idx))
		for piece := int64(0); c.pieceSize > 0 && piece*c.pieceSize < c.chunkLen(v, idx); piece++ {
			ids = append(ids, c.pieceID(v, idx, piece))
		}
	}
	var victims []entry
	c.mu.Lock()
	for _, id := range ids {
		if e, ok := c.lru.Peek(id); ok && c.awaited[id] == 0 {
			c.lru.Remove(id)
			c.total -= e.size
			victims = append(victims, e)
		}
	}
	c.mu.Unlock()
	c.unlink(victims)
	if len(victims) > 0 {
		c.log.Info("discarded chunks of a version gone from the store", "key", v.Key,
			"version", v.Identity(), "chunks", len(victims))
	}
}

// drop removes a chunk found to be bad so that the next read fetches it.
func (c *Cache) drop(id, why string) {
	c.mu.Lock()
	e, ok := c.lru.Peek(id)
	if ok {
		c.lru.Remove(id)
		c.total -= e.size
	}
	c.mu.Unlock()
	if ok {
		c.stats.badChunks.Add(1)
		c.log.Warn("dropping invalid cached chunk", "file", e.name, "reason", why)
		c.dir.Load().remove(e.name)
	}
}

// forget removes an index entry whose file is already gone.
func (c *Cache) forget(id string, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.lru.Peek(id); ok && cur.name == e.name {
		c.lru.Remove(id)
		c.total -= e.size
	}
}

// admit indexes a chunk that was just renamed into place and evicts the
// least recently used chunks until the cache is within its bound again.
func (c *Cache) admit(id string, e entry) {
	c.mu.Lock()
	var replaced []entry
	if old, ok := c.lru.Peek(id); ok {
		c.total -= old.size
		if old.name != e.name {
			// The same blob made twice need not be byte-identical (a part
			// carries its creation date): the older file goes.
			replaced = append(replaced, old)
		}
	}
	c.lru.Add(id, e)
	c.total += e.size
	victims := c.evictLocked()
	c.mu.Unlock()
	for _, old := range replaced {
		c.dir.Load().remove(old.name)
	}
	c.unlink(victims)
}

func (c *Cache) evictLocked() []entry {
	var victims []entry
	var spared []string
	for c.total > c.limit {
		id, e, ok := c.lru.RemoveOldest()
		if !ok {
			break
		}
		if c.awaited[id] > 0 {
			spared = append(spared, id)
			c.lru.Add(id, e)
			if len(spared) == c.lru.Len() {
				break // everything left is awaited: the overshoot is in flight
			}
			continue
		}
		c.total -= e.size
		victims = append(victims, e)
	}
	return victims
}

func (c *Cache) await(id string, delta int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.awaited[id] += delta; c.awaited[id] <= 0 {
		delete(c.awaited, id)
	}
}

// unlink runs outside the lock: readers holding a victim open keep reading it.
func (c *Cache) unlink(victims []entry) {
	d := c.dir.Load()
	for _, e := range victims {
		d.remove(e.name)
	}
	c.stats.evictions.Add(int64(len(victims)))
}

// chunkLen is the length of chunk idx of v.
func (c *Cache) chunkLen(v object.Version, idx int64) int64 {
	return min(c.opt.ChunkSize, v.Size-idx*c.opt.ChunkSize)
}

func (c *Cache) cached(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Contains(id)
}
