package splitter

import (
	"fmt"
	"slices"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// docCopier copies objects from the parsed source into a part's context. It is
// used instead of pdfcpu.ExtractPages, which keeps each reference's
// generation number while its writer puts 0 in the xref (a damaged file for
// every object with a generation above 0), copies whatever a link reaches (a
// link to another page pulls in that page, its parent and so the whole page
// tree and document), drops an inherited /CropBox, and modifies the source
// context (form field dictionaries) while it copies.
//
// Every copied object gets a fresh number with generation 0 and every
// reference is rewritten to it, so the part's numbering is consistent by
// construction. Copies are deep for dictionaries and arrays; stream data is
// shared with the source, never modified.
type docCopier struct {
	d        *Doc
	src, dst *model.XRefTable
	done     map[int]int  // source object number → copy's object number
	pageDest map[int]int  // pages of the range: source object number → copy's
	queue    []docPending // objects numbered but not copied yet
	// The part's widget annotations (indirect ones: only those can be
	// fields), for its /AcroForm.
	widgets    types.Array
	widgetSeen map[int]bool
}

type docPending struct{ src, dst int }

func newDocCopier(d *Doc, dst *model.XRefTable) *docCopier {
	return &docCopier{d: d, src: d.xref, dst: dst, done: map[int]int{}, pageDest: map[int]int{}, widgetSeen: map[int]bool{}}
}

// alloc reserves the next object number in the part.
func (c *docCopier) alloc() int {
	n, _ := c.dst.InsertObject(nil) // cannot fail
	return n
}

func newRef(n int) types.IndirectRef { return *types.NewIndirectRef(n, 0) }

// ref maps a reference in the source to one in the part, numbering (and
// queueing for copying) the target on first sight. It returns nil (null) for
// references a part must not follow: pages outside the range, the source's
// page tree and catalog, and objects that do not exist.
func (c *docCopier) ref(ir types.IndirectRef) types.Object {
	n := ir.ObjectNumber.Value()
	if m, ok := c.pageDest[n]; ok {
		return newRef(m)
	}
	if _, ok := c.d.pageAt[n]; ok || c.d.nodes[n] {
		return nil
	}
	if m, ok := c.done[n]; ok {
		return newRef(m)
	}
	if e, ok := c.src.Find(n); !ok || e == nil || e.Free {
		return nil // ISO 32000-1, 7.3.10: a reference to nothing is null
	}
	m := c.alloc()
	c.done[n] = m
	c.queue = append(c.queue, docPending{n, m})
	return newRef(m)
}

// drain copies every queued object, including those queued while copying.
func (c *docCopier) drain() error {
	for i := 0; i < len(c.queue); i++ {
		p := c.queue[i]
		o, err := c.src.Dereference(newRef(p.src))
		if err != nil {
			return fmt.Errorf("object %d: %w", p.src, err)
		}
		c.dst.Table[p.dst].Object = c.copy(o)
	}
	c.queue = c.queue[:0]
	return nil
}

// copy returns a deep copy of a direct object with its references mapped.
// A nil result is null.
func (c *docCopier) copy(o types.Object) types.Object {
	switch o := o.(type) {
	case types.IndirectRef:
		return c.ref(o)
	case types.Dict:
		return c.copyDict(o)
	case types.StreamDict:
		s := o
		s.Dict = c.copyDict(o.Dict)
		// The data is written as read (decrypted, still encoded); a direct
		// /Length that matches it spares copying a length object and cannot
		// disagree with the data.
		n := int64(len(o.Raw))
		s.Dict["Length"] = types.Integer(n)
		s.StreamLength = &n
		s.Content = nil
		return s
	case types.Array:
		a := make(types.Array, len(o))
		for i, v := range o {
			a[i] = c.copy(v)
		}
		return a
	}
	return o // names, numbers, strings, booleans: immutable values
}

// copyDict copies d, visiting keys in sorted order so that object numbers,
// and with them the length of a part, do not depend on map iteration. A null
// value is the same as an absent key, so it is left out.
func (c *docCopier) copyDict(d types.Dict) types.Dict {
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

// writtenPageKey reports whether pdfcpu's writer follows the references
// under page entry k (writePageDict); a reference under any other key would
// be written but not its target, leaving the part with a dangling reference.
func writtenPageKey(k string) bool {
	switch k {
	case "Contents", "Resources", "MediaBox", "CropBox", "BleedBox", "TrimBox", "ArtBox",
		"BoxColorInfo", "PieceInfo", "LastModified", "Rotate", "Group", "Annots", "Thumb", "B",
		"Dur", "Trans", "AA", "Metadata", "StructParents", "ID", "PZ", "SeparationInfo", "Tabs",
		"TemplateInstantiated", "PresSteps", "UserUnit", "VP":
		return true
	}
	return false
}

// copyPage returns the part's copy of page p with parent as its /Parent.
func (c *docCopier) copyPage(p docPage, parent types.IndirectRef) (types.Dict, error) {
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
		}
		if !writtenPageKey(k) && hasRef(v) {
			continue
		}
		if cv := c.copy(v); cv != nil {
			out[k] = cv
		}
	}
	out["Type"] = types.Name("Page")
	out["Parent"] = parent
	res, err := c.resources(p)
	if err != nil {
		return nil, err
	}
	out["Resources"] = res
	for _, a := range []struct {
		key string
		v   types.Object
	}{{"CropBox", p.cropBox}, {"MediaBox", p.mediaBox}, {"Rotate", p.rotate}} {
		if a.v == nil {
			continue
		}
		if cv := c.copy(a.v); cv != nil {
			out[a.key] = cv
		}
	}
	return out, nil
}

// copyAnnots copies a page's annotations. Links to pages outside the part
// are left out: their destination would be null, which readers report as a
// broken destination. Widgets are cut loose from the source's form
// (annotForPart) and listed for the part's own (formEntry).
func (c *docCopier) copyAnnots(v types.Object) types.Array {
	arr, err := c.src.DereferenceArray(v)
	if err != nil {
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
		d, err := c.src.DereferenceDict(ir)
		if err != nil || d == nil || c.linksOutside(d) {
			continue
		}
		n := ir.ObjectNumber.Value()
		m, done := c.done[n]
		if !done {
			m = c.alloc()
			c.done[n] = m
			c.dst.Table[m].Object = c.copyDict(c.annotForPart(d))
		}
		if isSubtype(d, "Widget") && !c.widgetSeen[m] {
			c.widgetSeen[m] = true
			c.widgets = append(c.widgets, newRef(m))
		}
		out = append(out, newRef(m))
	}
	return out
}

// linksOutside reports whether annotation d is a link whose explicit
// destination (/Dest, or /D of a /GoTo action) is a page outside the part.
// Named destinations are kept: they need the catalog's name tree, which a
// part lacks, but readers resolve them only when the link is followed.
func (c *docCopier) linksOutside(d types.Dict) bool {
	if st := d.Subtype(); st == nil || *st != "Link" {
		return false
	}
	dest, ok := d["Dest"]
	if !ok {
		a, err := c.src.DereferenceDict(d["A"])
		if err != nil || a == nil {
			return false
		}
		if s := a.NameEntry("S"); s == nil || *s != "GoTo" {
			return false
		}
		dest = a["D"]
	}
	o, err := c.src.Dereference(dest)
	if err != nil {
		return false
	}
	if dd, ok := o.(types.Dict); ok { // a destination dictionary: << /D [...] >>
		if o, err = c.src.Dereference(dd["D"]); err != nil {
			return false
		}
	}
	arr, ok := o.(types.Array)
	if !ok || len(arr) == 0 {
		return false
	}
	ir, ok := arr[0].(types.IndirectRef)
	if !ok {
		return false
	}
	_, inside := c.pageDest[ir.ObjectNumber.Value()]
	return !inside
}

// annotForPart returns d, or for a widget with a /Parent, a copy of it
// without /Parent and with the field attributes it inherited merged in: a
// field-widget of its own. The parent would lead to the form's field tree and
// through it to the widgets of every other page, and a widget left without
// its field type makes poppler complain. The source is never modified.
func (c *docCopier) annotForPart(d types.Dict) types.Dict {
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
			if seen[ir.ObjectNumber.Value()] {
				break
			}
			seen[ir.ObjectNumber.Value()] = true
		}
		field, err := c.src.DereferenceDict(parent)
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

// hasRef reports whether o contains an indirect reference.
func hasRef(o types.Object) bool {
	switch o := o.(type) {
	case types.IndirectRef:
		return true
	case types.Dict:
		for _, v := range o {
			if hasRef(v) {
				return true
			}
		}
	case types.StreamDict:
		return hasRef(o.Dict)
	case types.Array:
		for _, v := range o {
			if hasRef(v) {
				return true
			}
		}
	}
	return false
}

// catalogEntries copies into the part's catalog the source catalog's entries
// that change what its pages show or how they are read: /OCProperties
// decides which optional content is visible (without it readers show
// content the source hides), /Lang the language of the text, and /AcroForm
// (formEntry) where the part has widgets.
func (c *docCopier) catalogEntries(root types.Dict) error {
	if c.src.Root == nil {
		return nil
	}
	cat, err := c.src.DereferenceDict(*c.src.Root)
	if err != nil || cat == nil {
		return err
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
	return c.drain()
}

// formEntry returns the part's interactive form: the part's widgets, each a
// field of its own (annotForPart merged the field attributes into them), and
// the source form's defaults. Readers that regenerate a field's appearance
// (/NeedAppearances, or no /AP) take its font from the default resources
// /DR; without them poppler falls back to a font lacking the field's
// characters and loses its text.
func (c *docCopier) formEntry(acroForm types.Object) types.Dict {
	if len(c.widgets) == 0 {
		return nil
	}
	src, err := c.src.DereferenceDict(acroForm)
	if err != nil || src == nil {
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
// pdfcpu sets /Producer and the dates itself.
func (c *docCopier) info() types.Dict {
	if c.src.Info == nil {
		return nil
	}
	src, err := c.src.DereferenceDict(*c.src.Info)
	if err != nil || src == nil {
		return nil
	}
	out := types.NewDict()
	for _, k := range []string{"Author", "Creator", "Keywords", "Subject", "Title"} {
		v, err := c.src.Dereference(src[k])
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
