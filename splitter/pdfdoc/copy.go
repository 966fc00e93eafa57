package pdfdoc

import (
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"slices"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// copier copies the objects a page range reaches from the source to a part,
// through the lazy reader and the streaming writer.
//
// Every copied object gets a fresh number with generation 0 and every
// reference is rewritten to it, so the part's numbering is consistent by
// construction. Dictionaries and arrays are copied deep; stream data is
// copied raw from the source when the stream is written. What a reference
// leads to is read when the reference is met, because a reference to a page
// outside the range, to the page tree or to the catalog must become null
// instead of dragging the rest of the document along, and only the object
// says what it is.
type copier struct {
	ctx      context.Context
	d        *Doc
	r        *reader
	w        *partWriter
	done     map[int]int // source object number → part's
	pageDest map[int]int // pages of the range: source object number → part's
	queue    []pending   // numbered but not written yet
	// The part's widget annotations (indirect ones: only those can be
	// fields), for its /AcroForm.
	widgets    types.Array
	widgetSeen map[int]bool
	// The scan of the page being copied (resources): the decoded bytes it
	// may still scan, and the streams it has scanned.
	scanLeft int64
	scanned  map[int]bool
	err      error // the first failure; copying stops at it
}

type pending struct{ src, dst int }

func newRef(n int) types.IndirectRef { return *types.NewIndirectRef(n, 0) }

func (c *copier) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

func (c *copier) alloc() int {
	n, err := c.w.alloc()
	if err != nil {
		c.fail(err)
	}
	return n
}

// extract writes pages from..thru of d as a part to w.
func (d *Doc) extract(ctx context.Context, from, thru int, w io.Writer) error {
	pages := make([]page, 0, thru-from+1)
	for i := from; i <= thru; i++ {
		p, err := d.findPage(ctx, i-1)
		if err != nil {
			return fmt.Errorf("page %d: %w", i, err)
		}
		// The dictionary is read again when its turn comes: a range of
		// 1,000 pages must not hold 1,000 dictionaries.
		p.dict = nil
		pages = append(pages, p)
	}
	o := d.r.opts
	pw := newPartWriter(w, d.version, o.MaxPartBytes, o.MaxPartObjects)
	c := &copier{ctx: ctx, d: d, r: d.r, w: pw, done: map[int]int{}, pageDest: map[int]int{}, widgetSeen: map[int]bool{}}
	catalog, pagesRoot := c.alloc(), c.alloc()
	kids := make(types.Array, len(pages))
	// Number the pages first, so that links between pages of the range
	// resolve to the copies instead of being dropped.
	for i, p := range pages {
		m := c.alloc()
		kids[i] = newRef(m)
		if _, dup := c.pageDest[p.num]; !dup {
			c.pageDest[p.num] = m
		}
	}
	for i, p := range pages {
		if err := ctx.Err(); err != nil {
			return err
		}
		dict, err := d.nodeDict(ctx, p.num)
		if err != nil {
			return fmt.Errorf("page %d: %w", from+i, err)
		}
		p.dict = dict
		pd := c.copyPage(p, newRef(pagesRoot))
		if c.err != nil {
			return fmt.Errorf("page %d: %w", from+i, c.err)
		}
		if err := pw.object(kids[i].(types.IndirectRef).ObjectNumber.Value(), pd); err != nil {
			return err
		}
		if err := c.drain(); err != nil {
			return err
		}
	}
	if err := pw.object(pagesRoot, types.Dict{"Type": types.Name("Pages"), "Kids": kids, "Count": types.Integer(len(pages))}); err != nil {
		return err
	}
	root := types.Dict{"Type": types.Name("Catalog"), "Pages": newRef(pagesRoot)}
	c.catalogEntries(root)
	if err := c.drain(); err != nil {
		return err
	}
	if err := pw.object(catalog, root); err != nil {
		return err
	}
	info := 0
	if id := c.info(); id != nil {
		info = c.alloc()
		if err := pw.object(info, id); err != nil {
			return err
		}
	}
	if c.err != nil {
		return c.err
	}
	// A permanent identifier derived from the source's and the range: the
	// same part always gets the same /ID.
	h := md5.New()
	fmt.Fprintf(h, "%x %d %d %d", d.id, d.r.src.size, from, thru)
	return pw.finish(catalog, info, h.Sum(nil))
}

// isTreeObject reports whether a source object is a page or page tree node
// (or the catalog): what a part has its own of.
func (c *copier) isTreeObject(num int, o types.Object) bool {
	if c.d.tree.has(num) {
		return true
	}
	dict, ok := o.(types.Dict)
	if !ok {
		return false
	}
	if t := dict.Type(); t != nil && (*t == "Page" || *t == "Pages" || *t == "Catalog") {
		return true
	}
	if p, ok := dict["Parent"].(types.IndirectRef); ok {
		return c.d.inner.has(p.ObjectNumber.Value())
	}
	return false
}

// ref maps a reference in the source to one in the part, numbering (and
// queueing for copying) the target on first sight. It returns nil (null)
// for references a part must not follow: pages outside the range, the
// source's page tree and catalog, and objects that do not exist.
func (c *copier) ref(ir types.IndirectRef) types.Object {
	if c.err != nil {
		return nil
	}
	n := ir.ObjectNumber.Value()
	if m, ok := c.pageDest[n]; ok {
		return newRef(m)
	}
	if m, ok := c.done[n]; ok {
		return newRef(m)
	}
	o, err := c.r.object(c.ctx, n)
	if err != nil {
		c.fail(fmt.Errorf("object %d: %w", n, err))
		return nil
	}
	if o == nil || c.isTreeObject(n, o) {
		return nil // ISO 32000-1, 7.3.10: a reference to nothing is null
	}
	m := c.alloc()
	c.done[n] = m
	c.queue = append(c.queue, pending{n, m})
	return newRef(m)
}

// drain writes every queued object, including those queued while copying.
func (c *copier) drain() error {
	for i := 0; i < len(c.queue) && c.err == nil; i++ {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		p := c.queue[i]
		o, err := c.r.object(c.ctx, p.src)
		if err != nil {
			return fmt.Errorf("object %d: %w", p.src, err)
		}
		if s, ok := o.(*stream); ok {
			if err := c.writeStream(p.dst, s); err != nil {
				return fmt.Errorf("object %d: %w", p.src, err)
			}
			continue
		}
		cp := c.copy(o)
		if c.err != nil {
			break
		}
		if err := c.w.object(p.dst, cp); err != nil {
			return err
		}
	}
	c.queue = c.queue[:0]
	return c.err
}

// writeStream writes the part's copy of a stream: its dictionary copied,
// its data as stored (decrypted, still encoded) with a direct /Length that
// cannot disagree with it.
func (c *copier) writeStream(dst int, s *stream) error {
	dict := c.copyDict(s.dict)
	if c.err != nil {
		return c.err
	}
	if c.r.crypt != nil && hasIdentityCrypt(s.dict) {
		dropCryptFilter(dict)
	}
	data, n, err := c.r.rawData(c.ctx, s)
	if err != nil {
		return err
	}
	return c.w.stream(dst, dict, data, n)
}

// dropCryptFilter removes an Identity /Crypt filter from a stream
// dictionary: the part is not encrypted, and its readers need no crypt
// filter to read the data.
func dropCryptFilter(d types.Dict) {
	names, parms := filterList(d)
	var fs types.Array
	var ps types.Array
	anyParm := false
	for i, n := range names {
		if n == "Crypt" {
			continue
		}
		fs = append(fs, types.Name(n))
		if parms[i] != nil {
			ps = append(ps, parms[i])
			anyParm = true
		} else {
			ps = append(ps, nil)
		}
	}
	delete(d, "Filter")
	delete(d, "DecodeParms")
	if len(fs) > 0 {
		d["Filter"] = fs
		if anyParm {
			d["DecodeParms"] = ps
		}
	}
}

// copy returns a deep copy of a direct object with its references mapped.
// A nil result is null.
func (c *copier) copy(o types.Object) types.Object {
	switch o := o.(type) {
	case types.IndirectRef:
		return c.ref(o)
	case types.Dict:
		return c.copyDict(o)
	case types.Array:
		a := make(types.Array, len(o))
		for i, v := range o {
			a[i] = c.copy(v)
		}
		return a
	case *stream:
		c.fail(fmt.Errorf("a stream inside object %d", o.num))
		return nil
	}
	return o // names, numbers, strings, booleans: immutable values
}

// copyDict copies d, visiting keys in sorted order so that object numbers,
// and with them the part's bytes, do not depend on map iteration. A null
// value is the same as an absent key, so it is left out.
func (c *copier) copyDict(d types.Dict) types.Dict {
	out := types.NewDict()
	for _, k := range sortedDictKeys(d) {
		if v := c.copy(d[k]); v != nil {
			out[k] = v
		}
	}
	return out
}

func sortedDictKeys(d types.Dict) []string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// copyPage returns the part's copy of page p with parent as its /Parent.
func (c *copier) copyPage(p page, parent types.IndirectRef) types.Dict {
	out := types.NewDict()
	for _, k := range sortedDictKeys(p.dict) {
		v := p.dict[k]
		switch k {
		case "Parent", "Resources", "MediaBox", "CropBox", "Rotate":
			continue // set below, inherited values included
		case "B":
			// Article beads chain through every page of a thread; in a part
			// they would lead nowhere.
			continue
		case "Annots":
			if a := c.copyAnnots(v); len(a) > 0 {
				out[k] = a
			}
			continue
		case "Contents":
			if cv := c.contents(v); cv != nil {
				out[k] = cv
			}
			continue
		}
		if cv := c.copy(v); cv != nil {
			out[k] = cv
		}
	}
	out["Type"] = types.Name("Page")
	out["Parent"] = parent
	out["Resources"] = c.resources(p)
	for _, a := range []struct {
		key string
		v   types.Object
	}{{"CropBox", p.in.cropBox}, {"MediaBox", p.in.mediaBox}, {"Rotate", p.in.rotate}} {
		if a.v == nil {
			continue
		}
		if cv := c.copy(a.v); cv != nil {
			out[a.key] = cv
		}
	}
	return out
}

// contents returns the part's /Contents for a page's v: the streams among
// what v names, nil if none. Anything else there is no content: a stream
// that is gone (freed, missing) would be a null, which readers reject, and
// a dictionary, a number or a name make qpdf --check warn about the part
// (poppler ignores them).
func (c *copier) contents(v types.Object) types.Object {
	o, err := c.r.resolve(c.ctx, v)
	if err != nil {
		c.fail(err)
		return nil
	}
	streamRef := func(o types.Object) types.Object {
		if s, ok := o.(*stream); ok {
			return c.ref(newRef(s.num))
		}
		return nil
	}
	arr, ok := o.(types.Array)
	if !ok {
		return streamRef(o)
	}
	var out types.Array
	for _, e := range arr {
		if _, isRef := e.(types.IndirectRef); !isRef {
			continue // a stream is never a direct object
		}
		s, err := c.r.resolve(c.ctx, e)
		if err != nil {
			c.fail(err)
			return nil
		}
		if r := streamRef(s); r != nil {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// copyAnnots copies a page's annotations. Links to pages outside the part
// are left out: their destination would be null, which readers report as a
// broken destination. Widgets are cut loose from the source's form
// (annotForPart) and listed for the part's own (formEntry).
func (c *copier) copyAnnots(v types.Object) types.Array {
	arr, err := c.r.resolveArray(c.ctx, v)
	if err != nil {
		c.fail(err)
		return nil
	}
	var out types.Array
	for _, a := range arr {
		ir, isRef := a.(types.IndirectRef)
		if !isRef {
			if d, ok := a.(types.Dict); ok && !c.linksOutside(d) {
				out = append(out, c.copyDict(c.annotForPart(d)))
			}
			continue
		}
		n := ir.ObjectNumber.Value()
		m, done := c.done[n]
		if !done {
			d, err := c.r.resolveDict(c.ctx, ir)
			if err != nil {
				c.fail(err)
				return nil
			}
			if d == nil || c.linksOutside(d) {
				continue
			}
			m = c.alloc()
			c.done[n] = m
			cp := c.copyDict(c.annotForPart(d))
			if c.err != nil {
				return nil
			}
			if err := c.w.object(m, cp); err != nil {
				c.fail(err)
				return nil
			}
			if isSubtype(d, "Widget") && !c.widgetSeen[m] {
				c.widgetSeen[m] = true
				c.widgets = append(c.widgets, newRef(m))
			}
		}
		out = append(out, newRef(m))
	}
	return out
}

// linksOutside reports whether annotation d is a link whose explicit
// destination (/Dest, or /D of a /GoTo action) is not a page of the part.
// Named destinations are kept: they need the catalog's name tree, which a
// part lacks, but readers resolve them only when the link is followed.
func (c *copier) linksOutside(d types.Dict) bool {
	if st := d.Subtype(); st == nil || *st != "Link" {
		return false
	}
	dest, ok := d["Dest"]
	if !ok {
		a, err := c.r.resolveDict(c.ctx, d["A"])
		if err != nil || a == nil {
			return false
		}
		if s := a.NameEntry("S"); s == nil || *s != "GoTo" {
			return false
		}
		dest = a["D"]
	}
	o, err := c.r.resolve(c.ctx, dest)
	if err != nil {
		return false
	}
	if dd, ok := o.(types.Dict); ok { // a destination dictionary: << /D [...] >>
		if o, err = c.r.resolve(c.ctx, dd["D"]); err != nil {
			return false
		}
	}
	arr, ok := o.(types.Array)
	if !ok {
		return false // a named destination
	}
	// An explicit destination leads inside the part only if it names one
	// of its pages; null or a page number (which would count in the
	// source's pages) leads nowhere a reader can follow.
	if len(arr) == 0 {
		return true
	}
	ir, ok := arr[0].(types.IndirectRef)
	if !ok {
		return true
	}
	_, inside := c.pageDest[ir.ObjectNumber.Value()]
	return !inside
}

// maxFieldDepth bounds the walk up a form field's ancestors: real fields
// are a few levels deep, and a cycle must end.
const maxFieldDepth = 256

// annotForPart returns d, or for a widget with a /Parent, a copy of it
// without /Parent and with the field attributes it inherited merged in: a
// field-widget of its own. The parent would lead to the form's field tree and
// through it to the widgets of every other page, and a widget left without
// its field type makes poppler complain. The source is never modified.
func (c *copier) annotForPart(d types.Dict) types.Dict {
	if st := d.Subtype(); st == nil || *st != "Widget" {
		return d
	}
	parent, ok := d["Parent"]
	if !ok {
		return d
	}
	out := types.NewDict()
	for k, v := range d {
		if k != "Parent" {
			out[k] = v
		}
	}
	seen := map[int]bool{}
	for parent != nil {
		if ir, ok := parent.(types.IndirectRef); ok {
			if seen[ir.ObjectNumber.Value()] || len(seen) > maxFieldDepth {
				break
			}
			seen[ir.ObjectNumber.Value()] = true
		}
		field, err := c.r.resolveDict(c.ctx, parent)
		if err != nil || field == nil {
			break
		}
		// The inheritable field entries (ISO 32000-1, 12.7.3), and the
		// terminal field's name, description and options.
		for _, k := range []string{"FT", "Ff", "V", "DV", "DA", "Q", "T", "TU", "Opt", "MaxLen"} {
			if _, has := out[k]; !has {
				if v, ok := field[k]; ok {
					out[k] = v
				}
			}
		}
		parent = field["Parent"]
	}
	return out
}

// catalogEntries copies into the part's catalog the source catalog's entries
// that change what its pages show or how they are read: /OCProperties
// decides which optional content is visible (without it readers show
// content the source hides), /Lang the language of the text, and /AcroForm
// (formEntry) where the part has widgets.
func (c *copier) catalogEntries(root types.Dict) {
	cat, err := c.r.resolveDict(c.ctx, newRef(c.d.catalog))
	if err != nil || cat == nil {
		c.fail(err)
		return
	}
	for _, k := range []string{"Lang", "OCProperties"} {
		if v, ok := cat[k]; ok {
			if cv := c.copy(v); cv != nil {
				root[k] = cv
			}
		}
	}
	if form := c.formEntry(cat["AcroForm"]); form != nil {
		root["AcroForm"] = form
	}
}

// formEntry returns the part's interactive form: the part's widgets, each a
// field of its own (annotForPart merged the field attributes into them), and
// the source form's defaults. Readers that regenerate a field's appearance
// (/NeedAppearances, or no /AP) take its font from the default resources
// /DR; without them poppler falls back to a font lacking the field's
// characters and loses its text.
func (c *copier) formEntry(acroForm types.Object) types.Dict {
	if len(c.widgets) == 0 {
		return nil
	}
	src, err := c.r.resolveDict(c.ctx, acroForm)
	if err != nil || src == nil {
		c.fail(err)
		return nil
	}
	out := types.NewDict()
	for _, k := range []string{"DA", "DR", "NeedAppearances", "Q"} {
		if v, ok := src[k]; ok {
			if cv := c.copy(v); cv != nil {
				out[k] = cv
			}
		}
	}
	out["Fields"] = c.widgets
	return out
}

// info returns the part's document information dictionary: the source's
// descriptive strings, so that a part is recognisably from its document.
func (c *copier) info() types.Dict {
	src, err := c.r.resolveDict(c.ctx, c.r.trailer["Info"])
	if err != nil || src == nil {
		return nil
	}
	out := types.NewDict()
	for _, k := range []string{"Author", "Creator", "Keywords", "Subject", "Title", "Producer"} {
		v, err := c.r.resolve(c.ctx, src[k])
		if err != nil {
			continue
		}
		switch v := v.(type) {
		case types.StringLiteral, types.HexLiteral:
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
