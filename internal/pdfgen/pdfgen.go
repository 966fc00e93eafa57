// Package pdfgen writes small, valid, dependency-free PDF files for tests and
// the demo: classic PDF 1.4 with one Helvetica font shared by all pages, one
// uncompressed text content stream per page, a cross-reference table with
// exact byte offsets and, on request, a large padding image to make big files
// cheaply. Further options reproduce structures that real producers write and
// PDF tools must get right: generation numbers above 0, a resource dictionary
// shared by every page, attributes inherited through a nested page tree, link
// annotations between pages and an incremental update. Output is
// deterministic: the same Options give the same bytes.
package pdfgen

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"strings"
	"unicode/utf8"
)

// Options describes the PDF to write.
type Options struct {
	Pages int    // number of pages, >= 1
	Title string // the Info dictionary's /Title; "Untitled" when empty

	// PageText returns the text of page i (1-based). Lines are separated by
	// "\n"; they are not wrapped, so keep them under about 90 characters and
	// a page under about 50 lines for every character to land on the page.
	// Characters outside WinAnsiEncoding become '?'.
	// Nil means DefaultPageText(Title, i, Pages).
	PageText func(i int) string

	// PadBytes, if > 0, adds an uncompressed image XObject of about this
	// many pseudo-random bytes (rounded up to a multiple of its width, at
	// most 1023 more) to page 1's resources (to every page's with
	// SharedResources or Inherit). It is not drawn. It is written streaming,
	// so files of hundreds of MB cost no memory.
	PadBytes int64

	// Generation, if > 0, is the generation number of every object: in its
	// "N G obj" header, in every reference to it and in the cross-reference
	// table, as in files whose producer reused freed object numbers. At most
	// 65534.
	Generation int

	// SharedResources makes every page's /Resources a reference to one
	// resource dictionary object (the font and, with PadBytes, the pad)
	// instead of a direct dictionary per page.
	SharedResources bool

	// Inherit leaves /Resources and /MediaBox off the pages and puts them,
	// with the /CropBox InheritedCropBox, on the root of the page tree for
	// every page to inherit.
	Inherit bool

	// Fanout, if > 1, builds a balanced page tree whose nodes have at most
	// Fanout kids instead of a single /Pages node with every page as a kid.
	Fanout int

	// Links gives every page a link annotation whose destination is the next
	// page (the last page's is the first page).
	Links bool

	// PageImageBytes, if > 0, gives every page an image XObject of its own
	// of about this many pseudo-random (incompressible) bytes, different on
	// every page, drawn in the page's lower right corner and written right
	// after the page's content stream. Files of a few thousand such pages
	// are what a page-range extractor must not read whole.
	PageImageBytes int64

	// PagesLast writes the page dictionaries (and the inner nodes of the
	// page tree) after every content stream and image instead of each
	// page's dictionary just before its content, as some producers do.
	PagesLast bool

	// Revise, if not nil, is asked about every page; where it returns ok, an
	// incremental update appended to the file (the new objects, a
	// cross-reference section and a trailer with /Prev) replaces that page's
	// content stream with one showing text. The superseded streams stay in
	// the file. When no page is revised no update is written.
	Revise func(i int) (text string, ok bool)
}

// InheritedCropBox is the /CropBox that Options.Inherit puts on the root of
// the page tree: half an inch inside the US Letter media box, clear of the
// text, so that a reader which loses the inherited box shows a different page
// size.
func InheritedCropBox() [4]int { return [4]int{36, 36, pageW - 36, pageH - 36} }

// DefaultPageText is the text of page i when Options.PageText is nil: a
// first line "<title> page <i> of <pages>" and a few lines of filler that
// differ from page to page.
func DefaultPageText(title string, i, pages int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s page %d of %d\n", title, i, pages)
	b.WriteString("\n")
	for j := 0; j < 4; j++ {
		fmt.Fprintf(&b, "Paragraph %d.%d: %s\n", i, j+1, filler[(i+j)%len(filler)])
	}
	return b.String()
}

// ExpectedText returns, for the PDF that o describes, the text that page i
// shows: its revised text where o.Revise gives one (the update supersedes the
// original), else o.PageText's or the default text. Tests compare what
// readers extract with it.
func ExpectedText(o Options) func(i int) string {
	return func(i int) string {
		if o.Revise != nil {
			if text, ok := o.Revise(i); ok {
				return text
			}
		}
		if o.PageText != nil {
			return o.PageText(i)
		}
		title := o.Title
		if title == "" {
			title = "Untitled"
		}
		return DefaultPageText(title, i, o.Pages)
	}
}

var filler = []string{
	"The quick brown fox jumps over the lazy dog.",
	"Pack my box with five dozen liquor jugs.",
	"Sphinx of black quartz, judge my vow.",
	"How vexingly quick daft zebras jump!",
	"The five boxing wizards jump quickly.",
	"Jackdaws love my big sphinx of quartz.",
	"Bright vixens jump; dozy fowl quack.",
}

// Fixed object numbers; pages and their contents follow firstPageObj, then
// the shared resource dictionary (SharedResources) and the inner nodes of the
// page tree (Fanout).
const (
	catalogObj   = 1
	pagesObj     = 2
	fontObj      = 3 // the Helvetica font
	fontDictObj  = 4 // << /F1 3 0 R >>, shared by every page's /Resources
	infoObj      = 5
	padObj       = 6 // the padding image, when PadBytes > 0
	firstPageObj = 7 // page i is firstPageObj+2(i-1), its content stream the next number
)

// Page geometry (US Letter) and text layout.
const (
	pageW, pageH = 612, 792
	fontSize     = 12
	leading      = 14
	marginX      = 72
	topY         = 720
	padWidth     = 1024 // width of the padding image in pixels (bytes per row)
)

// Write writes the PDF described by o to w and returns the number of bytes
// written. Memory use does not depend on PadBytes.
func Write(w io.Writer, o Options) (int64, error) {
	if o.Pages < 1 {
		return 0, fmt.Errorf("pdfgen: Pages must be >= 1, got %d", o.Pages)
	}
	if o.PadBytes < 0 {
		return 0, fmt.Errorf("pdfgen: PadBytes must be >= 0, got %d", o.PadBytes)
	}
	if o.Generation < 0 || o.Generation >= 65535 {
		return 0, fmt.Errorf("pdfgen: Generation must be in 0..65534, got %d", o.Generation)
	}
	if o.Fanout < 0 {
		return 0, fmt.Errorf("pdfgen: Fanout must be >= 0, got %d", o.Fanout)
	}
	if o.PageImageBytes < 0 {
		return 0, fmt.Errorf("pdfgen: PageImageBytes must be >= 0, got %d", o.PageImageBytes)
	}
	if o.Title == "" {
		o.Title = "Untitled"
	}
	pw := &pdfWriter{cw: &countWriter{w: w}}
	pw.bw = bufio.NewWriterSize(pw.cw, 64<<10)
	pw.write(o)
	if pw.err == nil {
		pw.err = pw.bw.Flush()
	}
	return pw.cw.n, pw.err
}

// Bytes returns the PDF described by o. It panics if o is invalid (Pages < 1
// or PadBytes < 0); it is meant for tests.
func Bytes(o Options) []byte {
	var buf bytes.Buffer
	if _, err := Write(&buf, o); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type pdfWriter struct {
	cw      *countWriter
	bw      *bufio.Writer
	err     error
	gen     int       // generation number of every object
	offsets []int64   // offsets[n] is the byte offset of object n; 0 = free
	id      hash.Hash // of the options and every page's content: the trailer's /ID
	imgBuf  []byte    // the block that images are written from
}

// pos is the current byte offset in the output.
func (p *pdfWriter) pos() int64 { return p.cw.n + int64(p.bw.Buffered()) }

func (p *pdfWriter) printf(format string, args ...any) {
	if p.err != nil {
		return
	}
	_, p.err = fmt.Fprintf(p.bw, format, args...)
}

func (p *pdfWriter) writeBytes(b []byte) {
	if p.err != nil {
		return
	}
	_, p.err = p.bw.Write(b)
}

// ref is a reference to object n; it carries the generation number, which
// must match the object's header and xref entry.
func (p *pdfWriter) ref(n int) string { return fmt.Sprintf("%d %d R", n, p.gen) }

// beginObj records the offset of object n and writes its header.
func (p *pdfWriter) beginObj(n int) {
	p.offsets[n] = p.pos()
	p.printf("%d %d obj\n", n, p.gen)
}

func (p *pdfWriter) endObj() { p.printf("endobj\n") }

// obj writes a whole non-stream object.
func (p *pdfWriter) obj(n int, body string) {
	p.beginObj(n)
	p.printf("%s\n", body)
	p.endObj()
}

// streamObj writes a whole stream object with an uncompressed body.
func (p *pdfWriter) streamObj(n int, body []byte) {
	p.beginObj(n)
	p.printf("<< /Length %d >>\nstream\n", len(body))
	p.writeBytes(body)
	p.printf("\nendstream\n")
	p.endObj()
}

func pageObj(i int) int    { return firstPageObj + 2*(i-1) }
func contentObj(i int) int { return pageObj(i) + 1 }

// treeNode is an inner node of the page tree below the root (Fanout).
type treeNode struct {
	obj, parent int
	kids        []int // object numbers
	count       int   // pages below
}

// layout is where every object goes.
type layout struct {
	size     int // objects 0..size-1
	resObj   int // the shared resource dictionary; 0 = none
	imgBase  int // page i's image is imgBase+i-1 (PageImageBytes); 0 = none
	nodes    []treeNode
	rootKids []int       // object numbers of the root's kids
	parent   map[int]int // of every page and inner node
	count    map[int]int // pages below every inner node (pages: absent)
}

func newLayout(o Options) layout {
	l := layout{size: firstPageObj + 2*o.Pages, parent: map[int]int{}, count: map[int]int{}}
	if o.SharedResources {
		l.resObj = l.size
		l.size++
	}
	if o.PageImageBytes > 0 {
		l.imgBase = l.size
		l.size += o.Pages
	}
	level := make([]int, o.Pages)
	for i := range level {
		level[i] = pageObj(i + 1)
		l.count[level[i]] = 1
	}
	for o.Fanout > 1 && len(level) > o.Fanout {
		var up []int
		for len(level) > 0 {
			k := min(o.Fanout, len(level))
			n := treeNode{obj: l.size, kids: level[:k]}
			l.size++
			for _, kid := range n.kids {
				l.parent[kid] = n.obj
				n.count += l.count[kid]
			}
			l.count[n.obj] = n.count
			l.nodes = append(l.nodes, n)
			up = append(up, n.obj)
			level = level[k:]
		}
		level = up
	}
	for _, kid := range level {
		l.parent[kid] = pagesObj
	}
	l.rootKids = level
	for i := range l.nodes {
		l.nodes[i].parent = l.parent[l.nodes[i].obj]
	}
	return l
}

// kids writes a /Kids array, ten references a line.
func (p *pdfWriter) kids(objs []int) {
	p.printf("/Kids [")
	for k, n := range objs {
		if k > 0 {
			if k%10 == 0 {
				p.printf("\n")
			} else {
				p.printf(" ")
			}
		}
		p.printf("%s", p.ref(n))
	}
	p.printf("]\n")
}

func (p *pdfWriter) write(o Options) {
	l := newLayout(o)
	p.gen = o.Generation
	p.offsets = make([]int64, l.size)
	p.id = sha256.New()
	fmt.Fprintf(p.id, "%d\x00%s\x00%d", o.Pages, o.Title, o.PadBytes)
	if o.Generation > 0 || o.SharedResources || o.Inherit || o.Fanout > 1 || o.Links {
		fmt.Fprintf(p.id, "\x00%d %t %t %d %t", o.Generation, o.SharedResources, o.Inherit, o.Fanout, o.Links)
	}
	if o.PageImageBytes > 0 || o.PagesLast {
		fmt.Fprintf(p.id, "\x00%d %t", o.PageImageBytes, o.PagesLast)
	}

	// Header; the comment of bytes >= 128 marks the file as binary.
	p.writeBytes([]byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"))

	p.obj(catalogObj, fmt.Sprintf("<< /Type /Catalog /Pages %s >>", p.ref(pagesObj)))

	// Resource dictionaries: one per page, only page 1's with the pad; or,
	// with SharedResources or Inherit, one for every page, with the pad.
	fonts := fmt.Sprintf("<< /Font %s >>", p.ref(fontDictObj))
	withPad := fonts
	if o.PadBytes > 0 {
		withPad = fmt.Sprintf("<< /Font %s /XObject << /Pad %s >> >>", p.ref(fontDictObj), p.ref(padObj))
	}
	shared := withPad // the value of a shared /Resources entry
	if o.SharedResources {
		shared = p.ref(l.resObj)
	}
	pageResources := func(i int) string {
		switch {
		case o.SharedResources:
			return shared
		case l.imgBase > 0 && i == 1 && o.PadBytes > 0:
			return fmt.Sprintf("<< /Font %s /XObject << /Pad %s /Im1 %s >> >>", p.ref(fontDictObj), p.ref(padObj), p.ref(l.imgBase+i-1))
		case l.imgBase > 0:
			return fmt.Sprintf("<< /Font %s /XObject << /Im1 %s >> >>", p.ref(fontDictObj), p.ref(l.imgBase+i-1))
		case i == 1:
			return withPad
		}
		return fonts
	}

	p.beginObj(pagesObj)
	p.printf("<< /Type /Pages /Count %d\n", o.Pages)
	p.kids(l.rootKids)
	if o.Inherit {
		cb := InheritedCropBox()
		p.printf("/Resources %s\n/MediaBox [0 0 %d %d] /CropBox [%d %d %d %d]\n", shared, pageW, pageH, cb[0], cb[1], cb[2], cb[3])
	}
	p.printf(">>\n")
	p.endObj()

	p.obj(fontObj, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	p.obj(fontDictObj, fmt.Sprintf("<< /F1 %s >>", p.ref(fontObj)))
	p.obj(infoObj, fmt.Sprintf("<< /Title %s /Producer (s3docs pdfgen) >>", textString(o.Title)))

	if o.PadBytes > 0 {
		p.writePad(o.PadBytes)
	}

	pageText := o.PageText
	if pageText == nil {
		pageText = func(i int) string { return DefaultPageText(o.Title, i, o.Pages) }
	}
	pageDict := func(i int) {
		var d strings.Builder
		fmt.Fprintf(&d, "<< /Type /Page /Parent %s", p.ref(l.parent[pageObj(i)]))
		if !o.Inherit {
			fmt.Fprintf(&d, " /MediaBox [0 0 %d %d] /Resources %s", pageW, pageH, pageResources(i))
		}
		fmt.Fprintf(&d, " /Contents %s", p.ref(contentObj(i)))
		if o.Links {
			fmt.Fprintf(&d, "\n/Annots [<< /Type /Annot /Subtype /Link /Rect [72 36 288 60] /Border [0 0 0] /Dest [%s /Fit] >>]",
				p.ref(pageObj(i%o.Pages+1)))
		}
		d.WriteString(" >>")
		p.obj(pageObj(i), d.String())
	}
	for i := 1; i <= o.Pages; i++ {
		if !o.PagesLast {
			pageDict(i)
		}
		content := contentStream(pageText(i))
		if l.imgBase > 0 {
			// Drawn, so that a reader keeping only the resources a page
			// uses keeps it.
			content = append(content, "\nq 144 0 0 48 396 36 cm /Im1 Do Q"...)
		}
		p.id.Write(content)
		p.streamObj(contentObj(i), content)
		if l.imgBase > 0 {
			p.image(l.imgBase+i-1, o.PageImageBytes, uint64(i))
		}
	}
	if o.PagesLast {
		for i := 1; i <= o.Pages; i++ {
			pageDict(i)
		}
	}

	if l.resObj > 0 {
		p.obj(l.resObj, withPad)
	}
	for _, n := range l.nodes {
		p.beginObj(n.obj)
		p.printf("<< /Type /Pages /Parent %s /Count %d\n", p.ref(n.parent), n.count)
		p.kids(n.kids)
		p.printf(">>\n")
		p.endObj()
	}

	// Cross-reference table: one 20-byte entry per object.
	xref := p.pos()
	p.printf("xref\n0 %d\n", l.size)
	p.printf("0000000000 65535 f\r\n")
	for n := 1; n < l.size; n++ {
		if p.offsets[n] == 0 { // unused number (no padding object)
			p.printf("0000000000 00000 f\r\n")
			continue
		}
		p.printf("%010d %05d n\r\n", p.offsets[n], p.gen)
	}
	id := p.id.Sum(nil)[:16]
	p.printf("trailer\n<< /Size %d /Root %s /Info %s /ID [<%x> <%x>] >>\n", l.size, p.ref(catalogObj), p.ref(infoObj), id, id)
	p.printf("startxref\n%d\n%%%%EOF\n", xref)

	if o.Revise != nil {
		p.writeUpdate(o, l.size, xref, id)
	}
}

// writeUpdate appends an incremental update that replaces the content stream
// of every page o.Revise asks for. Its cross-reference section lists only
// those objects; /Prev chains it to the original section at prevXref.
func (p *pdfWriter) writeUpdate(o Options, size int, prevXref int64, id []byte) {
	var revised []int
	for i := 1; i <= o.Pages; i++ {
		text, ok := o.Revise(i)
		if !ok {
			continue
		}
		revised = append(revised, i)
		content := contentStream(text)
		p.id.Write(content)
		p.streamObj(contentObj(i), content)
	}
	if len(revised) == 0 {
		return
	}
	xref := p.pos()
	p.printf("xref\n")
	for _, i := range revised {
		p.printf("%d 1\n%010d %05d n\r\n", contentObj(i), p.offsets[contentObj(i)], p.gen)
	}
	// The first /ID element is permanent; the second identifies this revision.
	p.printf("trailer\n<< /Size %d /Root %s /Info %s /ID [<%x> <%x>] /Prev %d >>\n",
		size, p.ref(catalogObj), p.ref(infoObj), id, p.id.Sum(nil)[:16], prevXref)
	p.printf("startxref\n%d\n%%%%EOF\n", xref)
}

// writePad writes the padding image: an 8-bit gray image padWidth wide (less
// for tiny sizes) whose samples are pseudo-random, streamed in blocks.
func (p *pdfWriter) writePad(n int64) { p.image(padObj, n, 0) }

// image writes image object obj of about n pseudo-random bytes; seed makes
// the samples of different images differ.
func (p *pdfWriter) image(obj int, n int64, seed uint64) {
	w := int64(padWidth)
	if n < w {
		w = n
	}
	h := (n + w - 1) / w
	length := w * h
	p.beginObj(obj)
	p.printf("<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Length %d >>\nstream\n", w, h, length)
	key := [32]byte{'s', '3', 'd', 'o', 'c', 's', ' ', 'p', 'd', 'f', 'g', 'e', 'n'}
	binary.LittleEndian.PutUint64(key[24:], seed)
	rng := rand.NewChaCha8(key)
	buf := p.imgBuf
	if buf == nil {
		buf = make([]byte, 64<<10)
		p.imgBuf = buf
	}
	for left := length; left > 0 && p.err == nil; {
		k := min(int64(len(buf)), left)
		_, _ = rng.Read(buf[:k]) // never fails
		p.writeBytes(buf[:k])
		left -= k
	}
	p.printf("\nendstream\n")
	p.endObj()
}

// contentStream lays the lines of text out top-down on the page.
func contentStream(text string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "BT\n/F1 %d Tf\n%d TL\n%d %d Td\n", fontSize, leading, marginX, topY)
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for k, line := range lines {
		if k > 0 {
			b.WriteString("T*\n")
		}
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		b.WriteString(literal(winAnsi(line)))
		b.WriteString(" Tj\n")
	}
	b.WriteString("ET")
	return b.Bytes()
}

// literal returns b as a PDF literal string with (, ) and \ escaped and
// control characters written in octal.
func literal(b []byte) string {
	var s strings.Builder
	s.WriteByte('(')
	for _, c := range b {
		switch {
		case c == '(' || c == ')' || c == '\\':
			s.WriteByte('\\')
			s.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&s, "\\%03o", c)
		default:
			s.WriteByte(c)
		}
	}
	s.WriteByte(')')
	return s.String()
}

// textString encodes s for the Info dictionary: a literal string when it is
// printable ASCII, else UTF-16BE with a byte order mark, as hex.
func textString(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			ascii = false
			break
		}
	}
	if ascii {
		return literal([]byte(s))
	}
	var b strings.Builder
	b.WriteString("<FEFF")
	for _, r := range s {
		if r == utf8.RuneError {
			r = '?'
		}
		if r >= 0x10000 { // surrogate pair
			r -= 0x10000
			fmt.Fprintf(&b, "%04X%04X", 0xD800+(r>>10), 0xDC00+(r&0x3FF))
			continue
		}
		fmt.Fprintf(&b, "%04X", r)
	}
	b.WriteString(">")
	return b.String()
}

// winAnsiHigh maps the characters of WinAnsiEncoding's 0x80-0x9F range.
var winAnsiHigh = map[rune]byte{
	'€': 0x80, '‚': 0x82, 'ƒ': 0x83, '„': 0x84, '…': 0x85, '†': 0x86, '‡': 0x87,
	'ˆ': 0x88, '‰': 0x89, 'Š': 0x8A, '‹': 0x8B, 'Œ': 0x8C, 'Ž': 0x8E,
	'‘': 0x91, '’': 0x92, '“': 0x93, '”': 0x94, '•': 0x95, '–': 0x96, '—': 0x97,
	'˜': 0x98, '™': 0x99, 'š': 0x9A, '›': 0x9B, 'œ': 0x9C, 'ž': 0x9E, 'Ÿ': 0x9F,
}

// winAnsi encodes s in WinAnsiEncoding: tabs become spaces, characters it
// cannot represent become '?'.
func winAnsi(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		switch {
		case r == '\t':
			out = append(out, ' ')
		case r >= 0x20 && r < 0x7f, r >= 0xA0 && r <= 0xFF:
			out = append(out, byte(r))
		default:
			if c, ok := winAnsiHigh[r]; ok {
				out = append(out, c)
			} else {
				out = append(out, '?')
			}
		}
	}
	return out
}
