package chunkcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"s3docs/internal/object"
)

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

func (c *Cache) pieceID(v object.Version, idx, piece int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%d\x00piece\x00%d\x00%d", c.opt.Namespace, v.Key, v.Identity(),
		c.opt.ChunkSize, idx, c.pieceSize, piece)
	return hex.EncodeToString(h.Sum(nil)[:20])
}

func (c *Cache) pieceSpan(v object.Version, idx, piece int64) span {
	within := piece * c.pieceSize
	return span{c.pieceID(v, idx, piece), idx*c.opt.ChunkSize + within, min(c.pieceSize, c.chunkLen(v, idx)-within)}
}

// piecesIn is the range of pieces of a chunk that bytes [within, within+n)
// touch.
func (c *Cache) piecesIn(within, n int64) (first, last int64) {
	return within / c.pieceSize, (within + n - 1) / c.pieceSize
}

// piecesCached: every piece the range touches is cached.
func (c *Cache) piecesCached(v object.Version, idx, within, n int64) bool {
	first, last := c.piecesIn(within, n)
	for piece := first; piece <= last; piece++ {
		if !c.cached(c.pieceID(v, idx, piece)) {
			return false
		}
	}
	return true
}

// readPieces fills p from chunk idx at within, piece by piece.
func (c *Cache) readPieces(ctx context.Context, v object.Version, idx int64, p []byte, within int64) (int, error) {
	first, last := c.piecesIn(within, int64(len(p)))
	n := 0
	for piece := first; piece <= last; piece++ {
		s := c.pieceSpan(v, idx, piece)
		from := within + int64(n) - piece*c.pieceSize
		want := min(int64(len(p)-n), s.n-from)
		m, err := c.readSpan(ctx, v, s, p[n:n+int(want)], from)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
