package pdfdoc

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"runtime"
	"strings"
	"testing"

	"s3docs/internal/pdfgen"
)

// objList builds the objects of a test file, object 1 being the catalog.
type objList []string

func (o *objList) add(body string) int {
	*o = append(*o, body)
	return len(*o)
}

func (o objList) set(n int, body string) { o[n-1] = body }

// treeFile starts a file with a catalog (1), a page tree root (2, set by
// the caller) and a font (3) that the root's resources name F1.
func treeFile() objList {
	return objList{"<< /Type /Catalog /Pages 2 0 R >>", "",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"}
}

const rootAttrs = "/MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"

// addPage adds a page under parent showing text, and returns its number.
func (o *objList) addPage(parent int, text string) int {
	c := o.add(textPage(text))
	return o.add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /Contents %d 0 R >>", parent, c))
}

func refs(nums []int) string {
	var b strings.Builder
	for _, n := range nums {
		fmt.Fprintf(&b, "%d 0 R ", n)
	}
	return b.String()
}

func pageWords(from, thru int) []string {
	var w []string
	for i := from; i <= thru; i++ {
		w = append(w, fmt.Sprintf("page%d", i))
	}
	return w
}

// TestEmptyNodeAmongPages is issue 20's first case: the root's /Kids are
// [p1..p10, E, p11..p100, N], E an empty node and N a node of pages 101
// and 102, so that the root's /Count, 102, equals its number of kids.
// Indexing the kids by page number gave pages 50-99 for pages-0051-0100,
// and qpdf, poppler and mutool all read 102 pages in order.
func TestEmptyNodeAmongPages(t *testing.T) {
	o := treeFile()
	var kids []int
	for i := 1; i <= 10; i++ {
		kids = append(kids, o.addPage(2, fmt.Sprintf("page%d", i)))
	}
	kids = append(kids, o.add("<< /Type /Pages /Parent 2 0 R /Kids [] /Count 0 >>"))
	for i := 11; i <= 100; i++ {
		kids = append(kids, o.addPage(2, fmt.Sprintf("page%d", i)))
	}
	n := o.add("")
	o.set(n, fmt.Sprintf("<< /Type /Pages /Parent 2 0 R /Kids [%s] /Count 2 >>", refs([]int{o.addPage(n, "page101"), o.addPage(n, "page102")})))
	kids = append(kids, n)
	o.set(2, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count 102 %s >>", refs(kids), rootAttrs))
	pdf := pdfgen.Objects(o)
	d, err := openBytes(pdf)
	if err != nil {
		t.Fatal(err)
	}
	if d.PageCount() != 102 {
		t.Fatalf("PageCount = %d, want 102", d.PageCount())
	}
	// The part asked for first is the one that was wrong.
	dir := t.TempDir()
	part := docWriteFile(t, dir, "part.pdf", docExtract(t, d, 51, 100))
	docQpdfCheck(t, part)
	got := docPageTexts(t, part, 1, 50)
	for i, want := range pageWords(51, 100) {
		if docWords(got[i]) != want {
			t.Fatalf("pages-0051-0100, page %d: %q, want %q", i+1, docWords(got[i]), want)
		}
	}
	checkTexts(t, pdf, pageWords(1, 102)...)
}

// TestCountThatLies: a /Count equal to the number of kids where a kid holds
// two pages; the pages are what the kids hold.
func TestCountThatLies(t *testing.T) {
	o := treeFile()
	p1 := o.addPage(2, "page1")
	n := o.add("")
	o.set(n, fmt.Sprintf("<< /Type /Pages /Parent 2 0 R /Kids [%s] /Count 1 >>", refs([]int{o.addPage(n, "page2"), o.addPage(n, "page3")})))
	p4 := o.addPage(2, "page4")
	o.set(2, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count 3 %s >>", refs([]int{p1, n, p4}), rootAttrs))
	checkTexts(t, pdfgen.Objects(o), pageWords(1, 4)...)
}

// TestBrokenKids: kids that qpdf, poppler and mutool count as pages but
// cannot show (a reference to nothing, to a null object, to something that
// is not a dictionary, a direct value) keep the pages after them in place;
// only parts that include them fail.
func TestBrokenKids(t *testing.T) {
	for _, tc := range []struct {
		name string
		kid  func(o *objList) string
	}{
		{"missing object", func(o *objList) string { return "999 0 R" }},
		{"null object", func(o *objList) string { return fmt.Sprintf("%d 0 R", o.add("null")) }},
		{"a number", func(o *objList) string { return fmt.Sprintf("%d 0 R", o.add("42")) }},
		{"a direct null", func(o *objList) string { return "null" }},
		// The font that the pages use: it must not become null in them.
		{"a dictionary of another type", func(o *objList) string { return "3 0 R" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := treeFile()
			kids := []string{
				fmt.Sprintf("%d 0 R", o.addPage(2, "page1")),
				fmt.Sprintf("%d 0 R", o.addPage(2, "page2")),
				tc.kid(&o),
				fmt.Sprintf("%d 0 R", o.addPage(2, "page4")),
			}
			o.set(2, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count 4 %s >>", strings.Join(kids, " "), rootAttrs))
			d, err := openBytes(pdfgen.Objects(o))
			if err != nil {
				t.Fatal(err)
			}
			if d.PageCount() != 4 {
				t.Fatalf("PageCount = %d, want 4 (as qpdf)", d.PageCount())
			}
			for _, r := range [][2]int{{3, 3}, {2, 4}, {1, 4}} {
				if err := d.Extract(context.Background(), r[0], r[1], io.Discard); !errors.Is(err, errBrokenPage) {
					t.Errorf("pages %d-%d: %v, want errBrokenPage", r[0], r[1], err)
				}
			}
			dir := t.TempDir()
			for _, p := range []int{1, 2, 4} {
				part := docWriteFile(t, dir, "part.pdf", docExtract(t, d, p, p))
				docQpdfCheck(t, part)
				if got := docWords(docPageTexts(t, part, 1, 1)[0]); got != fmt.Sprintf("page%d", p) {
					t.Errorf("page %d: %q", p, got)
				}
			}
		})
	}
}

// TestDeepTree: a page tree 300 levels deep, which qpdf and poppler read.
func TestDeepTree(t *testing.T) {
	o := treeFile()
	parent := 2
	for range 299 {
		n := o.add("")
		o.set(parent, fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] /Count 2 %s >>", n, rootAttrs))
		parent = n
	}
	o.set(parent, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count 2 >>", refs([]int{o.addPage(parent, "page1"), o.addPage(parent, "page2")})))
	checkTexts(t, pdfgen.Objects(o), "page1", "page2")
}

// TestStreamKeywordWhiteSpace is issue 20's second case: white space
// between "stream" and its end of line, which poppler and mutool read and
// qpdf copes with. Its data started at the space, and every page of the
// part was blank.
func TestStreamKeywordWhiteSpace(t *testing.T) {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write([]byte("BT /F1 24 Tf 72 700 Td (page2) Tj ET"))
	w.Close()
	for name, eol := range map[string]string{"space CR LF": " \r\n", "tab LF": "\t\n", "spaces LF": "  \n", "CR alone": "\r"} {
		t.Run(name, func(t *testing.T) {
			o := treeFile()
			plain := "BT /F1 24 Tf 72 700 Td (page1) Tj ET"
			c1 := o.add(fmt.Sprintf("<< /Length %d >>\nstream%s%s\nendstream", len(plain), eol, plain))
			c2 := o.add(fmt.Sprintf("<< /Length %d /Filter /FlateDecode >>\nstream%s%s\nendstream", z.Len(), eol, z.String()))
			p1 := o.add(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /Contents %d 0 R >>", c1))
			p2 := o.add(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /Contents %d 0 R >>", c2))
			o.set(2, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count 2 %s >>", refs([]int{p1, p2}), rootAttrs))
			checkTexts(t, pdfgen.Objects(o), "page1", "page2")
		})
	}
}

// TestStreamStart: where a stream's data begins, as qpdf finds it.
func TestStreamStart(t *testing.T) {
	for _, tc := range []struct {
		in        string
		data      int
		ok, short bool
	}{
		{" stream\r\nxy", 9, true, false},
		{" stream\nxy", 8, true, false},
		{" stream \r\nxy", 10, true, false},
		{" stream\t \nxy", 10, true, false},
		{" stream\rxy", 8, true, false},
		{" stream xy", 8, true, false}, // no end of line: the data begins at x
		{" stream   ", 0, true, true},
		{" stream\r", 0, true, true},
		{" streamer\n", 0, false, false},
		{" endobj", 0, false, false},
	} {
		data, ok, short := streamStart([]byte(tc.in), 0)
		if ok != tc.ok || short != tc.short || (ok && !short && data != tc.data) {
			t.Errorf("streamStart(%q) = %d, %v, %v; want %d, %v, %v", tc.in, data, ok, short, tc.data, tc.ok, tc.short)
		}
	}
}

// TestInlineImageHidingNames is issue 20's third case: an inline image
// whose data holds " EI<". The scan took that for the image's end, the "<"
// swallowed the content up to the next ">", and the font used after the
// image was dropped from the part.
func TestInlineImageHidingNames(t *testing.T) {
	o := treeFile()
	f2 := o.add("<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>")
	content := "q 10 0 0 10 72 600 cm BI /W 6 /H 1 /BPC 8 /CS /G ID \x01 EI<\x02\nEI Q " +
		"BT /F2 24 Tf 72 700 Td (after) Tj ET /P <</MCID 0>> BDC EMC BT /F1 12 Tf 72 650 Td (page1) Tj ET"
	c := o.add(docStream("", content))
	p := o.add(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /Contents %d 0 R >>", c))
	o.set(2, fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] /Count 1 /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R /F2 %d 0 R /F9 3 0 R >> >> >>", p, f2))
	d := checkTexts(t, pdfgen.Objects(o), "after page1")
	if fonts := partFonts(t, d, 1); fonts != "F1 F2" {
		t.Errorf("the part's page has fonts %s, want F1 F2", fonts)
	}
}

// partFonts extracts page i alone and returns the names of its fonts.
func partFonts(t *testing.T, d *Doc, i int) string {
	t.Helper()
	part, err := openBytes(docExtract(t, d, i, i))
	if err != nil {
		t.Fatal(err)
	}
	p, err := part.findPage(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := part.r.resolveDict(context.Background(), p.in.resources)
	if err != nil {
		t.Fatal(err)
	}
	fonts, err := part.r.resolveDict(context.Background(), res["Font"])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(sortedDictKeys(fonts), " ")
}

// TestBorrowedResources is issue 20's fourth case: what has no resources
// of its own uses the page's (ISO 32000-1, 7.8.3): a form drawn by a form,
// and an annotation's appearance; and what a form's own resources lack is
// looked up in the page's. The fonts they use must stay in the part,
// though the page's own content does not name them.
func TestBorrowedResources(t *testing.T) {
	o := treeFile()
	f2 := o.add("<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>")
	f3 := o.add("<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding /WinAnsiEncoding >>")
	unused := o.add("<< /Type /Font /Subtype /Type1 /BaseFont /Symbol >>")
	formB := o.add(docStream("/Type /XObject /Subtype /Form /BBox [0 0 612 792]", "BT /F2 24 Tf 72 600 Td (borrowed) Tj ET"))
	formA := o.add(docStream(fmt.Sprintf("/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /XObject << /Fb %d 0 R >> >>", formB), "/Fb Do"))
	// A form with resources of its own that lack the font it uses: readers
	// look the name up in the page's (qpdf's form-xobjects-some-resources).
	f5 := o.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
	formC := o.add(docStream("/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /ProcSet [/PDF /Text] >>",
		"BT /F5 24 Tf 72 550 Td (fallback) Tj ET"))
	ap := o.add(docStream("/Type /XObject /Subtype /Form /BBox [0 0 100 20]", "BT /F3 12 Tf 2 5 Td (note) Tj ET"))
	annot := o.add(fmt.Sprintf("<< /Type /Annot /Subtype /FreeText /Rect [72 400 172 420] /DA (/F3 12 Tf) /Contents (note) /AP << /N %d 0 R >> >>", ap))
	c := o.add(docStream("", "BT /F1 24 Tf 72 700 Td (page1) Tj ET /Fa Do /Fc Do"))
	p := o.add(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /Contents %d 0 R /Annots [%d 0 R] >>", c, annot))
	o.set(2, fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] /Count 1 /MediaBox [0 0 612 792] "+
		"/Resources << /Font << /F1 3 0 R /F2 %d 0 R /F3 %d 0 R /F4 %d 0 R /F5 %d 0 R >> /XObject << /Fa %d 0 R /Fc %d 0 R >> >> >>",
		p, f2, f3, unused, f5, formA, formC))
	d := checkTexts(t, pdfgen.Objects(o), "page1 borrowed fallback note")
	if fonts := partFonts(t, d, 1); fonts != "F1 F2 F3 F5" {
		t.Errorf("the part's page has fonts %s, want F1 F2 F3 F5", fonts)
	}
}

// sharedKids is a file whose root has nodes kids, each of whose /Kids is
// one indirect array that lists one page m times: nodes*m pages from a
// file of 6*m bytes.
func sharedKids(nodes, m int) []byte {
	o := treeFile()
	p := o.addPage(2, "page")
	arr := o.add("[" + strings.Repeat(fmt.Sprintf("%d 0 R ", p), m) + "]")
	var kids []int
	for range nodes {
		kids = append(kids, o.add(fmt.Sprintf("<< /Type /Pages /Parent 2 0 R /Kids %d 0 R /Count %d >>", arr, m)))
	}
	o.set(2, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d %s >>", refs(kids), nodes*m, rootAttrs))
	return pdfgen.Objects(o)
}

// TestPageTreeBudget: the kids the walk finds are counted against
// MaxPages before anything is kept for them. A 600 KB file whose 50 nodes
// each name one /Kids array of 100,000 references to one page (5 million
// pages) allocated 1,269 MiB before it was refused (at full scale, a
// 3.6 MB file: 12 GiB allocated, 4 GiB in use, 24 s); now it is refused at
// the budget, having allocated a few tens of MiB.
func TestPageTreeBudget(t *testing.T) {
	t.Run("a /Kids array shared by many nodes", func(t *testing.T) {
		pdf := sharedKids(50, 100_000)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := openBytes(pdf)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Open: %v; want ErrTooLarge", err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
			t.Fatalf("Open allocated %d MiB for a file of %d KB", alloc>>20, len(pdf)>>10)
		}
	})
	t.Run("MaxPages counts pages and nodes", func(t *testing.T) {
		pdf := sharedKids(3, 10) // 3 nodes and 30 pages
		for limit, ok := range map[int]bool{33: true, 32: false, 12: false} {
			d, err := Open(context.Background(), bytes.NewReader(pdf), int64(len(pdf)), Options{MaxPages: limit})
			switch {
			case ok && (err != nil || d.PageCount() != 30):
				t.Errorf("MaxPages %d: %v", limit, err)
			case !ok && !errors.Is(err, ErrTooLarge):
				t.Errorf("MaxPages %d: %v; want ErrTooLarge", limit, err)
			}
		}
	})
}

// TestPageTreeMemory: what the walk keeps of a node is a few bytes. A
// chain of 200,000 nodes kept 106 bytes a node (the attributes a node
// passes down, 64 bytes, copied into every node, and a slice of kids per
// node); now about 33, the cross-reference table included.
func TestPageTreeMemory(t *testing.T) {
	const n = 200_000
	o := treeFile()
	prev := 2
	for range n {
		nd := o.add("")
		o.set(prev, fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] >>", nd))
		prev = nd
	}
	o.set(prev, fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] %s >>", o.addPage(prev, "page1"), rootAttrs))
	pdf := pdfgen.Objects(o)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d, err := openBytes(pdf)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perNode := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	runtime.KeepAlive(d)
	if perNode > 64 {
		t.Fatalf("the open Doc keeps %d bytes a page tree node", perNode)
	}
	checkTexts(t, pdf, "page1")
}

// TestKidNumberBeyond32Bits: the walk keeps object numbers in 32 bits; a
// kid numbered 2^32 more than a page is a reference to nothing (a broken
// page), not that page.
func TestKidNumberBeyond32Bits(t *testing.T) {
	o := treeFile()
	p1, p2 := o.addPage(2, "page1"), o.addPage(2, "page2")
	o.set(2, fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R %d 0 R] /Count 2 %s >>", p1, p2+1<<32, rootAttrs))
	d, err := openBytes(pdfgen.Objects(o))
	if err != nil {
		t.Fatal(err)
	}
	if d.PageCount() != 2 {
		t.Fatalf("PageCount = %d, want 2", d.PageCount())
	}
	if err := d.Extract(context.Background(), 2, 2, io.Discard); !errors.Is(err, errBrokenPage) {
		t.Fatalf("page 2: %v, want errBrokenPage", err)
	}
}

// TestInlineJPEGLength: the end of a JPEG that Go's encoder writes (a
// grey one: its frame header is 11 bytes long, a length whose bit 1 is
// set) is found where the JPEG ends.
func TestInlineJPEGLength(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 17, 9))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	if got := jpegLength(append(b.Bytes(), " EI /F1 Tf"...)); got != b.Len() {
		t.Fatalf("jpegLength = %d, want %d", got, b.Len())
	}
}

// inlineBombs is a content stream of n inline images whose Flate data
// (4 KB each) inflates to 4 MiB, then text in /F1.
func inlineBombs(n int) []byte {
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression) // a valid level
	zw.Write(make([]byte, maxInlineInflate))
	zw.Close()
	var c bytes.Buffer
	for range n {
		c.WriteString("BI /W 1 /H 1 /CS /G /BPC 8 /F /Fl ID ")
		c.Write(z.Bytes())
		c.WriteString(" EI\n")
	}
	c.WriteString("BT /F1 24 Tf 72 700 Td (page) Tj ET")
	return c.Bytes()
}

// TestInlineInflateBudget: what finding the ends of Flate inline images
// inflates is charged to the page's scan budget. Each image was bounded
// (4 MiB) but not their sum: a 3.7 MB content stream of 900 such images
// cost 2 s of inflating for each page that drew it, a 50-page part 100 s.
// Now past the budget the rest of the stream is taken as names (more
// names, never fewer), and the page's other streams are not scanned (it
// keeps all its resources).
func TestInlineInflateBudget(t *testing.T) {
	ns := newNameSet()
	const budget = 16 << 20
	left := int64(budget)
	scanNames(inlineBombs(10), ns, &left)
	names := ns.has
	if inflated := budget - left; inflated > budget+1 {
		t.Fatalf("inflated %d MiB with a budget of %d", inflated>>20, budget>>20)
	}
	if left > 0 || !names["F1"] {
		t.Fatalf("budget left %d, names %v", left, names)
	}

	o := treeFile()
	f2 := o.add("<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>")
	bombs := o.add(docStream("", string(inlineBombs(10))))
	text := o.add(textPage("page1"))
	p := o.add(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /Contents [%d 0 R %d 0 R] >>", bombs, text))
	o.set(2, fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] /Count 1 /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R /F2 %d 0 R >> >> >>", p, f2))
	d, err := openBytes(pdfgen.Objects(o))
	if err != nil {
		t.Fatal(err)
	}
	if fonts := partFonts(t, d, 1); fonts != "F1 F2" {
		t.Fatalf("the part's page has fonts %s; past the budget it keeps them all", fonts)
	}
}

// TestBorrowerChain: a chain of 2,000 forms without resources, each
// drawing the next through the page's resources, the last using a font
// the page's own content does not. The search looked the page's resources
// up again from the start for each form it found (quadratic: 3.5 s a page
// for 4,000 forms; 8,000 forms read over MaxReads objects, 29 s, and the
// part failed); now each name is looked up once. Here the object cache
// holds 256 objects, so that the quadratic search read 2 million objects,
// over MaxReads.
func TestBorrowerChain(t *testing.T) {
	const n = 2000
	o := treeFile()
	f2 := o.add("<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>")
	f9 := o.add("<< /Type /Font /Subtype /Type1 /BaseFont /Symbol >>")
	var xo strings.Builder
	for i := range n {
		content := fmt.Sprintf("/Fm%d Do", i+1)
		if i == n-1 {
			content = "BT /F2 12 Tf 72 600 Td (deep) Tj ET"
		}
		fmt.Fprintf(&xo, "/Fm%d %d 0 R ", i, o.add(docStream("/Type /XObject /Subtype /Form /BBox [0 0 612 792]", content)))
	}
	res := o.add(fmt.Sprintf("<< /Font << /F1 3 0 R /F2 %d 0 R /F9 %d 0 R >> /XObject << %s >> >>", f2, f9, xo.String()))
	c := o.add(docStream("", "/Fm0 Do BT /F1 24 Tf 72 700 Td (page1) Tj ET"))
	p := o.add(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /Contents %d 0 R /Resources %d 0 R >>", c, res))
	o.set(2, fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] /Count 1 /MediaBox [0 0 612 792] >>", p))
	pdf := pdfgen.Objects(o)
	d, err := Open(context.Background(), bytes.NewReader(pdf), int64(len(pdf)), Options{CacheObjects: 256, MaxReads: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	var part bytes.Buffer
	if err := d.Extract(context.Background(), 1, 1, &part); err != nil {
		t.Fatal(err)
	}
	pd, err := openBytes(part.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	pg, err := pd.findPage(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pd.r.resolveDict(context.Background(), pg.in.resources)
	if err != nil {
		t.Fatal(err)
	}
	fonts, err := pd.r.resolveDict(context.Background(), r["Font"])
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sortedDictKeys(fonts), " "); got != "F1 F2" {
		t.Fatalf("the part's page has fonts %s, want F1 F2", got)
	}
	docQpdfCheck(t, docWriteFile(t, t.TempDir(), "part.pdf", part.Bytes()))
}

// TestRebuildAfterReads: a page tree [A B C] whose C has a wrong offset,
// so that the cross-reference data is rebuilt mid-walk, after A was read.
// With a later body of A's number in the file (a page tree node of B, not
// referenced by the table), the rebuilt table gives that node: A was
// listed as a page before the rebuild and copied as the node after it,
// and the part of page 1 failed qpdf --check (qpdf, poppler and mutool
// show A). Now the file is refused (qpdf warns that it is damaged); without
// the other body, it reads as before.
func TestRebuildAfterReads(t *testing.T) {
	build := func(otherBody bool) []byte {
		o := treeFile()
		a := o.addPage(2, "pageA")
		b := o.addPage(2, "pageB")
		c := o.addPage(2, "pageC")
		late := o.add(fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] /Count 1 >>", b))
		o.set(2, fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R %d 0 R %d 0 R] /Count 3 %s >>", a, b, c, rootAttrs))
		pdf := pdfgen.Objects(o)
		if otherBody { // object late becomes a later body of a
			k := bytes.Index(pdf, fmt.Appendf(nil, "\n%d 0 obj", late))
			copy(pdf[k:], fmt.Sprintf("\n%*d 0 obj", len(fmt.Sprint(late)), a))
		}
		// C's entry points at the catalog.
		x := bytes.LastIndex(pdf, []byte("xref\n0 "))
		first := x + bytes.IndexByte(pdf[x+5:], '\n') + 6
		copy(pdf[first+20*c:], fmt.Sprintf("%010d", bytes.Index(pdf, []byte("1 0 obj"))))
		return pdf
	}
	if _, err := openBytes(build(true)); !errors.Is(err, errRebuiltAnother) {
		t.Fatalf("Open: %v; want errRebuiltAnother", err)
	}
	checkTexts(t, build(false), "pageA", "pageB", "pageC")
}
