package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/pacer"
)

// When the cache cannot store (its file system is full, or its directory
// is gone and cannot be made again: see recover.go), reads are served
// straight from the object store, uncached, rather than failed.

// errNoSpace marks a fetch that failed because the cache's file system is
// full.
var errNoSpace = errors.New("cache file system full")

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// uncachedFailure: a download failed for want of a place to store it, not
// for its range: readers are served straight from the object store.
func uncachedFailure(err error) bool {
	return errors.Is(err, errNoSpace) || errors.Is(err, errDirLost)
}

// fullDisk remembers that the cache's file system was found full: reads
// bypass the cache for backoff (Options.NoSpaceBackoff) after that, and the
// error is logged at most once per backoff period.
type fullDisk struct {
	backoff time.Duration
	now     func() time.Time

	mu            sync.Mutex
	until, logged time.Time
}

// note records that the disk was found full now, and says whether to log
// it.
func (f *fullDisk) note() (logIt bool) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.until = now.Add(f.backoff)
	logIt = now.Sub(f.logged) >= f.backoff
	if logIt {
		f.logged = now
	}
	return logIt
}

// active says whether reads bypass the cache now.
func (f *fullDisk) active() bool {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	return now.Before(f.until)
}

// noteNoSpace switches reads to uncached for the backoff period, lowers the
// disk's bound if its own entries are what filled the disk (see
// disk.shrinkToFit), and says so.
func (d *downloads) noteNoSpace(err error) {
	logIt := d.full.note()
	limit, lowered := d.disk.shrinkToFit()
	dir := d.disk.dir.Load().path
	if logIt {
		d.log.Error("cache file system full: serving reads uncached", "dir", dir,
			"retry_in", d.full.backoff, "err", err)
	}
	if lowered {
		d.log.Warn("cache bound lowered to what fits on its file system", "dir", dir,
			"bound", limit, "configured", d.disk.idx.max)
	}
}

// bypassing: reads go straight to the object store, uncached, because the
// cache's disk is full or its directory is gone.
func (c *Cache) bypassing() bool {
	return c.disk.lost.Load() || c.full.active()
}

// readThrough reads p at off straight from the object store, without
// caching, in a GET slot of its own.
func (d *downloads) readThrough(ctx context.Context, v object.Version, p []byte, off int64, background bool) (int, error) {
	var prio pacer.Priority
	if background {
		prio = pacer.Background
		ctx = pacer.WithPriority(ctx, prio)
	}
	if err := d.gets.acquire(ctx, prio); err != nil {
		return 0, err
	}
	defer d.gets.release()
	d.stats.uncached.Add(1)
	d.stats.gets.Add(1)
	start := time.Now()
	n, err := d.readRange(ctx, v, p, off)
	d.stats.getBytes.Add(int64(n))
	if d.onFetch != nil {
		d.onFetch(int64(n), time.Since(start), err)
	}
	if err != nil {
		return n, fmt.Errorf("read %s at %d uncached: %w", v.Key, off, err)
	}
	return n, nil
}

func (d *downloads) readRange(ctx context.Context, v object.Version, p []byte, off int64) (int, error) {
	body, err := d.fetcher.GetRange(ctx, v, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer body.Close()
	return io.ReadFull(body, p)
}
