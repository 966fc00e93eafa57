package chunkcache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"s3docs/internal/object"
)

// geometry cuts object versions into cache entries and names them. Chunk i
// of a version holds bytes [i*chunkSize, (i+1)*chunkSize); piece k of a
// chunk holds the pieceSize bytes from k*pieceSize within it (pieces.go
// says when pieces are used). An entry's id is a hash of the namespace,
// the version and the cut, never the key itself, so no key can reach
// outside the cache directory; the sizes are part of it, so that entries
// cut with another --chunk-size never match.
type geometry struct {
	namespace string
	chunkSize int64
	pieceSize int64 // 0: chunks are too small to cut into pieces
}

// fragmentSize is the unit of the smallest entries: fragments, fetched for
// a parser's small reads scattered through an object (fragments.go). A
// page: a PDF object's dictionary usually fits, and a fragment costs one
// block on disk.
const fragmentSize = 4 << 10

func newGeometry(namespace string, chunkSize int64) geometry {
	return geometry{namespace: namespace, chunkSize: chunkSize, pieceSize: pieceSizeFor(chunkSize)}
}

// span is what one cache entry holds: bytes [off, off+n) of an object
// version, under the entry's id. A whole chunk, or a piece of one.
type span struct {
	id     string
	off, n int64
}

func (g geometry) chunkID(v object.Version, idx int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%d", g.namespace, v.Key, v.Identity(), g.chunkSize, idx)
	return hex.EncodeToString(h.Sum(nil)[:20])
}

func (g geometry) pieceID(v object.Version, idx, piece int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%d\x00piece\x00%d\x00%d", g.namespace, v.Key, v.Identity(),
		g.chunkSize, idx, g.pieceSize, piece)
	return hex.EncodeToString(h.Sum(nil)[:20])
}

func (g geometry) fragmentID(v object.Version, idx, frag int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%d\x00fragment\x00%d\x00%d", g.namespace, v.Key, v.Identity(),
		g.chunkSize, idx, fragmentSize, frag)
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// chunks is how many chunks v has. The size comes from the server and may
// be near the largest int64: rounding up by adding would overflow.
func (g geometry) chunks(v object.Version) int64 {
	n := v.Size / g.chunkSize
	if v.Size%g.chunkSize != 0 {
		n++
	}
	return n
}

// chunkLen is the length of chunk idx of v.
func (g geometry) chunkLen(v object.Version, idx int64) int64 {
	return min(g.chunkSize, v.Size-idx*g.chunkSize)
}

func (g geometry) chunk(v object.Version, idx int64) span {
	return span{g.chunkID(v, idx), idx * g.chunkSize, g.chunkLen(v, idx)}
}

func (g geometry) piece(v object.Version, idx, piece int64) span {
	within := piece * g.pieceSize
	return span{g.pieceID(v, idx, piece), idx*g.chunkSize + within, min(g.pieceSize, g.chunkLen(v, idx)-within)}
}

func (g geometry) fragment(v object.Version, idx, frag int64) span {
	within := frag * fragmentSize
	return span{g.fragmentID(v, idx, frag), idx*g.chunkSize + within, min(fragmentSize, g.chunkLen(v, idx)-within)}
}

// fragmentsIn is the range of fragments of a chunk that bytes [within,
// within+n) touch.
func fragmentsIn(within, n int64) (first, last int64) {
	return within / fragmentSize, (within + n - 1) / fragmentSize
}

// piecesIn is the range of pieces of a chunk that bytes [within, within+n)
// touch.
func (g geometry) piecesIn(within, n int64) (first, last int64) {
	return within / g.pieceSize, (within + n - 1) / g.pieceSize
}

// entryIDs are the ids of the entries chunks [from, to) of v can have that
// are worth looking up: the chunks and their pieces. Fragments are left out
// (2,048 a chunk): they are few and small, bounded in number by the index,
// and left to its LRU.
func (g geometry) entryIDs(v object.Version, from, to int64) []string {
	var ids []string
	for idx := from; idx < to; idx++ {
		ids = append(ids, g.chunkID(v, idx))
		for piece := int64(0); g.pieceSize > 0 && piece*g.pieceSize < g.chunkLen(v, idx); piece++ {
			ids = append(ids, g.pieceID(v, idx, piece))
		}
	}
	return ids
}
