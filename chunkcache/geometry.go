package chunkcache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"s3docs/internal/object"
)

// geometry cuts object versions into cache entries and names them. Every
// version has one file in the cache (see layout.go), named by its object
// id, a hash of the namespace, the version and the chunk size, never the
// key itself, so no key can reach outside the cache directory and entries
// cut with another --chunk-size never match. Its entries are ranges of that
// file: chunk i holds bytes [i*chunkSize, (i+1)*chunkSize); piece k of a
// chunk holds the pieceSize bytes from k*pieceSize within it (pieces.go
// says when pieces are used); fragment k the fragmentSize bytes from
// k*fragmentSize within it (fragments.go).
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

// entryKind is what an entry holds of its object: a whole chunk, a piece or
// a fragment of one. Blobs are files of their own (blob.go).
type entryKind uint8

const (
	kindChunk entryKind = iota + 1
	kindPiece
	kindFragment
	kindBlob
)

func (k entryKind) String() string {
	switch k {
	case kindChunk:
		return "chunk"
	case kindPiece:
		return "piece"
	case kindFragment:
		return "fragment"
	case kindBlob:
		return "blob"
	}
	return "unknown"
}

// entryKey names an entry within its object: its kind, the index of the
// chunk it is in, and its index within the chunk (0 for a chunk).
type entryKey struct {
	kind entryKind
	idx  int64
	sub  int64
}

// span is what one cache entry holds: bytes [off, off+n) of an object
// version. id names it among every entry of the cache (downloads are
// shared by it); obj is its object's file and size that object's size.
type span struct {
	id     string
	obj    string
	size   int64
	key    entryKey
	off, n int64
}

// objectID names the file of version v.
func (g geometry) objectID(v object.Version) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d", g.namespace, v.Key, v.Identity(), g.chunkSize)
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// spanID names entry k of object obj among all entries.
func spanID(obj string, k entryKey) string {
	b := make([]byte, 0, len(obj)+24)
	b = append(b, obj...)
	switch k.kind {
	case kindChunk:
		b = append(b, ".c"...)
	case kindPiece:
		b = append(b, ".p"...)
	case kindFragment:
		b = append(b, ".f"...)
	}
	b = strconv.AppendInt(b, k.idx, 10)
	if k.kind != kindChunk {
		b = append(b, '.')
		b = strconv.AppendInt(b, k.sub, 10)
	}
	return string(b)
}

func (g geometry) chunkID(v object.Version, idx int64) string {
	return spanID(g.objectID(v), entryKey{kind: kindChunk, idx: idx})
}

// chunksOf is how many chunks an object of size bytes has. The size comes
// from the server and may be near the largest int64: rounding up by adding
// would overflow.
func chunksOf(size, chunkSize int64) int64 {
	n := size / chunkSize
	if size%chunkSize != 0 {
		n++
	}
	return n
}

// rangeOf is the range of object bytes entry k holds, in an object of size
// bytes.
func (g geometry) rangeOf(size int64, k entryKey) (off, n int64) {
	start := k.idx * g.chunkSize
	chunkLen := min(g.chunkSize, size-start)
	switch k.kind {
	case kindPiece:
		within := k.sub * g.pieceSize
		return start + within, min(g.pieceSize, chunkLen-within)
	case kindFragment:
		within := k.sub * fragmentSize
		return start + within, min(fragmentSize, chunkLen-within)
	}
	return start, chunkLen
}

// valid says whether k names an entry an object of size bytes can have.
func (g geometry) valid(size int64, k entryKey) bool {
	if k.idx < 0 || k.sub < 0 || k.idx >= chunksOf(size, g.chunkSize) {
		return false
	}
	switch k.kind {
	case kindChunk:
		return k.sub == 0
	case kindPiece:
		if g.pieceSize == 0 {
			return false
		}
	case kindFragment:
	default:
		return false
	}
	_, n := g.rangeOf(size, k)
	return n > 0
}

func (g geometry) span(v object.Version, k entryKey) span {
	obj := g.objectID(v)
	off, n := g.rangeOf(v.Size, k)
	return span{id: spanID(obj, k), obj: obj, size: v.Size, key: k, off: off, n: n}
}

func (g geometry) chunk(v object.Version, idx int64) span {
	return g.span(v, entryKey{kind: kindChunk, idx: idx})
}

func (g geometry) piece(v object.Version, idx, piece int64) span {
	return g.span(v, entryKey{kind: kindPiece, idx: idx, sub: piece})
}

func (g geometry) fragment(v object.Version, idx, frag int64) span {
	return g.span(v, entryKey{kind: kindFragment, idx: idx, sub: frag})
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
