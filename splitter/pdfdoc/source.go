package pdfdoc

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// SourceError is a failure to read the source itself (the ReaderAt failed or
// ended before the size it was opened with), as opposed to a PDF that is
// broken. Callers tell the two apart with errors.As: a source error may go
// away on a retry, a broken PDF will not.
type SourceError struct {
	Off int64 // where the failed read started
	Err error
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("pdfdoc: reading the source at %d: %v", e.Off, e.Err)
}

func (e *SourceError) Unwrap() error { return e.Err }

// blockSize is the unit of the block cache. Objects are read through it:
// a dictionary is usually a few hundred bytes, and its neighbours (the next
// page, its content stream's dictionary) are often in the same block. Bulk
// data (stream bytes being copied, decoded or scanned, cross-reference
// tables) bypasses it through section readers.
const blockSize = 4 << 10

// source is the PDF being read: a ReaderAt whose errors are SourceErrors,
// and a small LRU cache of blocks for the many small reads that parsing
// objects makes. Every read stays within [0, size).
type source struct {
	r    io.ReaderAt
	size int64

	blocks []cachedBlock
	tick   uint64
}

type cachedBlock struct {
	off  int64 // -1: empty
	used uint64
	n    int
	data []byte
}

func newSource(r io.ReaderAt, size int64, cacheBytes int) *source {
	n := max(2, cacheBytes/blockSize)
	s := &source{r: r, size: size, blocks: make([]cachedBlock, n)}
	for i := range s.blocks {
		s.blocks[i].off = -1
	}
	return s
}

// ReadAt reads from the source directly (no caching), turning failures into
// SourceErrors. It implements io.ReaderAt for section readers.
func (s *source) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := s.size - off; int64(want) > rest {
		p = p[:rest]
	}
	n, err := s.r.ReadAt(p, off)
	if n == len(p) {
		err = nil
	} else if err == nil || errors.Is(err, io.EOF) {
		// The source is shorter than the size it was opened with.
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		var se *SourceError
		if !errors.As(err, &se) {
			err = &SourceError{Off: off, Err: err}
		}
		return n, err
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// section returns a reader of n bytes at off (fewer at the end of the
// source), read directly.
func (s *source) section(off, n int64) *io.SectionReader {
	off = min(max(off, 0), s.size)
	n = min(max(n, 0), s.size-off)
	return io.NewSectionReader(s, off, n)
}

// block returns the cached block holding offset off.
func (s *source) block(off int64) (*cachedBlock, error) {
	start := off - off%blockSize
	s.tick++
	victim := 0
	for i := range s.blocks {
		b := &s.blocks[i]
		if b.off == start {
			b.used = s.tick
			return b, nil
		}
		if b.used < s.blocks[victim].used {
			victim = i
		}
	}
	b := &s.blocks[victim]
	if b.data == nil {
		b.data = make([]byte, blockSize)
	}
	b.off = -1
	n, err := s.ReadAt(b.data[:min(blockSize, s.size-start)], start)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	b.off, b.n, b.used = start, n, s.tick
	return b, nil
}

// read returns a fresh copy of up to n bytes at off: fewer only at the end
// of the source.
func (s *source) read(off int64, n int) ([]byte, error) {
	if off < 0 || off >= s.size || n <= 0 {
		return nil, nil
	}
	n = int(min(int64(n), s.size-off))
	out := make([]byte, 0, n)
	for len(out) < n {
		b, err := s.block(off)
		if err != nil {
			return nil, err
		}
		i := int(off - b.off)
		if i >= b.n {
			break
		}
		k := min(b.n-i, n-len(out))
		out = append(out, b.data[i:i+k]...)
		off += int64(k)
	}
	return out, nil
}

// Prefetcher is what a source may offer beside io.ReaderAt: word that reads
// of about n bytes at each of offs follow soon, so that a remote source can
// fetch them all at once, and each no bigger than it has to be, instead of
// one after the other. A failure only loses the hint: the reads that follow
// fetch what they need.
type Prefetcher interface {
	Prefetch(offs []int64, n int) error
}

// prefetch passes offs (sorted, deduplicated, those the block cache holds
// left out) to the source if it is a Prefetcher.
func (s *source) prefetch(offs []int64, n int) {
	p, ok := s.r.(Prefetcher)
	if !ok {
		return
	}
	slices.Sort(offs)
	offs = slices.Compact(offs)
	want := offs[:0]
	for _, off := range offs {
		if off < 0 || off >= s.size || s.cached(off) {
			continue
		}
		want = append(want, off)
	}
	if len(want) > 1 { // one read is as good as a hint about it
		_ = p.Prefetch(want, n)
	}
}

// cached tells whether the block cache holds offset off.
func (s *source) cached(off int64) bool {
	start := off - off%blockSize
	for i := range s.blocks {
		if s.blocks[i].off == start {
			return true
		}
	}
	return false
}
