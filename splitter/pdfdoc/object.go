package pdfdoc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	mathbits "math/bits"

	"github.com/pdfcpu/pdfcpu/pkg/filter"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// stream is a stream object as the reader knows it: its dictionary (strings
// decrypted) and where its data starts. The data stays in the source until
// it is copied or decoded; its length is settled only then (lengthOf), so
// that a stream nobody copies costs no read of its end.
type stream struct {
	dict     types.Dict
	num, gen int   // for the decryption key
	dataOff  int64 // first byte of the (encrypted, encoded) data
	length   int64 // bytes of data; -1 until lengthOf settles it
}

// stream is a types.Object so that it can travel where objects do; it is
// never serialized through PDFString (the writer copies its data).
func (s *stream) Clone() types.Object { c := *s; c.dict = s.dict.Clone().(types.Dict); return &c }
func (s *stream) PDFString() string   { return s.dict.PDFString() + " stream" }
func (s *stream) String() string      { return s.dict.String() + " stream" }

var (
	// errBadOffset: the cross-reference data sent us somewhere that is not
	// the object asked for; the cross-reference data is rebuilt once.
	errBadOffset = errors.New("no such object at the offset the cross-reference data gives")
	errDepth     = fmt.Errorf("%w: objects nested too deep", ErrTooLarge)
)

// intOf returns the value of an integer object (a float is truncated), or
// def.
func intOf(o types.Object, def int) int {
	switch v := o.(type) {
	case types.Integer:
		return int(v)
	case types.Float:
		if v >= -1<<40 && v <= 1<<40 {
			return int(v)
		}
	}
	return def
}

// parseValue parses the text of one value with pdfcpu. Empty text is null.
func (r *reader) parseValue(ctx context.Context, b []byte) (types.Object, error) {
	s := string(bytes.TrimSpace(b))
	if s == "" || s == "null" {
		return nil, nil
	}
	o, err := model.ParseObjectContext(ctx, &s, 0, r.opts.MaxDepth+1)
	if err != nil {
		if errors.Is(err, model.ErrMaxRecursionDepthExceeded) {
			return nil, errDepth
		}
		return nil, fmt.Errorf("parse: %w", err)
	}
	return o, nil
}

// countRead charges one parsed object to the current call's budget.
func (r *reader) countRead() error {
	r.reads++
	if r.reads > r.opts.MaxReads {
		return fmt.Errorf("%w: more than %d objects read", ErrTooLarge, r.opts.MaxReads)
	}
	return nil
}

// readAt parses the indirect object whose header ("n g obj") is at off,
// and returns it, its generation and the size of its text (a stream's
// data aside). want is the object number expected there, or -1 for any. It
// reads a window that grows until the value fits, up to MaxObjectBytes; a
// stream's data is not read.
func (r *reader) readAt(ctx context.Context, off int64, want int) (o types.Object, size, gen int, err error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, 0, err
	}
	if err := r.countRead(); err != nil {
		return nil, 0, 0, err
	}
	for win := prefetchSpan; ; win *= 4 {
		win = min(win, r.opts.MaxObjectBytes)
		b, err := r.src.read(off, win)
		if err != nil {
			return nil, 0, 0, err
		}
		atEOF := off+int64(len(b)) >= r.src.size
		full := atEOF || win >= r.opts.MaxObjectBytes
		n, g, hdrEnd, ok := objHeader(b)
		if !ok {
			if !full && len(b) < 64 {
				continue
			}
			return nil, 0, 0, fmt.Errorf("%w: object %d at offset %d", errBadOffset, want, off)
		}
		grow := func() error { // errShort: read more, if allowed
			if atEOF {
				return fmt.Errorf("object %d at offset %d: %w: the file ends first", n, off, errSyntax)
			}
			if win >= r.opts.MaxObjectBytes {
				return fmt.Errorf("%w: object %d is over %d bytes", ErrTooLarge, n, r.opts.MaxObjectBytes)
			}
			return nil
		}
		if n > 1<<31 || g > 65535 || (want >= 0 && int(n) != want) {
			return nil, 0, 0, fmt.Errorf("%w: object %d at offset %d is %d %d obj", errBadOffset, want, off, n, g)
		}
		num := int(n)
		gen = int(g)
		// An object with no value at all ("1 0 obj endobj") is null.
		if t, terr := nextToken(b, hdrEnd, atEOF); terr == nil && t.kind == tokRegular && string(b[t.start:t.end]) == "endobj" {
			return nil, hdrEnd, gen, nil
		}
		end, err := valueEnd(b, hdrEnd, atEOF, r.opts.MaxDepth)
		if err == nil && !full && end+16 > len(b) {
			err = errShort // "stream" and its end of line must be in view
		}
		if errors.Is(err, errShort) {
			if gerr := grow(); gerr != nil {
				return nil, 0, 0, gerr
			}
			continue
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("object %d at offset %d: %w", num, off, err)
		}
		o, err = r.parseValue(ctx, b[hdrEnd:end])
		if err != nil {
			return nil, 0, 0, fmt.Errorf("object %d: %w", num, err)
		}
		data, isStream, short := streamStart(b, end)
		if short && !full {
			if gerr := grow(); gerr != nil {
				return nil, 0, 0, gerr
			}
			continue
		}
		if isStream {
			if short {
				data = len(b) // the file or the budget ends in the white space
			}
			d, isDict := o.(types.Dict)
			if !isDict {
				return nil, 0, 0, fmt.Errorf("object %d: stream without a dictionary", num)
			}
			o = &stream{dict: d, num: num, gen: gen, dataOff: off + int64(data), length: -1}
		}
		return o, end, gen, nil
	}
}

// object returns object num: null (nil) if the cross-reference data does
// not list it or lists it free, as ISO 32000-1, 7.3.10 says of references
// to nothing. Strings come decrypted. Objects are cached; callers must not
// modify what they get.
func (r *reader) object(ctx context.Context, num int) (types.Object, error) {
	if r.conflict != nil {
		return nil, r.conflict
	}
	if o, ok := r.cache.get(num); ok {
		return o, nil
	}
	o, cost, err := r.load(ctx, num)
	if errors.Is(err, errBadOffset) && !r.rebuilt {
		if rerr := r.rebuild(ctx); rerr != nil {
			return nil, fmt.Errorf("%v; rebuilding the cross-reference data: %w", err, rerr)
		}
		if r.conflict != nil {
			return nil, r.conflict
		}
		o, cost, err = r.load(ctx, num)
	}
	if err != nil {
		return nil, err
	}
	r.loaded.add(num)
	r.cache.add(num, o, cost)
	return o, nil
}

// errRebuiltAnother: the cross-reference data was rebuilt (an offset was
// wrong) after objects were read, and the scan found another body for one
// of them (an earlier or later definition of its number). What was read
// before (the page tree, say) and what would be read after no longer
// agree, and readers do not agree on which to show (qpdf keeps what it
// had read, a rebuilt table alone gives the other): the file is refused
// rather than a part made of both. It was: a page whose number had a later
// body, a page tree node, was listed as a page before the rebuild and
// copied as that node after it, a part that qpdf --check fails.
var errRebuiltAnother = errors.New("cross-reference data rebuilt after objects were read")

// checkRebuilt compares the entries of the objects read before a rebuild
// (read, under old) with the rebuilt table's.
func (r *reader) checkRebuilt(old xrefTable, read objSet) {
	for w, bits := range read.bits {
		for ; bits != 0; bits &= bits - 1 {
			num := w*64 + mathbits.TrailingZeros64(bits)
			if a, b := old.get(num), r.x.get(num); !sameEntry(a, b) {
				r.conflict = fmt.Errorf("%w: object %d read at one place before, found at another after", errRebuiltAnother, num)
				return
			}
		}
	}
}

// sameEntry tells whether two entries lead to the same body: the same
// place, or none for both.
func sameEntry(a, b entry) bool {
	none := func(e entry) bool { return e.kind == kindUnset || e.kind == kindFree }
	switch {
	case none(a) || none(b):
		return none(a) && none(b)
	case a.kind != b.kind:
		return false
	case a.kind == kindOffset:
		return a.off == b.off
	}
	return a.stm == b.stm && a.idx == b.idx
}

func (r *reader) load(ctx context.Context, num int) (types.Object, int64, error) {
	e := r.x.get(num)
	switch e.kind {
	case kindOffset:
		o, size, gen, err := r.readAt(ctx, e.off, num)
		if err != nil {
			return nil, 0, err
		}
		if r.crypt != nil && num != r.crypt.encryptObj {
			if s, ok := o.(*stream); ok {
				d, err := r.crypt.decryptStrings(s.dict, num, gen)
				if err != nil {
					return nil, 0, fmt.Errorf("object %d: %w", num, err)
				}
				s.dict = d.(types.Dict)
			} else if o, err = r.crypt.decryptStrings(o, num, gen); err != nil {
				return nil, 0, fmt.Errorf("object %d: %w", num, err)
			}
		}
		// Parsed values take several times their text; the cache's byte
		// bound is on the text.
		return o, int64(size), nil
	case kindCompressed:
		return r.compressed(ctx, num, int(e.stm), int(e.idx))
	}
	return nil, 0, nil
}

// prefetchSpan is how much of an object is read first, and so how much a
// prefetch asks for: a page's dictionary, usually. Small, because a read
// that crosses into the next 4 KiB costs the cache another fetch.
const prefetchSpan = 512

// prefetchObjects tells the source where objects nums start, those not
// cached already: they are about to be read. For an object in an object
// stream, that is where the stream is.
func (r *reader) prefetchObjects(ctx context.Context, nums []int) {
	if ctx.Err() != nil {
		return
	}
	offs := make([]int64, 0, len(nums))
	stms := map[int]bool{}
	for _, num := range nums {
		if r.cache.has(num) {
			continue
		}
		e := r.x.get(num)
		switch e.kind {
		case kindOffset:
			offs = append(offs, e.off)
		case kindCompressed:
			stm := int(e.stm)
			if stms[stm] || r.objStms.has(stm) {
				continue
			}
			stms[stm] = true
			if se := r.x.get(stm); se.kind == kindOffset {
				offs = append(offs, se.off)
			}
		}
	}
	r.src.prefetch(offs, prefetchSpan)
}

// resolve follows references until it reaches a direct object.
func (r *reader) resolve(ctx context.Context, o types.Object) (types.Object, error) {
	for range 32 {
		ir, ok := o.(types.IndirectRef)
		if !ok {
			return o, nil
		}
		var err error
		if o, err = r.object(ctx, ir.ObjectNumber.Value()); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("a chain of 32 references")
}

// resolveDict resolves o to a dictionary (a stream's dictionary is not
// one); nil if o is null or something else.
func (r *reader) resolveDict(ctx context.Context, o types.Object) (types.Dict, error) {
	o, err := r.resolve(ctx, o)
	if err != nil {
		return nil, err
	}
	d, _ := o.(types.Dict)
	return d, nil
}

func (r *reader) resolveArray(ctx context.Context, o types.Object) (types.Array, error) {
	o, err := r.resolve(ctx, o)
	if err != nil {
		return nil, err
	}
	a, _ := o.(types.Array)
	return a, nil
}

// objStm is a decoded object stream: its data and the header's pairs.
type objStm struct {
	nums  []int
	offs  []int
	first int
	data  []byte
}

// compressed returns object num, stored at index idx of object stream stm.
func (r *reader) compressed(ctx context.Context, num, stm, idx int) (types.Object, int64, error) {
	os, err := r.objStm(ctx, stm)
	if err != nil {
		return nil, 0, fmt.Errorf("object %d in object stream %d: %w", num, stm, err)
	}
	if idx < 0 || idx >= len(os.nums) || os.nums[idx] != num {
		// The index is a hint: find the number in the header.
		idx = -1
		for i, n := range os.nums {
			if n == num {
				idx = i
			}
		}
		if idx < 0 {
			return nil, 0, nil // not there: null
		}
	}
	start := os.first + os.offs[idx]
	end := len(os.data)
	if idx+1 < len(os.offs) && os.first+os.offs[idx+1] >= start {
		end = os.first + os.offs[idx+1]
	}
	if start < 0 || start > end || end > len(os.data) {
		return nil, 0, fmt.Errorf("object %d: offset outside object stream %d", num, stm)
	}
	if err := r.countRead(); err != nil {
		return nil, 0, err
	}
	b := os.data[start:end]
	vend, err := valueEnd(b, 0, true, r.opts.MaxDepth)
	if err != nil {
		if errors.Is(err, errSyntax) && len(bytes.TrimSpace(b)) == 0 {
			return nil, 0, nil
		}
		return nil, 0, fmt.Errorf("object %d in object stream %d: %w", num, stm, err)
	}
	o, err := r.parseValue(ctx, b[:vend])
	if err != nil {
		return nil, 0, fmt.Errorf("object %d in object stream %d: %w", num, stm, err)
	}
	return o, int64(vend) + 64, nil
}

// objStm returns object stream stm, decoded (and cached).
func (r *reader) objStm(ctx context.Context, stm int) (*objStm, error) {
	if os, ok := r.objStms.get(stm); ok {
		return os, nil
	}
	if e := r.x.get(stm); e.kind != kindOffset {
		return nil, errors.New("not a stream in the file")
	}
	o, err := r.object(ctx, stm)
	if err != nil {
		return nil, err
	}
	s, ok := o.(*stream)
	if !ok {
		return nil, errors.New("not a stream")
	}
	n, first := intOf(s.dict["N"], -1), intOf(s.dict["First"], -1)
	if n < 0 || first < 0 || n > r.opts.MaxObjects {
		return nil, errors.New("bad /N or /First")
	}
	data, err := r.decodeCharged(ctx, s)
	if err != nil {
		return nil, err
	}
	if first > len(data) {
		return nil, errors.New("/First past the data")
	}
	// /N is a claim: room for the pairs the data can hold (each takes 4
	// bytes at least, "1 0 "), not for N. A 603-byte file whose object
	// streams claimed 4,000,000 objects each had 61 MiB allocated per
	// stream, two of them 122 MiB.
	pairs := min(n, len(data)/4+1)
	os := &objStm{first: first, data: data, nums: make([]int, 0, pairs), offs: make([]int, 0, pairs)}
	// The header's N pairs are read from the stream's start, not up to
	// /First, as qpdf and mutool read them: a /First a few bytes short
	// (white space before the first object that its offset skips) must not
	// cut the last offset's digits, as it does poppler's.
	hdr := data
	i := 0
	for range n {
		var a, b int64
		if a, i = nextUint(hdr, i); a < 0 {
			break
		}
		if b, i = nextUint(hdr, i); b < 0 {
			break
		}
		os.nums = append(os.nums, int(a))
		os.offs = append(os.offs, int(b))
	}
	r.objStms.add(stm, os, int64(len(data))+int64(16*len(os.nums)))
	return os, nil
}

// nextUint returns the unsigned integer token at or after i, and the index
// after it; -1 if there is none.
func nextUint(b []byte, i int) (int64, int) {
	i = skipSpace(b, i)
	j := regularEnd(b, i)
	v := parseUint(b[i:j])
	if v < 0 || v > 1<<40 {
		return -1, j
	}
	return v, j
}

// lengthOf settles the length of a stream's data: its /Length when
// "endstream" follows there, else up to the first "endstream" after the
// data's start (an indirect /Length that is wrong or missing, a producer
// that counted wrongly), found by a scan that reads but keeps nothing.
func (r *reader) lengthOf(ctx context.Context, s *stream) (int64, error) {
	if s.length >= 0 {
		return s.length, nil
	}
	var l int64 = -1
	switch v := s.dict["Length"].(type) {
	case types.Integer:
		l = int64(v)
	case types.IndirectRef:
		if !r.loadingXref {
			o, err := r.object(ctx, v.ObjectNumber.Value())
			if err != nil {
				var se *SourceError
				if errors.As(err, &se) || ctx.Err() != nil {
					return 0, err
				}
			}
			if n, ok := o.(types.Integer); ok {
				l = int64(n)
			}
		}
	}
	if l >= 0 && s.dataOff+l <= r.src.size {
		b, err := r.src.read(s.dataOff+l, 32)
		if err != nil {
			return 0, err
		}
		if i := skipEOL(b); bytes.HasPrefix(b[i:], []byte("endstream")) {
			s.length = l
			return l, nil
		}
	}
	end, err := r.findEndstream(ctx, s.dataOff)
	if err != nil {
		return 0, fmt.Errorf("stream object %d: %w", s.num, err)
	}
	s.length = end - s.dataOff
	return s.length, nil
}

// skipEOL skips the white space between a stream's data and "endstream".
func skipEOL(b []byte) int {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// findEndstream returns where the data that starts at off ends: before the
// end of line that precedes the first "endstream" (or "endobj", for a
// stream that lost its end) after off.
func (r *reader) findEndstream(ctx context.Context, off int64) (int64, error) {
	const piece = 64 << 10
	buf := make([]byte, piece+16)
	for pos := off; pos < r.src.size; pos += piece {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, err := r.src.ReadAt(buf, pos)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		b := buf[:n]
		// Whichever comes first, as qpdf recovers a length.
		k := bytes.Index(b, []byte("endstream"))
		if j := bytes.Index(b, []byte("endobj")); j >= 0 && (k < 0 || j < k) {
			k = j
		}
		if k >= 0 && k <= piece {
			end := pos + int64(k)
			// The end of line before the keyword is not data.
			if k >= 2 && b[k-2] == '\r' && b[k-1] == '\n' {
				end -= 2
			} else if k >= 1 && (b[k-1] == '\n' || b[k-1] == '\r') {
				end--
			}
			return max(end, off), nil
		}
	}
	return 0, errors.New("no endstream")
}

// rawData returns a reader of a stream's data as stored, decrypted, and its
// length.
func (r *reader) rawData(ctx context.Context, s *stream) (io.Reader, int64, error) {
	l, err := r.lengthOf(ctx, s)
	if err != nil {
		return nil, 0, err
	}
	if r.crypt == nil {
		return r.src.section(s.dataOff, l), l, nil
	}
	m := r.crypt.streamMethod(s)
	rd, n, err := r.crypt.decryptReader(m, s.num, s.gen, r.src, s.dataOff, l)
	if err != nil {
		return nil, 0, fmt.Errorf("stream object %d: %w", s.num, err)
	}
	return rd, n, nil
}

// filterList returns the names of a stream's filters and their parameters
// (nil where none), as far as they are direct objects.
func filterList(d types.Dict) ([]string, []types.Dict) {
	var names []string
	switch f := d["Filter"].(type) {
	case types.Name:
		names = []string{string(f)}
	case types.Array:
		for _, v := range f {
			if n, ok := v.(types.Name); ok {
				names = append(names, string(n))
			}
		}
	}
	parms := make([]types.Dict, len(names))
	switch p := d["DecodeParms"].(type) {
	case types.Dict:
		if len(parms) > 0 {
			parms[0] = p
		}
	case types.Array:
		for i, v := range p {
			if pd, ok := v.(types.Dict); ok && i < len(parms) {
				parms[i] = pd
			}
		}
	}
	return names, parms
}

// filterAliases are the abbreviations of inline images, which some
// producers use for streams too.
var filterAliases = map[string]string{
	"AHx": filter.ASCIIHex, "A85": filter.ASCII85, "LZW": filter.LZW, "Fl": filter.Flate,
	"RL": filter.RunLength, "CCF": filter.CCITTFax, "DCT": filter.DCT,
}

// decodeCharged decodes an object or cross-reference stream within
// MaxDecodeBytes, charging what it decodes (or what a decoding that went
// over cost) to the current call's MaxDecodeTotal.
func (r *reader) decodeCharged(ctx context.Context, s *stream) ([]byte, error) {
	left := r.opts.MaxDecodeTotal - r.decoded
	if left <= 0 {
		return nil, fmt.Errorf("%w: streams decoded to over %d bytes in all", ErrTooLarge, r.opts.MaxDecodeTotal)
	}
	limit := min(r.opts.MaxDecodeBytes, left)
	data, err := r.decode(ctx, s, limit)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			r.decoded += limit
			if limit < r.opts.MaxDecodeBytes {
				return nil, fmt.Errorf("%w: streams decoded to over %d bytes in all", ErrTooLarge, r.opts.MaxDecodeTotal)
			}
		}
		return nil, err
	}
	r.decoded += int64(len(data))
	return data, nil
}

// decode returns a stream's data decoded by its filters, in memory: for
// object and cross-reference streams and for scanning content streams, all
// of them bounded by limit (decoding more is an error).
func (r *reader) decode(ctx context.Context, s *stream, limit int64) ([]byte, error) {
	rd, n, err := r.rawData(ctx, s)
	if err != nil {
		return nil, err
	}
	names, parms := filterList(s.dict)
	if len(names) == 0 {
		if n > limit {
			return nil, fmt.Errorf("%w: stream object %d has %d bytes, over %d", ErrTooLarge, s.num, n, limit)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(rd, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	// Filters other than Flate read all their input into memory first; a
	// stream's encoded size is within a small factor of its decoded size for
	// all of them (ASCIIHex doubles it).
	if n > 2*limit+1<<20 {
		return nil, fmt.Errorf("%w: stream object %d has %d encoded bytes", ErrTooLarge, s.num, n)
	}
	for i, name := range names {
		if a, ok := filterAliases[name]; ok {
			name = a
		}
		if name == "Crypt" {
			continue
		}
		p := map[string]int{}
		for k, v := range parms[i] {
			switch v := v.(type) {
			case types.Integer:
				p[k] = int(v)
			case types.Boolean:
				if v {
					p[k] = 1
				} else {
					p[k] = 0
				}
			}
		}
		f, err := filter.NewFilter(name, p, limit)
		if err != nil {
			return nil, fmt.Errorf("stream object %d: %w", s.num, err)
		}
		if rd, err = f.Decode(rd); err != nil {
			if errors.Is(err, filter.ErrDecodeLimitExceeded) {
				return nil, fmt.Errorf("%w: stream object %d decodes to over %d bytes", ErrTooLarge, s.num, limit)
			}
			return nil, fmt.Errorf("stream object %d: %s: %w", s.num, name, err)
		}
	}
	if buf, ok := rd.(*bytes.Buffer); ok && int64(buf.Len()) <= limit {
		return buf.Bytes(), nil // pdfcpu's filters decode into memory: no second copy
	}
	b, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: stream object %d decodes to over %d bytes", ErrTooLarge, s.num, limit)
	}
	return b, nil
}
