package chunkcache

import "s3docs/internal/object"

// Pieces serve random access. A reader that jumps around (a PDF viewer
// following its cross-references, fio's randread) would otherwise have each
// small read fetch a whole chunk: 32 times the bytes for a 256 KiB read of an
// 8 MiB chunk, and the time to fetch them. Such a reader fetches only the
// pieces (an eighth of a chunk) that its read touches. A piece is a cache
// entry like a chunk, under its own id, in the same LRU and bound, and
// survives restarts the same way. Sequential readers keep fetching whole
// chunks, with readahead; a range that pieces already hold is read from them.

// piecesPerChunk: 1 MiB pieces of the default 8 MiB chunks.
const piecesPerChunk = 8

// pieceSizeFor is the piece size for a chunk size, or 0 (no pieces) when
// pieces would be smaller than a page.
func pieceSizeFor(chunkSize int64) int64 {
	ps := chunkSize / piecesPerChunk &^ 4095
	if ps < 4096 {
		return 0
	}
	return ps
}

// missPolicy is what a read fetches of a chunk the disk does not hold
// whole. The Reader of a file handle picks it from the handle's access
// pattern; Cache.ReadAt, which knows no pattern, fetches chunks.
type missPolicy uint8

const (
	// fetchChunks fetches the whole chunk, unless pieces already hold
	// the range.
	fetchChunks missPolicy = iota
	// fetchPieces fetches only the pieces the read touches.
	fetchPieces
	// fetchFragments fetches only the fragments the read touches
	// (fragments.go).
	fetchFragments
)

// entriesFor appends to dst the entries that serve bytes [within,
// within+n) of chunk idx of v, in order: the chunk if the disk holds it or
// it is being fetched (another reader's fetch brings these bytes; pieces
// would fetch them twice); else the pieces the range touches if the disk
// holds them all or miss says to fetch pieces; else the fragments it
// touches if the disk holds or is fetching them all (a prefetch brought
// them) or miss says to fetch fragments; else the chunk.
func (c *Cache) entriesFor(dst []span, v object.Version, idx, within, n int64, miss missPolicy) []span {
	whole := c.geo.chunk(v, idx)
	if c.disk.has(whole) || c.downloads.fetching(whole.id) {
		return append(dst, whole)
	}
	start := len(dst)
	if c.geo.pieceSize > 0 {
		first, last := c.geo.piecesIn(within, n)
		all := true
		for k := first; k <= last; k++ {
			s := c.geo.piece(v, idx, k)
			if miss != fetchPieces && !c.disk.has(s) {
				all = false
				break
			}
			dst = append(dst, s)
		}
		if all {
			return dst
		}
		dst = dst[:start]
	}
	first, last := fragmentsIn(within, n)
	if last-first < maxFragmentsPerRead {
		for k := first; k <= last; k++ {
			s := c.geo.fragment(v, idx, k)
			if miss != fetchFragments && !c.disk.has(s) && !c.downloads.fetching(s.id) {
				return append(dst[:start], whole)
			}
			dst = append(dst, s)
		}
		return dst
	}
	return append(dst, whole)
}
