package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"io"

	"s3docs/internal/object"
)

// The read path: a read is cut at chunk boundaries; each part is served by
// the entries entriesFor names (the chunk, or pieces of it), each from the
// disk if it holds the entry, else from the entry's download as soon as the
// bytes wanted have arrived.

// ReadAt reads len(p) bytes of v at off, fetching missing chunks. Like
// io.ReaderAt it returns io.EOF when it stops short at the end of the object:
// io.EOF itself, never wrapped. A failed fetch's error may wrap io.EOF (the
// HTTP client's word for a connection the server closed): that is no end.
func (c *Cache) ReadAt(ctx context.Context, v object.Version, p []byte, off int64) (int, error) {
	return c.read(ctx, v, p, off, fetchChunks, false)
}

// read serves Cache.ReadAt and Reader.ReadAt alike, under the read's one
// deadline (retry.go); miss, the reader's policy, says what its misses
// fetch, and background whether they wait behind foreground reads.
func (c *Cache) read(ctx context.Context, v object.Version, p []byte, off int64, miss missPolicy, background bool) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset", v.Key)
	}
	if off >= v.Size {
		return 0, io.EOF
	}
	parent, start := ctx, off
	ctx, cancel := c.readDeadline(ctx)
	defer cancel()
	end := min(off+int64(len(p)), v.Size)
	n := 0
	var buf [piecesPerChunk]span
	for off < end {
		idx := off / c.geo.chunkSize
		chunkEnd := min(end, (idx+1)*c.geo.chunkSize)
		for _, s := range c.entriesFor(buf[:0], v, idx, off-idx*c.geo.chunkSize, chunkEnd-off, miss) {
			to := min(chunkEnd, s.off+s.n)
			m, err := c.readSpan(ctx, v, s, p[n:n+int(to-off)], off-s.off, background)
			n += m
			off += int64(m)
			if err != nil {
				if err != io.EOF && ctx.Err() != nil && parent.Err() == nil {
					err = fmt.Errorf("read %s at %d: no answer within %v: %w", v.Key, start, c.opt.ReadTimeout+readGrace, err)
				}
				return n, err
			}
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readSpan fills p from entry s at offset within, fetching it if missing. An
// entry evicted between lookup and open is simply fetched again. A missing
// entry is served from its download as soon as the bytes wanted have
// arrived.
func (c *Cache) readSpan(ctx context.Context, v object.Version, s span, p []byte, within int64, background bool) (int, error) {
	missed := false
	for range reopenAttempts {
		n, err := c.disk.readAt(s, p, within)
		if errors.Is(err, ErrNotCached) {
			if !missed {
				c.stats.misses.Add(1)
				c.disk.hold(s.id, 1)
				defer c.disk.hold(s.id, -1)
			}
			missed = true
			if c.bypassing() {
				return c.downloads.readThrough(ctx, v, p, s.off+within, background)
			}
			fl, err := c.join(v, s, background)
			if err != nil {
				return 0, err
			}
			if fl == nil {
				continue // stored meanwhile
			}
			ok, err := fl.readAt(ctx, p, within, s.n)
			if err != nil {
				return 0, err
			}
			if ok {
				return len(p), nil
			}
			err = fl.wait(ctx)
			if uncachedFailure(err) {
				return c.downloads.readThrough(ctx, v, p, s.off+within, background)
			}
			if err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		// No hole opens under a read: it held the object's lock.
		if !missed {
			c.stats.hits.Add(1)
		}
		return n, nil
	}
	return 0, fmt.Errorf("read %s at %d: cache entry evicted or invalid repeatedly", v.Key, s.off+within)
}

// join is downloads.join for a caller that waits for s: one that found a
// download running shared it (a join).
func (c *Cache) join(v object.Version, s span, background bool) (*flight, error) {
	f, started, err := c.downloads.join(v, s, background)
	if f != nil && !started {
		c.stats.joins.Add(1)
	}
	return f, err
}
