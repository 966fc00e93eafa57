package chunkcache

import (
	"context"
	"slices"

	"golang.org/x/sync/errgroup"

	"s3docs/internal/object"
)

// Fragments serve a parser that jumps through an object by small reads:
// the split worker reading a PDF's objects at the offsets its
// cross-reference data gives. A 1 GiB PDF whose 3,000 page dictionaries
// each sit beside their page's image has one in every 350 KB: reading them
// all (to count the pages soundly) would fetch the whole file if each read
// fetched its chunk, and an eighth of it in pieces. A fragment is the 4 KiB
// around such a read. Fragments are cache entries like chunks (same bound,
// same LRU, same checks, reused after a restart), at most a few thousand of
// them at once (see index.maxSmall), and serve any reader of the range
// they hold; a chunk on disk or being fetched is always used instead.

// maxFragmentsPerRead bounds the fragments one read is served from; a
// longer read is not a small one, and fetches its chunk.
const maxFragmentsPerRead = 4

// denseFragments: a prefetch that wants at least this share of a chunk's
// fragments (1/16: 128 of an 8 MiB chunk) fetches the chunk instead, in one
// GET (a PDF whose page dictionaries are all together, at its end, say).
const denseFragments = 16

// prefetchParallel bounds the downloads one Prefetch starts before it
// waits for some to end: the GET slots bound what runs; this bounds the
// goroutines waiting for one.
const prefetchParallel = 64

// ReadFragments reads like ReadAt, but what the disk does not hold is
// fetched in fragments, the 4 KiB pieces the read touches, rather than in
// whole chunks: for a parser's small scattered reads. A read of more than a
// few fragments fetches its chunks.
func (c *Cache) ReadFragments(ctx context.Context, v object.Version, p []byte, off int64) (int, error) {
	return c.read(ctx, v, p, off, fetchFragments, false)
}

// ReadPieces reads like ReadAt, but what the disk does not hold is fetched
// in the pieces the read touches (an eighth of a chunk each) rather than in
// whole chunks: for a parser's short scans (a cross-reference table, a
// small stream).
func (c *Cache) ReadPieces(ctx context.Context, v object.Version, p []byte, off int64) (int, error) {
	return c.read(ctx, v, p, off, fetchPieces, false)
}

// Prefetch fetches, all at once, what reads of n bytes at each of offs
// will need that the cache does not hold: the fragments they touch, or the
// whole chunk where they want a good share of its fragments. It returns
// when those fetches have ended (their errors are for the reads that
// follow to meet) or ctx is done. Downloads it started go on for the reads
// that follow even if ctx ends.
func (c *Cache) Prefetch(ctx context.Context, v object.Version, offs []int64, n int) error {
	if n <= 0 || c.bypassing() {
		return nil
	}
	want := c.prefetchPlan(v, offs, int64(n))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(prefetchParallel)
	for _, s := range want {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			f, _, err := c.downloads.join(v, s, false)
			if err != nil || f == nil {
				return nil // failed moments ago, or stored meanwhile
			}
			_ = f.wait(gctx)
			return nil
		})
	}
	_ = g.Wait()
	return ctx.Err()
}

// prefetchPlan returns the entries to fetch for reads of n bytes at offs:
// per chunk, the missing fragments, or the chunk when they are dense or a
// read is too long for fragments (it would fetch its chunk: so does its
// prefetch). Its work is bounded by the offsets, not by n: a long read's
// fragments are never listed (4,096 offsets of 1 MiB listed a million, and
// planned 534 MiB of garbage in the daemon), and a chunk's fragments are
// named (a hash each) only until they are found dense.
func (c *Cache) prefetchPlan(v object.Version, offs []int64, n int64) []span {
	type frag struct{ idx, k int64 }
	const longRead = maxFragmentsPerRead * fragmentSize
	var frags []frag
	wholes := map[int64]bool{}
	for _, off := range offs {
		if off < 0 || off >= v.Size {
			continue
		}
		end := min(off+n, v.Size)
		if end-off > longRead {
			for idx := off / c.geo.chunkSize; idx <= (end-1)/c.geo.chunkSize; idx++ {
				wholes[idx] = true
			}
			continue
		}
		for pos := off; pos < end; {
			idx := pos / c.geo.chunkSize
			within := pos - idx*c.geo.chunkSize
			first, last := fragmentsIn(within, min(end-pos, c.geo.chunkSize-within))
			for k := first; k <= last; k++ {
				frags = append(frags, frag{idx, k})
			}
			pos = (idx + 1) * c.geo.chunkSize
		}
	}
	for idx := range wholes {
		frags = append(frags, frag{idx, -1}) // a chunk wanted whole sorts first
	}
	slices.SortFunc(frags, func(a, b frag) int {
		if a.idx != b.idx {
			return int(a.idx - b.idx)
		}
		return int(a.k - b.k)
	})
	frags = slices.Compact(frags)
	var want []span
	for i := 0; i < len(frags); {
		j := i
		for j < len(frags) && frags[j].idx == frags[i].idx {
			j++
		}
		idx := frags[i].idx
		whole := c.geo.chunk(v, idx)
		if c.disk.has(whole) || c.downloads.fetching(whole.id) {
			i = j
			continue
		}
		dense := frags[i].k < 0
		var missing []span
		for _, f := range frags[i:j] {
			if dense {
				break
			}
			if s := c.geo.fragment(v, idx, f.k); !c.disk.has(s) {
				missing = append(missing, s)
				dense = int64(len(missing))*fragmentSize*denseFragments >= whole.n
			}
		}
		if dense {
			want = append(want, whole)
		} else {
			want = append(want, missing...)
		}
		i = j
	}
	return want
}
