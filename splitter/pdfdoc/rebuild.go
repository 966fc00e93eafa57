package pdfdoc

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// rebuild re-indexes a file whose cross-reference data is unusable, as
// readers do: one sequential pass over the file finds every "n g obj"
// header (a later one wins) and every trailer; object streams found on the
// way are opened for the objects they hold. It keeps the entries and a
// bounded list of candidates, never the file.
func (r *reader) rebuild(ctx context.Context) error {
	r.rebuilt = true
	old, read := r.x, r.loaded
	r.loaded = objSet{}
	r.x = xrefTable{max: r.opts.MaxObjects}
	r.trailer = nil
	r.cache = newLRU[int, types.Object](r.opts.CacheObjects, r.opts.CacheBytes)
	r.objStms = newLRU[int, *objStm](64, r.opts.ObjStmCacheBytes)
	r.loadingXref = true
	defer func() { r.loadingXref = false }()

	const piece = 1 << 20
	const overlap = 64 // longest header or keyword looked back over
	var (
		trailers  []int64 // offsets of "trailer" keywords, newest last
		xrefStms  []int   // objects that look like cross-reference streams
		catalogs  []int   // objects that look like catalogs
		objStmNum []int   // objects that look like object streams
	)
	const maxCandidates = 4096
	note := func(list *[]int, n int) {
		if len(*list) < maxCandidates {
			*list = append(*list, n)
		} else {
			(*list)[len(*list)-1] = n
		}
	}
	buf := make([]byte, piece+overlap)
	for pos := int64(0); pos < r.src.size; pos += piece {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.src.ReadAt(buf, pos)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		b := buf[:n]
		for i := 0; i < len(b) && i < piece; {
			k := bytes.Index(b[i:], []byte("obj"))
			t := bytes.Index(b[i:], []byte("trailer"))
			if k < 0 && t < 0 {
				break
			}
			if t >= 0 && (k < 0 || t < k) {
				at := i + t
				if at < piece && (at == 0 || isSpace(b[at-1]) || isDelim(b[at-1])) {
					trailers = append(trailers, pos+int64(at))
					if len(trailers) > maxCandidates {
						trailers = trailers[1:]
					}
				}
				i = at + len("trailer")
				continue
			}
			at := i + k
			i = at + 3
			if at >= piece || (at+3 < len(b) && !isSpace(b[at+3]) && !isDelim(b[at+3])) {
				continue
			}
			start, num, ok := headerBefore(b, at)
			if !ok || pos+int64(start) < 0 {
				continue
			}
			if num <= 0 || num >= int64(r.opts.MaxObjects) {
				continue
			}
			// A later definition of a number replaces an earlier one, as
			// an incremental update would.
			if err := r.x.put(int(num), pos+int64(start)); err != nil {
				return err
			}
			// Peek at the dictionary for the kinds of object a rebuilt
			// table needs to find.
			peek := b[at+3 : min(len(b), at+3+512)]
			if end := bytes.Index(peek, []byte("stream")); end >= 0 {
				peek = peek[:end]
			}
			switch {
			case typeIs(peek, "XRef"):
				note(&xrefStms, int(num))
			case typeIs(peek, "Catalog"):
				note(&catalogs, int(num))
			case typeIs(peek, "ObjStm"):
				note(&objStmNum, int(num))
			}
		}
	}
	// The objects inside object streams, where no object of the same
	// number stands in the file itself.
	for _, stm := range objStmNum {
		os, err := r.objStm(ctx, stm)
		if err != nil {
			if fatal(ctx, err) {
				return err
			}
			continue
		}
		for i, n := range os.nums {
			if n > 0 && n < r.opts.MaxObjects && r.x.get(n).kind == kindUnset {
				if err := r.x.set(n, entry{kind: kindCompressed, stm: int64(stm), idx: int64(i)}, false); err != nil {
					return err
				}
			}
		}
	}
	// Trailers, newest first; then the dictionaries of cross-reference
	// streams; then any catalog.
	for i := len(trailers) - 1; i >= 0; i-- {
		o, err := r.valueAt(ctx, trailers[i]+int64(len("trailer")))
		if err != nil {
			if fatal(ctx, err) {
				return err
			}
			continue
		}
		if d, ok := o.(types.Dict); ok {
			r.mergeTrailer(d)
		}
	}
	for i := len(xrefStms) - 1; i >= 0; i-- {
		o, err := r.object(ctx, xrefStms[i])
		if err != nil {
			if fatal(ctx, err) {
				return err
			}
			continue
		}
		if s, ok := o.(*stream); ok {
			r.mergeTrailer(s.dict)
		}
	}
	if !r.validRoot(ctx) {
		delete(r.trailer, "Root")
		for i := len(catalogs) - 1; i >= 0; i-- {
			if r.trailer == nil {
				r.trailer = types.Dict{}
			}
			r.trailer["Root"] = *types.NewIndirectRef(catalogs[i], 0)
			if r.validRoot(ctx) {
				break
			}
			delete(r.trailer, "Root")
		}
	}
	if _, ok := r.trailer["Root"]; !ok {
		return errors.New("no catalog found")
	}
	r.checkRebuilt(old, read)
	return nil
}

// validRoot reports whether the trailer's /Root is a catalog with pages.
func (r *reader) validRoot(ctx context.Context) bool {
	d, err := r.resolveDict(ctx, r.trailer["Root"])
	if err != nil || d == nil {
		return false
	}
	_, ok := d["Pages"]
	return ok
}

// typeIs reports whether a dictionary's text names type t (/Type /t or
// /Type/t).
func typeIs(b []byte, t string) bool {
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte("/Type"))
		if k < 0 {
			return false
		}
		j := skipSpace(b, i+k+len("/Type"))
		if bytes.HasPrefix(b[j:], []byte("/"+t)) {
			e := j + 1 + len(t)
			if e == len(b) || isSpace(b[e]) || isDelim(b[e]) {
				return true
			}
		}
		i += k + len("/Type")
	}
}

// headerBefore finds the "n g " before the "obj" at b[at] and returns where
// n starts and n.
func headerBefore(b []byte, at int) (start int, num int64, ok bool) {
	i := at
	back := func() bool { // skip white space backwards; at least one
		j := i
		for i > 0 && isSpace(b[i-1]) {
			i--
		}
		return i < j
	}
	digits := func() (int, bool) { // a run of digits backwards
		j := i
		for i > 0 && isDigit(b[i-1]) && j-i < 10 {
			i--
		}
		return i, i < j
	}
	if !back() {
		return 0, 0, false
	}
	if _, ok := digits(); !ok {
		return 0, 0, false
	}
	if !back() {
		return 0, 0, false
	}
	end := i
	s, ok := digits()
	if !ok || (s > 0 && !isSpace(b[s-1]) && !isDelim(b[s-1])) {
		return 0, 0, false
	}
	return s, parseUint(b[s:end]), true
}
