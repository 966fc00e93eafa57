// Package pdfdoc counts the pages of a PDF and extracts page ranges as
// standalone PDFs, reading lazily: memory and bytes read follow the pages
// asked for, not the file. It is the only importer of pdfcpu.
//
// The reader is our own (pdfcpu has no lazy mode: its reader loads every
// object and stream, and XRefTable.Dereference only returns what was
// preloaded). Open reads the trailer, the cross-reference data, the catalog
// and the whole page tree (tree.go); Extract reads the objects its pages
// reach, decoding only object streams and the content streams it scans for
// resource names, and copies stream data raw (still encoded) from the
// source to the part. pdfcpu serves at object level: parsing one object
// (model.ParseObjectContext), its types and their serialization
// (PDFString), and its filters (Flate with predictors, for object and
// cross-reference streams and for scanning content). None of these reads
// pdfcpu's configuration, so nothing here touches a configuration directory
// (and the package does not import pdfcpu's api, whose weight a worker
// would carry in its resident set for nothing).
package pdfdoc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

var (
	// ErrNotPDF: the source is not a PDF at all (no header, garbage).
	ErrNotPDF = errors.New("not a PDF")
	// ErrEncrypted: the PDF needs a user password to be read.
	ErrEncrypted = errors.New("PDF is encrypted with a user password")
	// ErrPageRange: from/thru outside 1..PageCount or reversed.
	ErrPageRange = errors.New("page range out of bounds")
	// ErrTooLarge: a budget of Options was exceeded (objects, bytes, nesting
	// depth): a hostile or absurd file, or a part bigger than allowed.
	ErrTooLarge = errors.New("PDF exceeds a limit")
)

// Options are the budgets and cache sizes of a Doc; zero values take the
// defaults in parentheses.
type Options struct {
	// MaxObjects bounds object numbers, hence the cross-reference table's
	// memory, 8 bytes an object (4,194,304).
	MaxObjects int
	// MaxObjectBytes bounds the text of one object (4 MiB: a /Kids array of
	// 300,000 pages).
	MaxObjectBytes int
	// MaxDepth bounds the nesting of arrays and dictionaries (100).
	MaxDepth int
	// MaxDecodeBytes bounds the decoded size of one object or
	// cross-reference stream (32 MiB: 4 million cross-reference entries).
	MaxDecodeBytes int64
	// MaxDecodeTotal bounds the decoded bytes of all the object and
	// cross-reference streams one Open or Extract decodes, decoding again
	// after a cache eviction included (16 times MaxDecodeBytes: a second or
	// two of inflating). Without it, a few KB of Flate per stream make a
	// small file cost minutes: hybrid sections that all name one big
	// /XRefStm, or objects that alternate between two big object streams
	// (the cache keeps one).
	MaxDecodeTotal int64
	// MaxReads bounds the objects parsed by one Open or Extract (4,194,304).
	MaxReads int
	// MaxPages bounds the kids of the page tree, pages and inner nodes
	// together, a page listed twice counting twice (1,048,576: about 40 MiB
	// while they are walked, 12 MiB of pages kept).
	MaxPages int
	// MaxPartObjects bounds the objects one Extract writes (1,048,576).
	MaxPartObjects int
	// MaxPartBytes bounds the bytes one Extract writes (twice the source
	// plus 64 MiB: a part's objects are the source's, copied once, so only
	// a hostile file comes near).
	MaxPartBytes int64
	// ScanBytes bounds the decoded bytes of one content stream scanned for
	// the resource names it uses, and four times ScanBytes those of all the
	// streams scanned for one page; a page over either keeps all its
	// resources (4 MiB).
	ScanBytes int64
	// CacheObjects and CacheBytes bound the cache of parsed objects (4096
	// objects, 4 MiB of their source text).
	CacheObjects int
	CacheBytes   int64
	// BlockCacheBytes is the cache of source bytes that objects are parsed
	// from, in 4 KiB blocks (256 KiB).
	BlockCacheBytes int
	// ObjStmCacheBytes bounds the decoded object streams kept (8 MiB; the
	// most recent one is kept whatever its size).
	ObjStmCacheBytes int64
}

func (o Options) withDefaults(size int64) Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxObjects, 1<<22)
	o.MaxObjects = min(o.MaxObjects, math.MaxInt32) // the page tree keeps object numbers in 32 bits
	def(&o.MaxObjectBytes, 4<<20)
	def(&o.MaxDepth, 100)
	def64(&o.MaxDecodeBytes, 32<<20)
	def64(&o.MaxDecodeTotal, 16*o.MaxDecodeBytes)
	def(&o.MaxReads, 1<<22)
	def(&o.MaxPages, 1<<20)
	def(&o.MaxPartObjects, 1<<20)
	def64(&o.MaxPartBytes, 2*size+64<<20)
	def64(&o.ScanBytes, 4<<20)
	def(&o.CacheObjects, 4096)
	def64(&o.CacheBytes, 4<<20)
	def(&o.BlockCacheBytes, 256<<10)
	def64(&o.ObjStmCacheBytes, 8<<20)
	return o
}

// reader is the lazy object reader over the source.
type reader struct {
	src     *source
	opts    Options
	x       xrefTable
	trailer types.Dict
	crypt   *decrypter
	cache   *lru[int, types.Object]
	objStms *lru[int, *objStm]
	rebuilt bool // the cross-reference data was rebuilt by a scan
	// loaded are the objects read since the cross-reference data was
	// loaded or rebuilt; conflict, if not nil, says that a rebuild found
	// another body for one of them, and fails every read after it.
	loaded   objSet
	conflict error
	// loadingXref: objects may not be looked up by number (a stream's
	// indirect /Length) while the table is being built.
	loadingXref bool
	hybridFree  []int
	reads       int   // objects parsed in the current call
	decoded     int64 // bytes of object and cross-reference streams decoded in the current call
}

// Doc is an open PDF: its cross-reference data, its pages (the whole page
// tree, walked at Open) and small caches. A Doc is used by one goroutine at
// a time.
type Doc struct {
	r       *reader
	version string
	catalog int         // object number of the catalog
	nodes   []treeNode  // the page tree's inner nodes, the root first
	attrs   []inherited // the attributes nodes pass down (treeNode.attrs)
	pages   []pageRef   // every page, in order
	tree    objSet      // the catalog, the inner nodes and the pages
	inner   objSet      // the inner nodes
	id      []byte      // the source's permanent /ID, for the parts'
}

// Open reads what a page count needs: the trailer and cross-reference data,
// the catalog and the whole page tree (every kid of every node). A PDF
// that needs a user password fails with ErrEncrypted; one with only an
// owner password opens, its parts unencrypted. r is used until the Doc is
// dropped; its failures come back as *SourceError.
func Open(ctx context.Context, r io.ReaderAt, size int64, o Options) (d *Doc, err error) {
	defer func() {
		if p := recover(); p != nil {
			d, err = nil, fmt.Errorf("pdfdoc: open: parser panicked: %v", p)
		}
	}()
	o = o.withDefaults(size)
	rd := &reader{
		src:     newSource(r, size, o.BlockCacheBytes),
		opts:    o,
		x:       xrefTable{max: o.MaxObjects},
		cache:   newLRU[int, types.Object](o.CacheObjects, o.CacheBytes),
		objStms: newLRU[int, *objStm](64, o.ObjStmCacheBytes),
	}
	d = &Doc{r: rd}
	if err := d.open(ctx); err != nil {
		return nil, fmt.Errorf("pdfdoc: %w", err)
	}
	return d, nil
}

func (d *Doc) open(ctx context.Context) error {
	r := d.r
	version, err := r.checkEnds()
	if err != nil {
		return err
	}
	d.version = version
	if err := r.loadXref(ctx); err != nil {
		return err
	}
	if ids, ok := r.trailer["ID"].(types.Array); ok && len(ids) > 0 {
		d.id, _ = stringBytes(ids[0])
	}
	if enc, ok := r.trailer["Encrypt"]; ok && enc != nil {
		ed, err := r.resolveDict(ctx, enc)
		if err != nil {
			return fmt.Errorf("encryption dictionary: %w", err)
		}
		if ed == nil {
			return fmt.Errorf("%w: encryption dictionary missing", ErrEncrypted)
		}
		if r.crypt, err = newDecrypter(ed, d.id); err != nil {
			return err
		}
		if ir, ok := enc.(types.IndirectRef); ok {
			r.crypt.encryptObj = ir.ObjectNumber.Value()
		}
		// Objects read so far were read before decryption was known.
		r.cache = newLRU[int, types.Object](r.opts.CacheObjects, r.opts.CacheBytes)
		r.objStms = newLRU[int, *objStm](64, r.opts.ObjStmCacheBytes)
	}
	return d.readTree(ctx)
}

// checkEnds tells a PDF from anything else the way readers do, by "%PDF-"
// within the first 1024 bytes, and a complete file from a truncated one the
// way Acrobat does, by "%%EOF" within the last 1024: a file cut short may
// look whole once its cross-reference data is rebuilt, having merely lost
// its last objects or its last incremental update, and a part must not
// silently show an older or partial document. It returns the header's
// version.
func (r *reader) checkEnds() (string, error) {
	head, err := r.src.read(0, 1024)
	if err != nil {
		return "", err
	}
	k := bytes.Index(head, []byte("%PDF-"))
	if k < 0 {
		return "", fmt.Errorf("%w: no %%PDF- header", ErrNotPDF)
	}
	version := "1.4"
	if v := head[k+5:]; len(v) >= 3 && isDigit(v[0]) && v[1] == '.' && isDigit(v[2]) {
		version = string(v[:3])
	}
	tail, err := r.src.read(max(0, r.src.size-tailWindow), tailWindow)
	if err != nil {
		return "", err
	}
	if !bytes.Contains(tail, []byte("%%EOF")) {
		return "", fmt.Errorf("truncated PDF: no %%%%EOF in the last %d bytes", tailWindow)
	}
	return version, nil
}

// PageCount is the number of pages.
func (d *Doc) PageCount() int { return len(d.pages) }

// Extract writes pages from..thru (1-based, inclusive) to w as a standalone
// PDF, streaming: the part's size never enters memory.
//
// The part holds copies of the pages with their inherited attributes made
// explicit, every object they reach (renumbered from 1, all with generation
// 0), and only the resources their content streams name. Links to pages
// outside the range are left out and any other reference to such a page, to
// the page tree or to the catalog becomes null, so that nothing drags the
// rest of the document along. Stream data is copied as stored (decrypted,
// still encoded). The part is unencrypted, with a classic cross-reference
// table; the same range of the same source gives the same bytes.
//
// Errors: ErrPageRange; *SourceError when the source could not be read;
// *WriteError when w failed; ErrTooLarge when a budget ran out; anything
// else means the PDF is broken. Bytes may have been written to w before
// an error.
func (d *Doc) Extract(ctx context.Context, from, thru int, w io.Writer) (err error) {
	if from < 1 || thru < from || thru > len(d.pages) {
		return fmt.Errorf("pdfdoc: %w: pages %d-%d of %d", ErrPageRange, from, thru, len(d.pages))
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pdfdoc: extract pages %d-%d: parser panicked: %v", from, thru, p)
		}
	}()
	d.r.reads, d.r.decoded = 0, 0
	if err := d.extract(ctx, from, thru, w); err != nil {
		return fmt.Errorf("pdfdoc: extract pages %d-%d: %w", from, thru, err)
	}
	return nil
}
