package pdfdoc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// The cross-reference data: where each object is. It is read from
// startxref back through every section (classic tables, cross-reference
// streams, hybrid files whose table's trailer names a stream with /XRefStm,
// /Prev chains of incremental updates and linearized files); a newer
// section's entry, free ones included, hides the older ones. Files whose
// cross-reference data is unusable are re-indexed by one sequential scan
// (rebuild).

type entryKind uint8

const (
	kindUnset entryKind = iota
	kindFree
	kindOffset
	kindCompressed
)

// entry is one object's place: an offset, or a slot in an object stream.
type entry struct {
	kind     entryKind
	off      int64 // kindOffset
	gen      int   // kindOffset
	stm, idx int64 // kindCompressed
}

// xrefTable holds the entries packed in 8 bytes each, indexed by object
// number: memory is O(objects), never O(file).
type xrefTable struct {
	e     []uint64
	max   int // object numbers must be below
	inUse int
}

const (
	packKindShift = 62
	packGenShift  = 46
	packOffMask   = 1<<46 - 1
	packHalfMask  = 1<<31 - 1
)

// size is one more than the highest object number the table can hold now.
func (x *xrefTable) size() int { return len(x.e) }

func (x *xrefTable) get(num int) entry {
	if num <= 0 || num >= len(x.e) {
		return entry{}
	}
	v := x.e[num]
	e := entry{kind: entryKind(v >> packKindShift)}
	switch e.kind {
	case kindOffset:
		e.off = int64(v & packOffMask)
		e.gen = int(v>>packGenShift) & 0xffff
	case kindCompressed:
		e.stm = int64(v>>31) & packHalfMask
		e.idx = int64(v & packHalfMask)
	}
	return e
}

// set records e for num unless a newer section already did (override
// lets a hybrid file's stream fill what its own table marked free).
func (x *xrefTable) set(num int, e entry, override bool) error {
	if num <= 0 {
		return nil // object 0 is always free
	}
	if num >= x.max {
		return fmt.Errorf("%w: object number %d (at most %d objects)", ErrTooLarge, num, x.max)
	}
	if num >= len(x.e) {
		grow := max(num+1, 2*len(x.e))
		x.e = append(x.e, make([]uint64, min(grow, x.max)-len(x.e))...)
	}
	if old := entryKind(x.e[num] >> packKindShift); old != kindUnset && !(override && old == kindFree) {
		return nil
	}
	var v uint64
	switch e.kind {
	case kindFree:
		v = uint64(kindFree) << packKindShift
	case kindOffset:
		if e.off < 0 || e.off > packOffMask || e.gen < 0 || e.gen > 0xffff {
			return fmt.Errorf("bad cross-reference entry for object %d", num)
		}
		v = uint64(kindOffset)<<packKindShift | uint64(e.gen)<<packGenShift | uint64(e.off)
		x.inUse++
	case kindCompressed:
		if e.stm <= 0 || e.stm > packHalfMask || e.idx < 0 || e.idx > packHalfMask {
			return fmt.Errorf("bad cross-reference entry for object %d", num)
		}
		v = uint64(kindCompressed)<<packKindShift | uint64(e.stm)<<31 | uint64(e.idx)
		x.inUse++
	}
	x.e[num] = v
	return nil
}

// tailWindow is how far from the end startxref and %%EOF are looked for.
const tailWindow = 1024

// findStartXref returns the offset that the last startxref gives.
func (r *reader) findStartXref() (int64, error) {
	off := max(0, r.src.size-tailWindow)
	b, err := r.src.read(off, tailWindow)
	if err != nil {
		return 0, err
	}
	k := bytes.LastIndex(b, []byte("startxref"))
	if k < 0 {
		return 0, errors.New("no startxref")
	}
	v, _ := nextUint(b, k+len("startxref"))
	if v <= 0 || v >= r.src.size {
		return 0, fmt.Errorf("startxref %d outside the file", v)
	}
	return v, nil
}

// loadXref reads the cross-reference data, or rebuilds it when it is
// unusable. A failing source or a budget stops it either way.
func (r *reader) loadXref(ctx context.Context) error {
	r.loadingXref = true
	defer func() { r.loadingXref = false }()
	off, err := r.findStartXref()
	if err == nil {
		err = r.readSections(ctx, off)
	}
	if err == nil {
		if _, ok := r.trailer["Root"]; !ok {
			err = errors.New("no /Root in the trailer")
		}
	}
	if err == nil {
		return nil
	}
	if fatal(ctx, err) {
		return err
	}
	if rerr := r.rebuild(ctx); rerr != nil {
		return fmt.Errorf("cross-reference data: %v; rebuilding it: %w", err, rerr)
	}
	return nil
}

// fatal reports whether err ends the work rather than calls for a repair:
// the source failed, the caller gave up, or a budget ran out.
func fatal(ctx context.Context, err error) bool {
	var se *SourceError
	return errors.As(err, &se) || errors.Is(err, ErrTooLarge) || ctx.Err() != nil
}

// mergeTrailer adds the keys of an older trailer that newer ones lack.
func (r *reader) mergeTrailer(d types.Dict) {
	if r.trailer == nil {
		r.trailer = types.Dict{}
	}
	for _, k := range []string{"Root", "Info", "ID", "Encrypt", "Size"} {
		if v, ok := d[k]; ok {
			if _, have := r.trailer[k]; !have {
				r.trailer[k] = v
			}
		}
	}
}

// maxSections bounds a /Prev chain.
const maxSections = 4096

func (r *reader) readSections(ctx context.Context, off int64) error {
	seen := map[int64]bool{}
	for off > 0 {
		if seen[off] {
			break // a /Prev loop: every section has been read
		}
		if len(seen) >= maxSections {
			return fmt.Errorf("%w: over %d cross-reference sections", ErrTooLarge, maxSections)
		}
		seen[off] = true
		b, err := r.src.read(off, 16)
		if err != nil {
			return err
		}
		var trailer types.Dict
		if i := skipSpace(b, 0); bytes.HasPrefix(b[i:], []byte("xref")) {
			if trailer, err = r.readTable(ctx, off+int64(i)); err != nil {
				return err
			}
		} else if trailer, err = r.readXrefStream(ctx, off, false); err != nil {
			return err
		}
		r.mergeTrailer(trailer)
		prev := intOf(trailer["Prev"], 0)
		off = int64(prev)
		if off < 0 || off >= r.src.size {
			return fmt.Errorf("/Prev %d outside the file", prev)
		}
	}
	return nil
}

// tableReader tokenizes a classic cross-reference table, keeping track of
// the offset.
type tableReader struct {
	br  *bufio.Reader
	pos int64
}

func (t *tableReader) token() (string, error) {
	var tok []byte
	for {
		ch, err := t.br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(tok) > 0 {
				return string(tok), nil
			}
			return "", err
		}
		t.pos++
		if isSpace(ch) {
			if len(tok) > 0 {
				return string(tok), nil
			}
			continue
		}
		if len(tok) > 0 && isDelim(ch) {
			_ = t.br.UnreadByte()
			t.pos--
			return string(tok), nil
		}
		tok = append(tok, ch)
		if len(tok) > 32 {
			return "", errors.New("cross-reference table: token too long")
		}
	}
}

// readTable reads the classic table at off ("xref") and its trailer, and
// the stream its trailer's /XRefStm names (a hybrid file).
func (r *reader) readTable(ctx context.Context, off int64) (types.Dict, error) {
	t := &tableReader{br: bufio.NewReaderSize(r.src.section(off, r.src.size-off), 32<<10), pos: off}
	if tok, err := t.token(); err != nil || tok != "xref" {
		return nil, errors.New("no xref keyword")
	}
	var freed []int // objects this table marks free: its /XRefStm may fill them
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tok, err := t.token()
		if err != nil {
			return nil, fmt.Errorf("cross-reference table: %w", err)
		}
		if tok == "trailer" {
			break
		}
		start := parseUint([]byte(tok))
		ctok, err := t.token()
		if err != nil {
			return nil, fmt.Errorf("cross-reference table: %w", err)
		}
		count := parseUint([]byte(ctok))
		if start < 0 || count < 0 {
			return nil, fmt.Errorf("cross-reference table: bad subsection %q %q", tok, ctok)
		}
		if start+count > int64(r.opts.MaxObjects) {
			return nil, fmt.Errorf("%w: cross-reference subsection %d %d", ErrTooLarge, start, count)
		}
		for i := int64(0); i < count; i++ {
			var f [3]string
			for k := range f {
				if f[k], err = t.token(); err != nil {
					return nil, fmt.Errorf("cross-reference table: %w", err)
				}
			}
			o, g := parseUint([]byte(f[0])), parseUint([]byte(f[1]))
			if o < 0 || g < 0 || (f[2] != "n" && f[2] != "f") {
				return nil, fmt.Errorf("cross-reference table: bad entry %q", f)
			}
			num := int(start + i)
			// A common slip: a first subsection numbered from 1 whose
			// first entry is object 0's.
			if i == 0 && start == 1 && f[2] == "f" && g == 65535 && o == 0 {
				start--
				num = 0
			}
			e := entry{kind: kindFree}
			if f[2] == "n" {
				if o == 0 {
					continue // "in use" at offset 0: nothing there; older sections may know
				}
				e = entry{kind: kindOffset, off: o, gen: int(g)}
			} else if num > 0 && entryKind(r.x.getRaw(num)>>packKindShift) == kindUnset {
				freed = append(freed, num)
			}
			if err := r.x.set(num, e, false); err != nil {
				return nil, err
			}
		}
	}
	trailer, err := r.valueAt(ctx, t.pos)
	if err != nil {
		return nil, fmt.Errorf("trailer: %w", err)
	}
	d, ok := trailer.(types.Dict)
	if !ok {
		return nil, errors.New("trailer is not a dictionary")
	}
	if stm := intOf(d["XRefStm"], 0); stm > 0 && int64(stm) < r.src.size {
		// Its entries rank below this table's, above older sections'.
		r.hybridFree = freed
		if _, err := r.readXrefStream(ctx, int64(stm), true); err != nil && fatal(ctx, err) {
			return nil, err
		}
		r.hybridFree = nil
	}
	return d, nil
}

// put records that object num is at off, replacing what was known.
func (x *xrefTable) put(num int, off int64) error {
	if num < len(x.e) && entryKind(x.e[num]>>packKindShift) == kindOffset {
		x.inUse--
	}
	if num > 0 && num < len(x.e) {
		x.e[num] = 0
	}
	return x.set(num, entry{kind: kindOffset, off: off}, false)
}

func (x *xrefTable) getRaw(num int) uint64 {
	if num <= 0 || num >= len(x.e) {
		return 0
	}
	return x.e[num]
}

// valueAt parses the direct value (a trailer dictionary) at off.
func (r *reader) valueAt(ctx context.Context, off int64) (types.Object, error) {
	for win := 4 << 10; ; win *= 4 {
		win = min(win, r.opts.MaxObjectBytes)
		b, err := r.src.read(off, win)
		if err != nil {
			return nil, err
		}
		atEOF := off+int64(len(b)) >= r.src.size
		end, err := valueEnd(b, 0, atEOF, r.opts.MaxDepth)
		if errors.Is(err, errShort) && !atEOF {
			if win >= r.opts.MaxObjectBytes {
				return nil, fmt.Errorf("%w: a trailer over %d bytes", ErrTooLarge, r.opts.MaxObjectBytes)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return r.parseValue(ctx, b[:end])
	}
}

// readXrefStream reads the cross-reference stream at off and returns its
// dictionary (which is also a trailer). hybrid: it is a table's /XRefStm.
func (r *reader) readXrefStream(ctx context.Context, off int64, hybrid bool) (types.Dict, error) {
	o, _, _, err := r.readAt(ctx, off, -1)
	if err != nil {
		return nil, err
	}
	s, ok := o.(*stream)
	if !ok {
		return nil, errors.New("cross-reference section is neither a table nor a stream")
	}
	w, _ := s.dict["W"].(types.Array)
	if len(w) != 3 {
		return nil, errors.New("cross-reference stream without /W")
	}
	var ws [3]int
	for i := range ws {
		ws[i] = intOf(w[i], -1)
		if ws[i] < 0 || ws[i] > 8 {
			return nil, errors.New("cross-reference stream: bad /W")
		}
	}
	size := intOf(s.dict["Size"], -1)
	index := []int{0, size}
	if a, ok := s.dict["Index"].(types.Array); ok {
		index = index[:0]
		for _, v := range a {
			index = append(index, intOf(v, -1))
		}
	}
	if len(index)%2 != 0 {
		return nil, errors.New("cross-reference stream: bad /Index")
	}
	data, err := r.decodeCharged(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("cross-reference stream: %w", err)
	}
	width := ws[0] + ws[1] + ws[2]
	if width == 0 {
		return nil, errors.New("cross-reference stream: /W is all zeros")
	}
	field := func(b []byte, def int64) int64 {
		if len(b) == 0 {
			return def
		}
		var v int64
		for _, ch := range b {
			v = v<<8 | int64(ch)
		}
		return v
	}
	free := map[int]bool{}
	for _, n := range r.hybridFree {
		free[n] = true
	}
	for k := 0; k < len(index); k += 2 {
		start, count := index[k], index[k+1]
		if start < 0 || count < 0 || start+count > r.opts.MaxObjects {
			return nil, fmt.Errorf("%w: cross-reference stream subsection %d %d", ErrTooLarge, start, count)
		}
		for i := range count {
			if len(data) < width {
				break // a short stream: use what there is
			}
			rec := data[:width]
			data = data[width:]
			typ := field(rec[:ws[0]], 1)
			f2 := field(rec[ws[0]:ws[0]+ws[1]], 0)
			f3 := field(rec[ws[0]+ws[1]:], 0)
			num := start + i
			var e entry
			switch typ {
			case 0:
				e = entry{kind: kindFree}
			case 1:
				e = entry{kind: kindOffset, off: f2, gen: int(f3)}
			case 2:
				e = entry{kind: kindCompressed, stm: f2, idx: f3}
			default:
				continue // reserved types: null objects
			}
			if hybrid && !free[num] && entryKind(r.x.getRaw(num)>>packKindShift) != kindUnset {
				continue
			}
			if err := r.x.set(num, e, hybrid); err != nil {
				return nil, err
			}
		}
	}
	return s.dict, nil
}
