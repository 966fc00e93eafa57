package chunkcache

import (
	"context"
	"os"
	"sync"

	"s3docs/internal/object"
)

// Reader reads one object version for one open file handle and watches its
// access pattern, which is the cache's policy of what to fetch: sequential
// reads start background fetches of the chunks ahead (readahead.go), reads
// that keep jumping fetch only the pieces they touch (pieces.go).
type Reader struct {
	c *Cache
	v object.Version
	// background readers (warming) wait behind foreground ones for GET
	// slots and for the store while it throttles.
	background bool

	mu sync.Mutex
	// frontier is the end of the last read; a read starting near it
	// continues a sequential scan. The kernel sends readahead requests
	// concurrently, so they may arrive a little out of order. (Not the
	// furthest byte read: PDF readers read the tail first, and that must
	// not disable readahead for the scan that follows.)
	frontier int64
	streak   int   // consecutive reads near the frontier
	run      int64 // bytes read near the frontier since the last jump
	jumps    int   // jumps since the last long run
	ahead    int64 // highest chunk index already handed to readahead
	// backing is the object's file handed out by Backing, pinned until
	// Close.
	backing *os.File
	unpin   func()
}

// randomAfter is how many jumps, with no long sequential run between them,
// make a reader random. Two, so that a PDF reader's tail read and its jump
// back to the header are read as chunks if it then scans on, and as pieces
// if it keeps jumping. A run is long from a quarter chunk on: the kernel
// splits one read(2) into several requests, which must not count as a scan.
const randomAfter = 2

// seqSlack is how far from the frontier a read may start and still count as
// sequential: enough for the kernel's reordered async reads (its readahead
// window is 1 MiB), small against a chunk.
func (c *Cache) seqSlack() int64 { return min(2<<20, c.geo.chunkSize/4) }

// NewReader starts reading v.
func (c *Cache) NewReader(v object.Version) *Reader {
	return &Reader{c: c, v: v, ahead: -1}
}

// NewBackgroundReader starts reading v for background work (warming the
// cache): its fetches wait behind those of other readers.
func (c *Cache) NewBackgroundReader(v object.Version) *Reader {
	return &Reader{c: c, v: v, ahead: -1, background: true}
}

// ReadAt reads like Cache.ReadAt and may schedule readahead; a random
// reader's misses fetch pieces instead of chunks.
func (r *Reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	from, thru, miss := r.observe(off, int64(len(p)))
	scheduled := from - 1
	for idx := from; idx <= thru && r.c.prefetch(r.v, idx); idx++ {
		scheduled = idx
	}
	if scheduled >= from {
		r.mu.Lock()
		r.ahead = max(r.ahead, scheduled)
		r.mu.Unlock()
	}
	return r.c.read(ctx, r.v, p, off, miss, r.background)
}

// observe updates the access pattern and returns the chunk indexes to fetch
// ahead (from > thru when none), and what a miss fetches.
func (r *Reader) observe(off, n int64) (from, thru int64, miss missPolicy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if slack := r.c.seqSlack(); off >= r.frontier-slack && off <= r.frontier+slack {
		r.streak++
		if r.run += n; r.run >= r.c.geo.chunkSize/4 {
			r.jumps = 0
		}
	} else {
		r.streak = 0
		r.run = n
		r.jumps++
	}
	r.frontier = off + n
	miss = fetchChunks
	if r.jumps >= randomAfter {
		miss = fetchPieces
	}
	if r.c.ahead.chunks == 0 || r.streak < 2 {
		return 1, 0, miss
	}
	cs := r.c.geo.chunkSize
	last := (r.v.Size - 1) / cs
	cur := min(off+n, r.v.Size-1) / cs
	return max(cur+1, r.ahead+1), min(cur+r.c.ahead.chunks, last), fetchChunks
}

// Backing returns the cache's file of the reader's version, for the kernel
// to read in the daemon's place (FUSE passthrough), if the cache holds every
// byte of the version, each checked since the daemon started, and the
// objects pinned so stay within half the bound; nil otherwise (the reader
// serves the version as usual, and fills the same file). The file then
// holds exactly the version's bytes, none of them evicted, until Close; it
// is never punched afterwards either (see objFile.exported).
func (r *Reader) Backing() *os.File {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.backing != nil {
		return r.backing
	}
	f, unpin, ok := r.c.disk.backing(r.c.geo.objectID(r.v))
	if !ok {
		return nil
	}
	r.c.stats.backings.Add(1)
	r.backing, r.unpin = f, unpin
	return f
}

// Close releases the reader and its backing file. Readahead it started
// finishes on its own: the chunks are useful to the next reader.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.backing != nil {
		r.backing.Close()
		r.unpin()
		r.backing, r.unpin = nil, nil
	}
	return nil
}
