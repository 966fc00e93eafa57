package pdfdoc

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// resources returns the part's copy of the resources page p uses.
//
// Many producers give every page one shared resource dictionary naming every
// image and font of the document; copied whole, it would make each part as
// big as the document. So each named category keeps only the names that the
// page's content streams (and the form XObjects and Type 3 fonts that have
// no resources of their own and so use the page's) mention anywhere. That is
// a superset of the names they use, which is what matters: dropping a used
// resource loses text or images, keeping an extra one costs bytes. pdfcpu's own
// consolidation (PageDict with OptimizeResourceDicts) was not used: its
// tokenizer cuts strings at the first ')' whatever the nesting and glues the
// streams of a /Contents array together without a separator, so it can drop
// fonts that are in use. When a content stream cannot be decoded or scanned,
// the resources are copied whole.
func (c *copier) resources(p page) types.Dict {
	res, err := c.r.resolveDict(c.ctx, p.in.resources)
	if err != nil {
		c.fail(err)
		return nil
	}
	if res == nil {
		return types.NewDict() // none, or not a dictionary: nothing usable
	}
	names := map[string]bool{}
	c.scanLeft, c.scanned = pageScanStreams*c.r.opts.ScanBytes, map[int]bool{}
	complete := c.scanContents(p.dict["Contents"], names)
	if complete {
		complete = c.scanBorrowers(res, names)
	}
	if !complete {
		return c.copyDict(res)
	}
	kept := types.NewDict()
	for k, v := range res {
		if !namedCategory(k) {
			kept[k] = v
			continue
		}
		sub, err := c.r.resolveDict(c.ctx, v)
		if err != nil || sub == nil {
			kept[k] = v // not a dictionary: leave it as it was
			continue
		}
		if f := usedEntries(sub, names); len(f) > 0 {
			kept[k] = f
		}
	}
	return c.copyDict(kept)
}

// usedEntries returns the entries of dict named in names, walking whichever
// of the two is smaller: a dictionary shared by every page may name hundreds
// of thousands of fonts while one page uses a few, and walking it for each
// page of a part cost a tenth of a second a page.
func usedEntries(dict types.Dict, names map[string]bool) types.Dict {
	used := types.NewDict()
	if len(names) < len(dict) {
		for name := range names {
			if v, ok := dict[name]; ok {
				used[name] = v
			}
		}
		return used
	}
	for name, v := range dict {
		if names[name] {
			used[name] = v
		}
	}
	return used
}

// namedCategory reports whether resource category k maps names used in
// content streams to objects (ISO 32000-1, table 33); /ProcSet is not one.
func namedCategory(k string) bool {
	switch k {
	case "ExtGState", "ColorSpace", "Pattern", "Shading", "XObject", "Font", "Properties":
		return true
	}
	return false
}

// scanContents adds the names mentioned by a /Contents value (a stream or an
// array of streams) to names. It reports false when some stream could not
// be decoded or scanned.
func (c *copier) scanContents(contents types.Object, names map[string]bool) bool {
	o, err := c.r.resolve(c.ctx, contents)
	if err != nil {
		return false
	}
	var streams []types.Object
	switch o := o.(type) {
	case nil:
		return true // no content: a blank page
	case *stream:
		streams = []types.Object{o}
	case types.Array:
		streams = o
	default:
		return false
	}
	for _, s := range streams {
		if c.ctx.Err() != nil {
			return false
		}
		o, err := c.r.resolve(c.ctx, s)
		if err != nil {
			return false
		}
		if o == nil {
			continue
		}
		sd, ok := o.(*stream)
		if !ok || !c.scanStream(sd, names) {
			return false
		}
	}
	return true
}

// pageScanStreams is how many streams of ScanBytes one page's scan may
// decode in all.
const pageScanStreams = 4

// scanStream adds the names mentioned in one stream to names. Options'
// ScanBytes bounds the decoded size of a stream that is scanned. Real
// content streams are far smaller; a decompression bomb (a few KB of Flate
// in two layers inflating to gigabytes) would otherwise be inflated in
// memory here. A stream over it is not scanned, so its page keeps its
// resources whole: a bigger part, never a wrong one. The same goes for a
// page whose streams decode to more than pageScanStreams times ScanBytes
// in all: a /Contents array or a Type 3 font's /CharProcs may name one
// small bomb a million times, or many bombs. A stream the page has
// already had scanned is not scanned again.
func (c *copier) scanStream(s *stream, names map[string]bool) bool {
	if c.scanned[s.num] {
		return true
	}
	if c.scanLeft <= 0 {
		return false
	}
	b, err := c.r.decode(c.ctx, s, min(c.r.opts.ScanBytes, c.scanLeft))
	if err != nil {
		if fatal(c.ctx, err) && !errors.Is(err, ErrTooLarge) {
			c.fail(err)
		}
		return false
	}
	c.scanLeft -= int64(len(b))
	c.scanned[s.num] = true
	return scanNames(b, names)
}

// scanBorrowers adds the names mentioned by the used resources that have no
// resources of their own and so use the page's: form XObjects without
// /Resources (allowed before PDF 1.2 and still written) and Type 3 fonts
// without /Resources (ISO 32000-1, 9.6.5). What they mention may be
// another such resource, so the scan repeats until nothing new turns up.
func (c *copier) scanBorrowers(res types.Dict, names map[string]bool) bool {
	xobjs, err := c.r.resolveDict(c.ctx, res["XObject"])
	if err != nil {
		return false
	}
	fonts, err := c.r.resolveDict(c.ctx, res["Font"])
	if err != nil {
		return false
	}
	seenX, seenF := map[string]bool{}, map[string]bool{}
	for {
		found := false
		for name, v := range usedEntries(xobjs, names) {
			if seenX[name] {
				continue
			}
			seenX[name] = true
			o, err := c.r.resolve(c.ctx, v)
			if err != nil {
				return false
			}
			sd, ok := o.(*stream)
			if !ok || !isSubtype(sd.dict, "Form") || sd.dict["Resources"] != nil {
				continue
			}
			if !c.scanStream(sd, names) {
				return false
			}
			found = true
		}
		for name, v := range usedEntries(fonts, names) {
			if seenF[name] {
				continue
			}
			seenF[name] = true
			font, err := c.r.resolveDict(c.ctx, v)
			if err != nil {
				return false
			}
			if font == nil || !isSubtype(font, "Type3") || font["Resources"] != nil {
				continue
			}
			procs, err := c.r.resolveDict(c.ctx, font["CharProcs"])
			if err != nil {
				return false
			}
			for _, p := range procs {
				o, err := c.r.resolve(c.ctx, p)
				if err != nil {
					return false
				}
				if sd, ok := o.(*stream); ok && !c.scanStream(sd, names) {
					return false
				}
			}
			found = true
		}
		if !found {
			return true
		}
	}
}

func isSubtype(d types.Dict, subtype string) bool {
	st := d.Subtype()
	return st != nil && *st == subtype
}

// scanNames adds every name token of a content stream to names, skipping
// strings, comments and inline image data, where a '/' is not a name. It
// reports false on a string or inline image that does not end.
func scanNames(b []byte, names map[string]bool) bool {
	for i := 0; i < len(b); {
		ch := b[i]
		switch {
		case isPDFSpace(ch):
			i++
		case ch == '%':
			for i < len(b) && b[i] != '\n' && b[i] != '\r' {
				i++
			}
		case ch == '(':
			end := literalEnd(b, i)
			if end < 0 {
				return false
			}
			i = end
		case ch == '<':
			if i+1 < len(b) && b[i+1] == '<' {
				i += 2
				continue
			}
			end := bytes.IndexByte(b[i:], '>')
			if end < 0 {
				return false
			}
			i += end + 1
		case ch == '/':
			j := i + 1
			for j < len(b) && !isPDFSpace(b[j]) && !isPDFDelim(b[j]) {
				j++
			}
			raw := string(b[i+1 : j])
			names[raw] = true
			names[decodeName(raw)] = true
			i = j
		case isPDFDelim(ch):
			i++ // ) > [ ] { }
		default:
			j := i
			for j < len(b) && !isPDFSpace(b[j]) && !isPDFDelim(b[j]) {
				j++
			}
			tok := string(b[i:j])
			i = j
			if tok == "ID" {
				end := skipInlineData(b, i)
				if end < 0 {
					return false
				}
				i = end
			}
		}
	}
	return true
}

// skipInlineData returns the index after the "EI" that ends the inline image
// data following an "ID" operator ending at b[i], or -1. The data is binary
// and has no length, so, as readers do, the end is the first "EI" with white
// space before it and white space, a delimiter or the end after it.
func skipInlineData(b []byte, i int) int {
	for j := i + 1; j+1 < len(b); j++ {
		if b[j] != 'E' || b[j+1] != 'I' || !isPDFSpace(b[j-1]) {
			continue
		}
		if k := j + 2; k == len(b) || isPDFSpace(b[k]) || isPDFDelim(b[k]) {
			return k
		}
	}
	return -1
}

func isPDFSpace(ch byte) bool {
	switch ch {
	case 0, '\t', '\n', '\f', '\r', ' ':
		return true
	}
	return false
}

func isPDFDelim(ch byte) bool {
	switch ch {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

// decodeName resolves the #xx escapes of a name (ISO 32000-1, 7.3.5).
func decodeName(s string) string {
	if !strings.Contains(s, "#") {
		return s
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				out = append(out, byte(v))
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}
