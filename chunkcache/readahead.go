package chunkcache

import (
	"golang.org/x/sync/semaphore"

	"s3docs/internal/object"
)

// readahead fetches, in the background, the chunks ahead of a reader that
// reads sequentially (the Reader says who does): at most chunks ahead, and
// at most that many chunks' bytes in flight over all readers.
type readahead struct {
	// chunks is the readahead distance: Options.ReadAhead, capped at half
	// the cache so that readahead cannot evict what is about to be read.
	// 0 for none.
	chunks int64
	budget *semaphore.Weighted // bytes of readahead in flight
}

func newReadahead(o Options) readahead {
	ra := readahead{chunks: min(o.ReadAhead/o.ChunkSize, o.MaxBytes/o.ChunkSize/2)}
	if ra.chunks > 0 {
		ra.budget = semaphore.NewWeighted(ra.chunks * o.ChunkSize)
	}
	return ra
}

// prefetch starts a background download of chunk idx of v unless it is
// stored. It reports false when the readahead budget is spent (or there is
// nowhere to store it); the reader tries again on its next read, or
// fetches the chunk itself.
func (c *Cache) prefetch(v object.Version, idx int64) bool {
	s := c.geo.chunk(v, idx)
	if c.disk.has(s) {
		return true
	}
	if c.bypassing() {
		return false
	}
	if !c.ahead.budget.TryAcquire(s.n) {
		return false
	}
	if !c.tasks.add() {
		c.ahead.budget.Release(s.n)
		return false
	}
	go func() {
		defer c.tasks.done()
		defer c.ahead.budget.Release(s.n)
		// Errors are logged by the download; the reader retries in the
		// foreground.
		f, started, err := c.downloads.join(v, s, true)
		if err != nil || f == nil {
			return
		}
		if started {
			c.stats.readaheads.Add(1)
		}
		_ = f.wait(c.tasks.ctx)
	}()
	return true
}
