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
	names := newNameSet()
	c.scanLeft, c.scanned = pageScanStreams*c.r.opts.ScanBytes, map[int]bool{}
	complete := c.scanContents(p.dict["Contents"], names)
	if complete {
		complete = c.scanBorrowers(p.in.resources, res, p.dict["Annots"], names)
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
		if f := usedEntries(sub, names.has); len(f) > 0 {
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
func (c *copier) scanContents(contents types.Object, names *nameSet) bool {
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
func (c *copier) scanStream(s *stream, names *nameSet) bool {
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
	return scanNames(b, names, &c.scanLeft)
}

// scanBorrowers adds the names mentioned by whatever the page draws with
// content of its own: form XObjects, however deep among other forms they
// are drawn; tiling patterns; Type 3 fonts; and the appearance streams of
// the page's annotations. Those without /Resources use the page's (ISO
// 32000-1, 7.8.3), and readers look a name that a form's own resources
// lack up in the page's too (poppler does; qpdf's own tests have such
// files): so all their names count as the page's, which keeps a resource
// too many at worst. What they mention may make more entries of the
// page's resources, or of theirs, used: each resource dictionary met
// looks up every name found, each name once, until every dictionary has
// looked up every name (a fixpoint reached in work proportional to
// dictionaries times names; searching the page's resources again from the
// start for each new name was quadratic: 3.5 s a page for a chain of
// 4,000 forms). It reports false when something could not be read or
// scanned, or the search went over maxBorrowerWork: the page then keeps
// all its resources.
func (c *copier) scanBorrowers(resObj types.Object, res types.Dict, annots types.Object, names *nameSet) bool {
	b := borrowerSearch{c: c, names: names, known: map[int]bool{}, seen: map[int]bool{}}
	if !b.addDict(resObj, res) || !b.annotations(annots) {
		return false
	}
	for progress := true; progress; {
		progress = false
		for i := 0; i < len(b.dicts); i++ {
			for b.dicts[i].done < len(names.list) {
				if b.work++; b.work > maxBorrowerWork {
					return false
				}
				name := names.list[b.dicts[i].done]
				b.dicts[i].done++
				progress = true
				for _, cat := range b.dicts[i].cats {
					if v, ok := cat[name]; ok && !b.object(v) {
						return false
					}
				}
			}
		}
	}
	return true
}

// maxBorrowerWork bounds the names one page's search looks up in all its
// dictionaries; past it, the page keeps all its resources.
const maxBorrowerWork = 1 << 20

// borrowerSearch is one page's search: the names found so far, the
// resource dictionaries met and how far each has looked them up, and the
// objects already searched.
type borrowerSearch struct {
	c     *copier
	names *nameSet
	dicts []searchedDict
	known map[int]bool // indirect resource dictionaries in dicts
	seen  map[int]bool // objects searched
	work  int
}

// searchedDict is a resource dictionary's categories that name things
// with content (XObject, Pattern, Font), and how many of the names found
// it has looked up.
type searchedDict struct {
	cats [3]types.Dict
	done int
}

// addDict adds resource dictionary res (o as written: a reference is
// added once) to the dictionaries that look up the names found.
func (b *borrowerSearch) addDict(o types.Object, res types.Dict) bool {
	if res == nil {
		return true
	}
	if ir, ok := o.(types.IndirectRef); ok {
		if b.known[ir.ObjectNumber.Value()] {
			return true
		}
		b.known[ir.ObjectNumber.Value()] = true
	}
	var sd searchedDict
	empty := true
	for i, cat := range []string{"XObject", "Pattern", "Font"} {
		dict, err := b.c.r.resolveDict(b.c.ctx, res[cat])
		if err != nil {
			return false
		}
		sd.cats[i] = dict
		empty = empty && len(dict) == 0
	}
	if !empty {
		b.dicts = append(b.dicts, sd)
	}
	return true
}

// once reports whether o, if a reference, is seen for the first time.
func (b *borrowerSearch) once(o types.Object) bool {
	ir, ok := o.(types.IndirectRef)
	if !ok {
		return true
	}
	n := ir.ObjectNumber.Value()
	if b.seen[n] {
		return false
	}
	b.seen[n] = true
	return true
}

// object searches one resource: a form, a tiling pattern or a Type 3 font
// has its content scanned and its own resources added; anything else (an
// image, another font, a shading) has no content.
func (b *borrowerSearch) object(v types.Object) bool {
	c := b.c
	if !b.once(v) {
		return true
	}
	o, err := c.r.resolve(c.ctx, v)
	if err != nil {
		return false
	}
	var dict types.Dict
	var streams []*stream
	switch o := o.(type) {
	case *stream:
		dict, streams = o.dict, []*stream{o}
		if !isSubtype(dict, "Form") && intOf(dict["PatternType"], 0) != 1 {
			return true // an image
		}
	case types.Dict:
		if !isSubtype(o, "Type3") {
			return true // another kind of font, a shading pattern
		}
		dict = o
		procs, err := c.r.resolveDict(c.ctx, o["CharProcs"])
		if err != nil {
			return false
		}
		for _, p := range procs {
			po, err := c.r.resolve(c.ctx, p)
			if err != nil {
				return false
			}
			if s, ok := po.(*stream); ok {
				streams = append(streams, s)
			}
		}
	default:
		return true
	}
	return b.content(dict["Resources"], streams)
}

// content scans streams, which draw with the resources own (if any, else
// the page's), and adds own to the dictionaries searched.
func (b *borrowerSearch) content(own types.Object, streams []*stream) bool {
	c := b.c
	for _, s := range streams {
		if !c.scanStream(s, b.names) {
			return false
		}
	}
	res, err := c.r.resolveDict(c.ctx, own)
	if err != nil {
		return false
	}
	return b.addDict(own, res)
}

// annotations searches the appearance streams of a page's annotations
// (/AP: /N, /R and /D, each a stream or a dictionary of streams by state).
func (b *borrowerSearch) annotations(annots types.Object) bool {
	c := b.c
	arr, err := c.r.resolveArray(c.ctx, annots)
	if err != nil {
		return false
	}
	for _, a := range arr {
		d, err := c.r.resolveDict(c.ctx, a)
		if err != nil {
			return false
		}
		if d == nil {
			continue
		}
		ap, err := c.r.resolveDict(c.ctx, d["AP"])
		if err != nil {
			return false
		}
		for _, k := range []string{"N", "R", "D"} {
			v, ok := ap[k]
			if !ok {
				continue
			}
			o, err := c.r.resolve(c.ctx, v)
			if err != nil {
				return false
			}
			states, isDict := o.(types.Dict)
			if !isDict {
				if !b.appearance(v) {
					return false
				}
				continue
			}
			for _, s := range states {
				if !b.appearance(s) {
					return false
				}
			}
		}
	}
	return true
}

// appearance searches one appearance stream, a form whatever its /Subtype
// says.
func (b *borrowerSearch) appearance(v types.Object) bool {
	c := b.c
	if !b.once(v) {
		return true
	}
	o, err := c.r.resolve(c.ctx, v)
	if err != nil {
		return false
	}
	s, ok := o.(*stream)
	if !ok {
		return true
	}
	return b.content(s.dict["Resources"], []*stream{s})
}

func isSubtype(d types.Dict, subtype string) bool {
	st := d.Subtype()
	return st != nil && *st == subtype
}

// scanNames adds every name token of a content stream to names, skipping
// strings, comments and inline image data, where a '/' is not a name.
// Where the scan cannot be sure what is what (a string or an inline image
// that it cannot see the end of), it takes every name-like token in the
// rest of the stream instead (allNames): a few names too many cost a few
// resources, a name missed costs a font. It reports false only if the
// stream is not a content stream at all, which it never finds today: the
// result is kept for callers that keep all resources then. What finding
// the end of inline images inflates is charged to *left.
func scanNames(b []byte, names *nameSet, left *int64) bool {
	inlineDict := -1 // where the dictionary of the inline image being read starts
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
				allNames(b[i:], names)
				return true
			}
			i = end
		case ch == '<':
			if i+1 < len(b) && b[i+1] == '<' {
				i += 2
				continue
			}
			end := bytes.IndexByte(b[i:], '>')
			if end < 0 {
				allNames(b[i:], names)
				return true
			}
			i += end + 1
		case ch == '/':
			j := i + 1
			for j < len(b) && !isPDFSpace(b[j]) && !isPDFDelim(b[j]) {
				j++
			}
			addName(names, string(b[i+1:j]))
			i = j
		case isPDFDelim(ch):
			i++ // ) > [ ] { }
		default:
			j := i
			for j < len(b) && !isPDFSpace(b[j]) && !isPDFDelim(b[j]) {
				j++
			}
			switch string(b[i:j]) {
			case "BI":
				inlineDict = j
			case "ID":
				end, ok := -1, false
				if inlineDict >= 0 {
					end, ok = inlineDataEnd(b, inlineDict, i, j, left)
				}
				if !ok {
					allNames(b[j:], names)
					return true
				}
				inlineDict = -1
				j = end
			}
			i = j
		}
	}
	return true
}

// nameSet is the names a page's content mentions, in the order found.
type nameSet struct {
	has  map[string]bool
	list []string
}

func newNameSet() *nameSet { return &nameSet{has: map[string]bool{}} }

func (s *nameSet) add(name string) {
	if !s.has[name] {
		s.has[name] = true
		s.list = append(s.list, name)
	}
}

// addName adds a name as written and with its #xx escapes resolved.
func addName(names *nameSet, raw string) {
	names.add(raw)
	names.add(decodeName(raw))
}

// allNames adds every run of regular characters after a '/' in b to names,
// whatever it is inside of.
func allNames(b []byte, names *nameSet) {
	for i := 0; i < len(b); i++ {
		if b[i] != '/' {
			continue
		}
		j := i + 1
		for j < len(b) && !isPDFSpace(b[j]) && !isPDFDelim(b[j]) {
			j++
		}
		if j > i+1 {
			addName(names, string(b[i+1:j]))
		}
		i = j - 1
	}
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
