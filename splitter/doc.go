// Package splitter is the only importer of pdfcpu. It counts the pages of a
// PDF and extracts page ranges as standalone PDFs. Parsing costs memory of the
// order of the file size, so the daemon runs it in worker processes (see
// Pool); Doc is what runs inside one.
package splitter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

var (
	// ErrNotPDF: the source is not a PDF at all (no header, garbage).
	ErrNotPDF = errors.New("not a PDF")
	// ErrEncrypted: the PDF needs a user password to be read.
	ErrEncrypted = errors.New("PDF is encrypted with a user password")
	// ErrPageRange: from/thru outside 1..PageCount or reversed.
	ErrPageRange = errors.New("page range out of bounds")
)

// disableConfigDir keeps pdfcpu from creating (or, when it cannot, panicking
// over) a configuration directory under the user's home. It sets a pdfcpu
// package variable, so once per process is enough.
var disableConfigDir sync.Once

// maxTreeDepth bounds the page tree walk: real trees are a few levels deep,
// and a cycle or a hostile file must not exhaust the stack.
const maxTreeDepth = 256

// Doc is one parsed PDF held in memory: pdfcpu's object table plus the page
// list, walked once, so that every Extract is proportional to the pages it
// copies, not to the document.
//
// Extract never modifies the parsed document (it copies what it needs into a
// fresh pdfcpu context), so any number of sequential Extract calls see the
// same source. A Doc is not safe for concurrent use, though: pdfcpu resolves
// objects held in object streams lazily and caches them in its table on first
// use.
type Doc struct {
	xref  *model.XRefTable
	pages []docPage
	// pageAt maps the object number of every page to its first index in pages;
	// references to pages outside an extracted range become null.
	pageAt map[int]int
	// nodes holds the object numbers of the inner page tree nodes and the
	// catalog: a part has its own, so references to these become null.
	nodes map[int]bool
}

// docPage is one leaf of the page tree with the attributes it inherits resolved.
type docPage struct {
	obj  int        // object number of the page dictionary
	dict types.Dict // the page dictionary itself, as parsed
	// The inheritable attributes in effect (ISO 32000-1, 7.7.3.4), still
	// unresolved (they may be references); nil when absent all the way up.
	resources, mediaBox, cropBox, rotate types.Object
}

// Open parses a whole PDF. It reads all of r (pdfcpu loads every object, so
// memory is of the order of the file's size) and does not use r afterwards.
// A PDF that needs a user password fails with ErrEncrypted; one with only an
// owner password opens, its parts unencrypted.
func Open(ctx context.Context, r io.ReadSeeker) (d *Doc, err error) {
	disableConfigDir.Do(api.DisableConfigDir)
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, pdfcpuPanic("parse PDF", r)
		}
	}()

	if err := checkEnds(r); err != nil {
		return nil, err
	}
	conf := model.NewDefaultConfiguration()
	// Real-world files break the letter of the spec in countless harmless
	// ways; parts are judged by what readers make of them, not by pdfcpu's
	// validator.
	conf.ValidationMode = model.ValidationRelaxed
	liftSizeLimits(&conf.Limits)
	pctx, err := pdfcpu.ReadWithContext(ctx, r, conf)
	if err != nil {
		if errors.Is(err, pdfcpu.ErrWrongPassword) {
			return nil, fmt.Errorf("splitter: %w: %v", ErrEncrypted, err)
		}
		return nil, fmt.Errorf("splitter: parse PDF: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d = &Doc{xref: pctx.XRefTable, pageAt: map[int]int{}, nodes: map[int]bool{}}
	if err := d.walkPages(); err != nil {
		return nil, fmt.Errorf("splitter: page tree: %w", err)
	}
	return d, nil
}

// checkEnds tells a PDF from anything else the way readers do, by "%PDF-"
// within the first 1024 bytes, and a complete file from a truncated one the
// way Acrobat does, by "%%EOF" within the last 1024. pdfcpu rebuilds a
// missing cross-reference table by scanning for objects, which makes a file
// cut short look whole when it has merely lost its last objects or its last
// incremental update; a part must not silently show an older or partial
// document. It leaves r at its start.
func checkEnds(r io.ReadSeeker) error {
	const window = 1024
	head, err := readSpan(r, 0, window)
	if err != nil {
		return err
	}
	if !bytes.Contains(head, []byte("%PDF-")) {
		return fmt.Errorf("splitter: %w: no %%PDF- header", ErrNotPDF)
	}
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("splitter: %w", err)
	}
	tail, err := readSpan(r, max(0, size-window), window)
	if err != nil {
		return err
	}
	if !bytes.Contains(tail, []byte("%%EOF")) {
		return fmt.Errorf("splitter: truncated PDF: no %%%%EOF in the last %d bytes", window)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("splitter: %w", err)
	}
	return nil
}

// readSpan reads up to n bytes at offset off; fewer at the end of r.
func readSpan(r io.ReadSeeker, off int64, n int) ([]byte, error) {
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("splitter: %w", err)
	}
	b := make([]byte, n)
	k, err := io.ReadFull(r, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("splitter: read: %w", err)
	}
	return b[:k], nil
}

// pdfcpuPanic describes a panic inside pdfcpu. Malformed input reaches code
// paths there that index or assert without checking; recovering makes one bad
// file cost one failed call, not the process.
func pdfcpuPanic(what string, r any) error {
	return fmt.Errorf("splitter: %s: pdfcpu panicked: %v", what, r)
}

// docInherited is the state of the inheritable attributes down a page tree path.
type docInherited struct {
	resources, mediaBox, cropBox, rotate types.Object
}

func (in docInherited) with(d types.Dict) docInherited {
	if v, ok := d["Resources"]; ok && v != nil {
		in.resources = v
	}
	if v, ok := d["MediaBox"]; ok && v != nil {
		in.mediaBox = v
	}
	if v, ok := d["CropBox"]; ok && v != nil {
		in.cropBox = v
	}
	if v, ok := d["Rotate"]; ok && v != nil {
		in.rotate = v
	}
	return in
}

// walkPages lists the leaves of the page tree in order. Each inner node may
// be visited once: a node reached twice is a cycle or a malicious DAG.
func (d *Doc) walkPages() error {
	if d.xref.Root != nil {
		d.nodes[d.xref.Root.ObjectNumber.Value()] = true
	}
	rootRef, err := d.xref.Pages()
	if err != nil {
		return err
	}
	if rootRef == nil {
		return errors.New("no page tree")
	}
	return d.walk(*rootRef, docInherited{}, 0)
}

func (d *Doc) walk(newRef types.IndirectRef, in docInherited, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("deeper than %d levels", maxTreeDepth)
	}
	n := newRef.ObjectNumber.Value()
	dict, err := d.xref.DereferenceDict(newRef)
	if err != nil {
		return fmt.Errorf("object %d: %w", n, err)
	}
	if dict == nil {
		return fmt.Errorf("object %d: missing", n)
	}
	in = in.with(dict)
	kids, hasKids := dict["Kids"]
	// As poppler decides: a page says so or has no kids, whatever its /Type.
	if t := dict.Type(); (t != nil && *t == "Page") || !hasKids {
		if _, seen := d.pageAt[n]; !seen {
			d.pageAt[n] = len(d.pages)
		}
		d.pages = append(d.pages, docPage{obj: n, dict: dict,
			resources: in.resources, mediaBox: in.mediaBox, cropBox: in.cropBox, rotate: in.rotate})
		return nil
	}
	if d.nodes[n] {
		return fmt.Errorf("object %d: page tree node reached twice", n)
	}
	d.nodes[n] = true
	arr, err := d.xref.DereferenceArray(kids)
	if err != nil {
		return fmt.Errorf("object %d: /Kids: %w", n, err)
	}
	for _, kid := range arr {
		kidRef, ok := kid.(types.IndirectRef)
		if !ok {
			// Kids must be references; a null or a stray value is skipped,
			// as readers do.
			continue
		}
		if err := d.walk(kidRef, in, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// PageCount is the number of pages: the leaves of the page tree, which is
// what Extract can reach, rather than the root's /Count, which may lie.
func (d *Doc) PageCount() int { return len(d.pages) }

// Extract writes pages from..thru (1-based, inclusive) as a standalone PDF.
//
// The part holds copies of the pages with their inherited attributes made
// explicit, every object they reach (renumbered from 1, all with generation
// 0, which is what pdfcpu's writer assumes), and only the resources their
// content streams name. Links to pages outside the range are left out and
// any other reference to such a page becomes null, so that nothing drags the
// rest of the document along. The part is written unencrypted with a classic
// cross-reference table. Two extractions of the same range hold the same
// objects and have the same length; they differ in the dates and /ID pdfcpu
// derives from the clock and may differ in the order of objects, which its
// writer takes from map iteration.
func (d *Doc) Extract(from, thru int, w io.Writer) (err error) {
	if from < 1 || thru < from || thru > len(d.pages) {
		return fmt.Errorf("splitter: %w: pages %d-%d of %d", ErrPageRange, from, thru, len(d.pages))
	}
	defer func() {
		if r := recover(); r != nil {
			err = pdfcpuPanic(fmt.Sprintf("extract pages %d-%d", from, thru), r)
		}
	}()

	dst, err := d.extract(from, thru)
	if err != nil {
		return fmt.Errorf("splitter: extract pages %d-%d: %w", from, thru, err)
	}
	if err := api.WriteContext(dst, w); err != nil {
		return fmt.Errorf("splitter: write pages %d-%d: %w", from, thru, err)
	}
	return nil
}

// liftSizeLimits removes pdfcpu's caps on stream sizes (512 MB by default),
// which reject legitimate large scans. The worker process runs under a
// memory limit, which is the guard that matters; the caps on counts and
// recursion stay.
func liftSizeLimits(l *model.ResourceLimits) {
	const huge = 1 << 40
	l.MaxStreamBytes = huge
	l.MaxDecodeBytes = huge
	l.MaxImageBytes = huge
}

// extract builds a new pdfcpu context holding pages from..thru.
func (d *Doc) extract(from, thru int) (*model.Context, error) {
	conf := model.NewDefaultConfiguration()
	conf.ValidationMode = model.ValidationRelaxed
	liftSizeLimits(&conf.Limits)
	// Object and cross-reference streams are compressed, so their size would
	// depend on the order pdfcpu's writer visits objects in, which follows Go
	// map iteration; a table keeps the size of a part reproducible.
	conf.WriteObjectStream = false
	conf.WriteXRefStream = false
	dst, err := pdfcpu.CreateContextWithXRefTable(conf, types.PaperSize["A4"])
	if err != nil {
		return nil, err
	}
	pagesRef, err := dst.Pages()
	if err != nil {
		return nil, err
	}
	pagesDict, err := dst.DereferenceDict(*pagesRef)
	if err != nil {
		return nil, err
	}
	// Every page gets the media box it had; one that had none (a broken
	// source) must not silently become A4.
	delete(pagesDict, "MediaBox")

	c := newDocCopier(d, dst.XRefTable)
	sel := d.pages[from-1 : thru]
	kids := make(types.Array, len(sel))
	destObj := make([]int, len(sel))
	// Number the pages first, so that links between pages of the range
	// resolve to the copies instead of being dropped.
	for i, p := range sel {
		destObj[i] = c.alloc()
		kids[i] = *types.NewIndirectRef(destObj[i], 0)
		if _, dup := c.pageDest[p.obj]; !dup {
			c.pageDest[p.obj] = destObj[i]
		}
	}
	for i, p := range sel {
		pd, err := c.copyPage(p, *pagesRef)
		if err != nil {
			return nil, fmt.Errorf("page %d: %w", from+i, err)
		}
		dst.Table[destObj[i]].Object = pd
	}
	if err := c.drain(); err != nil {
		return nil, err
	}
	pagesDict["Kids"] = kids
	pagesDict["Count"] = types.Integer(len(sel))
	dst.PageCount = len(sel)
	root, err := dst.Catalog()
	if err != nil {
		return nil, err
	}
	if err := c.catalogEntries(root); err != nil {
		return nil, err
	}
	if info := c.info(); info != nil {
		newRef, err := dst.IndRefForNewObject(info)
		if err != nil {
			return nil, err
		}
		dst.Info = newRef
	}
	return dst, nil
}
