package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"s3docs/internal/object"
)

// copyBufs keep the per-fetch copy buffer off the heap's growth path: chunk
// bytes only pass through one of these on their way to disk.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

var errClosed = errors.New("chunk cache closed")

// errNoSpace marks a fetch that failed because the cache's file system is
// full. Reads then go straight to the store, uncached (see readThrough).
var errNoSpace = errors.New("cache file system full")

// flight is one chunk download, shared by every caller that wants the chunk
// while it runs. Besides its outcome it publishes its progress, the bytes of
// the chunk already in its temp file, so that a reader waiting for the start
// of a chunk (a first byte, a random read) is answered when those bytes
// arrive rather than when the whole chunk has. (singleflight has no way to
// share partial results, hence this small map of our own.)
type flight struct {
	done chan struct{} // closed when the download has ended
	err  error         // its outcome, set before done is closed

	mu       sync.Mutex
	file     *os.File      // the current attempt's temp file, nil when none
	written  int64         // bytes of the chunk at the start of file
	advanced chan struct{} // closed and replaced whenever file or written changes
}

func (f *flight) notifyLocked() {
	close(f.advanced)
	f.advanced = make(chan struct{})
}

// setFile starts an attempt on file (or ends one, with nil).
func (f *flight) setFile(file *os.File) {
	f.mu.Lock()
	f.file, f.written = file, 0
	f.notifyLocked()
	f.mu.Unlock()
}

func (f *flight) advance(n int64) {
	f.mu.Lock()
	f.written += n
	f.notifyLocked()
	f.mu.Unlock()
}

// readAt fills p with the chunk's bytes at within as soon as the download
// has written them. ok is false when the download ended first: the caller
// then looks in the cache, or at the flight's error. A read that needs the
// chunk's last byte (chunkLen) waits for the end, so that whoever has read a
// whole chunk finds it cached.
func (f *flight) readAt(ctx context.Context, p []byte, within, chunkLen int64) (ok bool, err error) {
	need := within + int64(len(p))
	for {
		f.mu.Lock()
		if f.file != nil && f.written >= need && need < chunkLen {
			// Under the lock: the attempt's file cannot be closed meanwhile.
			n, err := f.file.ReadAt(p, within)
			f.mu.Unlock()
			return err == nil && n == len(p), nil
		}
		advanced := f.advanced
		f.mu.Unlock()
		select {
		case <-advanced:
		case <-f.done:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// progressWriter is the temp file of an attempt, publishing what it wrote.
type progressWriter struct {
	f    *flight
	file *os.File
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.file.Write(b)
	if n > 0 {
		w.f.advance(int64(n))
	}
	return n, err
}

// span is what one cache entry holds: bytes [off, off+n) of an object
// version, under the entry's id. A whole chunk, or a piece of one.
type span struct {
	id     string
	off, n int64
}

func (c *Cache) chunkSpan(v object.Version, idx int64) span {
	return span{c.chunkID(v, idx), idx * c.opt.ChunkSize, c.chunkLen(v, idx)}
}

// join returns the running download of s, starting one if there is none.
// The download runs on the cache's own context: a caller that gives up (its
// FUSE request was interrupted) stops waiting but does not cancel the
// download others wait for. A chunk whose download failed moments ago is
// not tried again: join returns that failure (see failedRangeMemory).
func (c *Cache) join(v object.Version, s span, readahead bool) (*flight, error) {
	id := s.id
	chunk := c.chunkID(v, s.off/c.opt.ChunkSize)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	if f, ok := c.flights[id]; ok {
		c.mu.Unlock()
		if !readahead {
			c.stats.joins.Add(1)
		}
		return f, nil
	}
	if err := c.recentFailureLocked(chunk, time.Now()); err != nil {
		c.mu.Unlock()
		c.log.Debug("range failed moments ago: failing at once", "key", v.Key, "offset", s.off, "err", err)
		return nil, err
	}
	f := &flight{done: make(chan struct{}), advanced: make(chan struct{})}
	c.flights[id] = f
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		err := c.download(f, v, s, readahead)
		c.noteFailure(chunk, err)
		// The chunk is admitted (or the download failed) before the flight
		// goes: a caller finds one or the other, never neither.
		c.mu.Lock()
		delete(c.flights, id)
		c.mu.Unlock()
		f.err = err
		close(f.done)
	}()
	return f, nil
}

// fetch makes sure s of v is on disk, waiting for the whole download.
func (c *Cache) fetch(ctx context.Context, v object.Version, s span, readahead bool) error {
	f, err := c.join(v, s, readahead)
	if err != nil {
		return err
	}
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// download fetches s under one deadline, ReadTimeout, for all its attempts
// (see retry.go). Attempts are logged at debug level only: the read that
// fails says so, once, where errors become errno values.
func (c *Cache) download(f *flight, v object.Version, s span, readahead bool) error {
	// Another caller may have finished this entry between our miss and
	// starting the flight.
	if c.cached(s.id) {
		return nil
	}
	if readahead {
		c.stats.readaheads.Add(1)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.opt.ReadTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := c.fetchOnce(ctx, f, v, s.off, s.n, s.id)
		if err == nil {
			return nil
		}
		if isNoSpace(err) {
			c.noteNoSpace(err)
			return fmt.Errorf("fetch %s at %d: %w: %w", v.Key, s.off, errNoSpace, err)
		}
		if lost, retry := c.dirLost(err); lost {
			if retry && attempt < fetchAttempts {
				continue
			}
			return fmt.Errorf("fetch %s at %d: %w: %w", v.Key, s.off, errDirLost, err)
		}
		c.log.Debug("chunk fetch attempt failed", "key", v.Key, "offset", s.off, "length", s.n, "attempt", attempt, "err", err)
		if ctx.Err() != nil && c.ctx.Err() == nil {
			return fmt.Errorf("fetch %s at %d: no complete answer within %v (%d attempts): %w",
				v.Key, s.off, c.opt.ReadTimeout, attempt, err)
		}
		if attempt == fetchAttempts || !transient(err) || c.ctx.Err() != nil {
			return fmt.Errorf("fetch %s at %d: %w", v.Key, s.off, err)
		}
		// The fetcher retried within the attempt already; this covers a
		// burst of failures longer than its own retries. The GET slot is
		// free meanwhile, for fetches that may succeed.
		t := time.NewTimer(time.Duration(attempt) * fetchBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("fetch %s at %d: no complete answer within %v (%d attempts): %w",
				v.Key, s.off, c.opt.ReadTimeout, attempt, err)
		case <-t.C:
		}
	}
}

// fetchOnce is one attempt: a GET slot and one store, within the
// download's deadline.
func (c *Cache) fetchOnce(ctx context.Context, f *flight, v object.Version, off, n int64, id string) error {
	if err := c.gets.Acquire(ctx, 1); err != nil {
		return err
	}
	defer c.gets.Release(1)
	c.stats.gets.Add(1)
	c.stats.inFlight.Add(1)
	start := time.Now()
	e, err := c.store(ctx, f, v, off, n, id)
	c.stats.inFlight.Add(-1)
	if c.opt.OnFetch != nil {
		c.opt.OnFetch(e.size, time.Since(start), err)
	}
	if err != nil {
		return err
	}
	c.stats.getBytes.Add(e.size)
	c.admit(id, e)
	return nil
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// store streams one range into a temp file, checks its length, and renames
// it into place under a name carrying its length and checksum. A short body
// never becomes a chunk; readers of the flight see its bytes as they land.
func (c *Cache) store(ctx context.Context, f *flight, v object.Version, off, n int64, id string) (entry, error) {
	body, err := c.fetcher.GetRange(ctx, v, off, n)
	if err != nil {
		return entry{}, err
	}
	defer body.Close()
	d := c.dir.Load()
	tmp, err := d.createTemp(id)
	if err != nil {
		return entry{}, err
	}
	tmpName := filepath.Base(tmp.Name())
	f.setFile(tmp)
	committed := false
	defer func() {
		f.setFile(nil)
		tmp.Close()
		if !committed {
			d.removeTemp(tmpName)
		}
	}()
	h := crc32.New(castagnoli)
	buf := copyBufs.Get().(*[]byte)
	got, err := io.CopyBuffer(io.MultiWriter(progressWriter{f, tmp}, h), io.LimitReader(body, n+1), *buf)
	copyBufs.Put(buf)
	if err != nil {
		return entry{}, err
	}
	if got != n {
		return entry{}, fmt.Errorf("got %d bytes for a range of %d: %w", got, n, io.ErrUnexpectedEOF)
	}
	e := entry{name: fileName(id, n, h.Sum32()), size: n, crc: h.Sum32(), verified: true, touched: time.Now()}
	if err := d.commit(tmpName, e.name); err != nil {
		return entry{}, err
	}
	committed = true
	return e, nil
}

// noteNoSpace switches reads to uncached for Options.NoSpaceBackoff and says
// so, at most once per backoff period. If the cache's own chunks are what
// filled the disk (--cache-size larger than the room there is), its bound
// comes down to what it holds less two chunks, and the oldest go: otherwise
// it would stay full, and uncached, for good. The bound goes back up as the
// file system gets room again (see raiseBound).
func (c *Cache) noteNoSpace(err error) {
	now := time.Now()
	backoff := c.opt.NoSpaceBackoff
	c.mu.Lock()
	c.noSpaceUntil = now.Add(backoff)
	logIt := now.Sub(c.noSpaceLogged) >= backoff
	if logIt {
		c.noSpaceLogged = now
	}
	lowered := false
	if room := c.total - 2*c.opt.ChunkSize; room >= c.opt.ChunkSize && room < c.limit {
		c.limit, lowered = room, true
	}
	victims := c.evictLocked()
	limit := c.limit
	c.mu.Unlock()
	c.unlink(victims)
	if logIt {
		c.log.Error("cache file system full: serving reads uncached", "dir", c.opt.Dir,
			"retry_in", backoff, "err", err)
	}
	if lowered {
		c.log.Warn("cache bound lowered to what fits on its file system", "dir", c.opt.Dir,
			"bound", limit, "configured", c.opt.MaxBytes)
	}
}

// bypassing: reads go straight to the store, uncached, because the cache's
// disk is full or its directory is gone.
func (c *Cache) bypassing() bool {
	if c.lost.Load() {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Before(c.noSpaceUntil)
}

// uncachedFailure: a download failed for want of a place to store it, not
// for its range: readers are served straight from the store.
func uncachedFailure(err error) bool {
	return errors.Is(err, errNoSpace) || errors.Is(err, errDirLost)
}

// readThrough reads p at off straight from the store, without caching: the
// way reads stay served while the cache's disk is full.
func (c *Cache) readThrough(ctx context.Context, v object.Version, p []byte, off int64) (int, error) {
	if err := c.gets.Acquire(ctx, 1); err != nil {
		return 0, err
	}
	defer c.gets.Release(1)
	c.stats.uncached.Add(1)
	c.stats.gets.Add(1)
	start := time.Now()
	n, err := c.readRange(ctx, v, p, off)
	c.stats.getBytes.Add(int64(n))
	if c.opt.OnFetch != nil {
		c.opt.OnFetch(int64(n), time.Since(start), err)
	}
	if err != nil {
		return n, fmt.Errorf("read %s at %d uncached: %w", v.Key, off, err)
	}
	return n, nil
}

func (c *Cache) readRange(ctx context.Context, v object.Version, p []byte, off int64) (int, error) {
	body, err := c.fetcher.GetRange(ctx, v, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer body.Close()
	return io.ReadFull(body, p)
}
