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
	"time"

	"s3docs/internal/object"
)

// copyBufs keep the per-fetch copy buffer off the heap's growth path: chunk
// bytes only pass through one of these on their way to disk.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

var errClosed = errors.New("chunk cache closed")

// fetch makes sure chunk idx of v is on disk. All callers wanting the same
// chunk share one download, which runs on the cache's own context: a caller
// that gives up (its FUSE request was interrupted) stops waiting but does not
// cancel the download others wait for.
func (c *Cache) fetch(ctx context.Context, v object.Version, idx int64, id string, readahead bool) error {
	ch := c.flights.DoChan(id, func() (any, error) {
		return nil, c.download(v, idx, id, readahead)
	})
	select {
	case r := <-ch:
		if r.Shared && !readahead {
			c.stats.joins.Add(1)
		}
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Cache) download(v object.Version, idx int64, id string, readahead bool) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()

	// Another caller may have finished this chunk between our miss and
	// joining the flight.
	if c.cached(id) {
		return nil
	}
	if readahead {
		c.stats.readaheads.Add(1)
	}
	off := idx * c.opt.ChunkSize
	n := c.chunkLen(v, idx)
	for attempt := 1; ; attempt++ {
		err := c.fetchOnce(v, off, n, id)
		if err == nil {
			return nil
		}
		c.log.Warn("chunk fetch failed", "key", v.Key, "chunk", idx, "attempt", attempt, "err", err)
		if attempt == fetchAttempts || !transient(err) || c.ctx.Err() != nil {
			return fmt.Errorf("fetch %s chunk %d: %w", v.Key, idx, err)
		}
		// The fetcher retried within the attempt already; this covers a
		// burst of failures longer than its own retries. The GET slot is
		// free meanwhile, for fetches that may succeed.
		select {
		case <-c.ctx.Done():
			return fmt.Errorf("fetch %s chunk %d: %w", v.Key, idx, err)
		case <-time.After(time.Duration(attempt) * 250 * time.Millisecond):
		}
	}
}

// fetchOnce is one attempt: a GET slot, the fetch timeout, one store.
func (c *Cache) fetchOnce(v object.Version, off, n int64, id string) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.opt.FetchTimeout)
	defer cancel()
	if err := c.gets.Acquire(ctx, 1); err != nil {
		return err
	}
	defer c.gets.Release(1)
	c.stats.gets.Add(1)
	c.stats.inFlight.Add(1)
	start := time.Now()
	e, err := c.store(ctx, v, off, n, id)
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

// fetchAttempts is how many times a chunk fetch is tried before a read fails.
const fetchAttempts = 3

// transient: worth another attempt. A changed or deleted object is not.
func transient(err error) bool {
	return !errors.Is(err, object.ErrChanged) && !errors.Is(err, object.ErrNotFound)
}

// store streams one range into a temp file, checks its length, and renames
// it into place under a name carrying its length and checksum. A short body
// never becomes a chunk.
func (c *Cache) store(ctx context.Context, v object.Version, off, n int64, id string) (entry, error) {
	body, err := c.fetcher.GetRange(ctx, v, off, n)
	if err != nil {
		return entry{}, err
	}
	defer body.Close()
	tmp, err := os.CreateTemp(c.tmpDir, id+".*")
	if err != nil {
		return entry{}, err
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := crc32.New(castagnoli)
	buf := copyBufs.Get().(*[]byte)
	got, err := io.CopyBuffer(io.MultiWriter(tmp, h), io.LimitReader(body, n+1), *buf)
	copyBufs.Put(buf)
	if err != nil {
		return entry{}, err
	}
	if got != n {
		return entry{}, fmt.Errorf("got %d bytes for a range of %d: %w", got, n, io.ErrUnexpectedEOF)
	}
	if err := tmp.Close(); err != nil {
		return entry{}, err
	}
	e := entry{name: fileName(id, n, h.Sum32()), size: n, crc: h.Sum32(), verified: true, touched: time.Now()}
	if err := os.Rename(tmp.Name(), filepath.Join(c.chunkDir, e.name)); err != nil {
		return entry{}, err
	}
	committed = true
	return e, nil
}
