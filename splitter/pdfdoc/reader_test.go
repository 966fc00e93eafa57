package pdfdoc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"s3docs/internal/pdfgen"
)

// The reader's paths that generated and real-world files do not all take:
// hybrid files, free entries of updates, rebuilt cross-reference data,
// stream lengths that lie, page trees that look flat and are not, and a
// source that fails.

// textPage is the content of a page showing text.
func textPage(text string) string {
	return docStream("", "BT /F1 24 Tf 72 700 Td ("+text+") Tj ET")
}

// twoPages is a catalog, a flat tree and two pages showing "First page" and
// "Second page": objects 1 to 7.
func twoPages() []string {
	return []string{
		/* 1 */ "<< /Type /Catalog /Pages 2 0 R >>",
		/* 2 */ "<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 /MediaBox [0 0 612 792] /Resources << /Font << /F1 7 0 R >> >> >>",
		/* 3 */ "<< /Type /Page /Parent 2 0 R /Contents 5 0 R >>",
		/* 4 */ "<< /Type /Page /Parent 2 0 R /Contents 6 0 R >>",
		/* 5 */ textPage("First page"),
		/* 6 */ textPage("Second page"),
		/* 7 */ "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
	}
}

// checkTexts extracts every page of pdf and checks the parts with qpdf and
// their text against want, page by page.
func checkTexts(t *testing.T, pdf []byte, want ...string) *Doc {
	t.Helper()
	d, err := openBytes(pdf)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if d.PageCount() != len(want) {
		t.Fatalf("PageCount = %d, want %d", d.PageCount(), len(want))
	}
	dir := t.TempDir()
	part := docWriteFile(t, dir, "part.pdf", docExtract(t, d, 1, len(want)))
	docQpdfCheck(t, part)
	docPopplerClean(t, part)
	got := docPageTexts(t, part, 1, len(want))
	for i := range want {
		if docWords(got[i]) != want[i] {
			t.Errorf("page %d: %q, want %q", i+1, docWords(got[i]), want[i])
		}
	}
	return d
}

// objectsAt writes the objects of bodies (numbered from 1) after a header
// and returns the file so far and each object's offset.
func objectsAt(header string, bodies map[int]string, order []int) ([]byte, map[int]int) {
	var b bytes.Buffer
	b.WriteString(header)
	offs := map[int]int{}
	for _, n := range order {
		offs[n] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", n, bodies[n])
	}
	return b.Bytes(), offs
}

func numbered(objs []string) (map[int]string, []int) {
	m := map[int]string{}
	var order []int
	for i, o := range objs {
		m[i+1] = o
		order = append(order, i+1)
	}
	return m, order
}

// TestHybridXref: a classic table that marks free the objects held in an
// object stream, and a trailer whose /XRefStm names the cross-reference
// stream that lists them (ISO 32000-1, 7.5.8.4).
func TestHybridXref(t *testing.T) {
	bodies, _ := numbered(twoPages())
	// The second page (4) and the font (7) go into object stream 8.
	inStm := []int{4, 7}
	var hdr, data strings.Builder
	for _, n := range inStm {
		fmt.Fprintf(&hdr, "%d %d ", n, data.Len())
		data.WriteString(bodies[n] + "\n")
		delete(bodies, n)
	}
	first := hdr.Len()
	stm := hdr.String() + data.String()
	bodies[8] = fmt.Sprintf("<< /Type /ObjStm /N %d /First %d /Length %d >>\nstream\n%s\nendstream", len(inStm), first, len(stm), stm)
	order := []int{1, 2, 3, 5, 6, 8}
	file, offs := objectsAt("%PDF-1.5\n%\xe2\xe3\xcf\xd3\n", bodies, order)
	// The cross-reference stream (object 9): objects 4 and 7 in stream 8.
	var xs []byte
	for n := 0; n <= 9; n++ {
		switch {
		case n == 4:
			xs = append(xs, 2, 0, 8, 0)
		case n == 7:
			xs = append(xs, 2, 0, 8, 1)
		default:
			xs = append(xs, 0, 0, 0, 0) // listed by the table
		}
	}
	xsOff := len(file)
	file = fmt.Appendf(file, "9 0 obj\n<< /Type /XRef /Size 10 /W [1 2 1] /Length %d >>\nstream\n%s\nendstream\nendobj\n", len(xs), xs)
	xref := len(file)
	file = fmt.Appendf(file, "xref\n0 10\n0000000000 65535 f\r\n")
	for n := 1; n <= 9; n++ {
		if off, ok := offs[n]; ok {
			file = fmt.Appendf(file, "%010d 00000 n\r\n", off)
		} else {
			file = fmt.Appendf(file, "0000000000 00000 f\r\n")
		}
	}
	file = fmt.Appendf(file, "trailer\n<< /Size 10 /Root 1 0 R /XRefStm %d >>\nstartxref\n%d\n%%%%EOF\n", xsOff, xref)
	docQpdfCheck(t, docWriteFile(t, t.TempDir(), "hybrid.pdf", file))
	checkTexts(t, file, "First page", "Second page")
}

// TestUpdateFreesObject: an incremental update that frees an object and
// gives the page new content hides the old object, whatever the older
// section says.
func TestUpdateFreesObject(t *testing.T) {
	base := pdfgen.Objects(twoPages())
	prev := bytes.LastIndex(base, []byte("startxref\n"))
	var prevOff int
	fmt.Sscanf(string(base[prev+len("startxref\n"):]), "%d", &prevOff)
	file := bytes.Clone(base)
	off8 := len(file)
	file = append(file, "8 0 obj\n"+textPage("Replaced")+"\nendobj\n"...)
	off4 := len(file)
	file = append(file, "4 0 obj\n<< /Type /Page /Parent 2 0 R /Contents [8 0 R 6 0 R] >>\nendobj\n"...)
	xref := len(file)
	file = fmt.Appendf(file, "xref\n4 1\n%010d 00000 n\r\n6 1\n0000000000 00001 f\r\n8 1\n%010d 00000 n\r\n", off4, off8)
	file = fmt.Appendf(file, "trailer\n<< /Size 9 /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n", prevOff, xref)
	d := checkTexts(t, file, "First page", "Replaced")
	if o, err := d.r.object(context.Background(), 6); err != nil || o != nil {
		t.Errorf("object 6, freed by the update: %v, %v", o, err)
	}
}

// TestRebuiltXref: cross-reference data that is wrong or missing is
// rebuilt by a scan, and the document reads the same.
func TestRebuiltXref(t *testing.T) {
	good := pdfgen.Objects(twoPages())
	xref := bytes.Index(good, []byte("xref\n"))
	tail := good[bytes.Index(good, []byte("trailer")):]
	for _, tc := range []struct {
		name    string
		pdf     []byte
		rebuilt bool // at Open, or on the first object read
	}{
		{"startxref wrong", bytes.Replace(good, fmt.Appendf(nil, "startxref\n%d", xref), []byte("startxref\n17"), 1), true},
		{"offsets shifted", bytes.Replace(good, []byte("%\xe2\xe3\xcf\xd3\n"), []byte("%\xe2\xe3\xcf\xd3\n% seven\n"), 1), true},
		{"no table", append(append(bytes.Clone(good[:xref]), tail[:bytes.Index(tail, []byte("startxref"))]...), "%%EOF\n"...), true},
		{"no trailer", append(bytes.Clone(good[:xref]), "%%EOF\n"...), true},
		{"sound", good, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := checkTexts(t, tc.pdf, "First page", "Second page")
			if d.r.rebuilt != tc.rebuilt {
				t.Errorf("rebuilt = %v, want %v", d.r.rebuilt, tc.rebuilt)
			}
		})
	}
}

// TestStreamLengths: a stream's /Length may be indirect, wrong or
// missing; the data is then where "endstream" says.
func TestStreamLengths(t *testing.T) {
	content := "BT /F1 24 Tf 72 700 Td (Second page) Tj ET"
	for _, tc := range []struct {
		name   string
		stream string
		extra  []string // objects 8 and up
	}{
		{"indirect", "<< /Length 8 0 R >>\nstream\n" + content + "\nendstream", []string{fmt.Sprint(len(content))}},
		{"too long", fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content)+30, content), nil},
		{"too short", fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content)-9, content), nil},
		{"missing", "<< >>\nstream\n" + content + "\r\nendstream", nil},
		{"indirect to nothing", "<< /Length 9 0 R >>\nstream\n" + content + "\nendstream", nil},
		{"negative", "<< /Length -5 >>\nstream\n" + content + "\nendstream", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := twoPages()
			objs[5] = tc.stream
			checkTexts(t, pdfgen.Objects(append(objs, tc.extra...)), "First page", "Second page")
		})
	}
}

// TestFlatLookingTree: a node whose /Count equals its number of kids is no
// promise that its kids are pages; the pages are what qpdf lists, whatever
// the counts say.
func TestFlatLookingTree(t *testing.T) {
	font := "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
	res := "/MediaBox [0 0 612 792] /Resources << /Font << /F1 2 0 R >> >>"
	page := func(parent int, contents int) string {
		return fmt.Sprintf("<< /Type /Page /Parent %d 0 R /Contents %d 0 R >>", parent, contents)
	}
	t.Run("inner node with one page", func(t *testing.T) {
		// Root: Kids [page, node(1 page), page], /Count 3: flat-looking.
		objs := []string{
			/* 1 */ "<< /Type /Catalog /Pages 3 0 R >>",
			/* 2 */ font,
			/* 3 */ "<< /Type /Pages /Kids [4 0 R 5 0 R 6 0 R] /Count 3 " + res + " >>",
			/* 4 */ page(3, 8),
			/* 5 */ "<< /Type /Pages /Parent 3 0 R /Kids [7 0 R] /Count 1 >>",
			/* 6 */ page(3, 10),
			/* 7 */ page(5, 9),
			/* 8 */ textPage("One"),
			/* 9 */ textPage("Two"),
			/* 10 */ textPage("Three"),
		}
		checkTexts(t, pdfgen.Objects(objs), "One", "Two", "Three")
	})
	t.Run("page with a wrong parent", func(t *testing.T) {
		objs := ([]string{
			/* 1 */ "<< /Type /Catalog /Pages 3 0 R >>",
			/* 2 */ font,
			/* 3 */ "<< /Type /Pages /Kids [4 0 R 5 0 R] /Count 2 " + res + " >>",
			/* 4 */ page(3, 6),
			/* 5 */ page(2, 7), // its /Parent is the font
			/* 6 */ textPage("One"),
			/* 7 */ textPage("Two"),
		})
		checkTexts(t, pdfgen.Objects(objs), "One", "Two")
	})
	t.Run("count too small", func(t *testing.T) {
		// Root: Kids [page, node(2 pages), page], /Count 3: the document
		// has 4 pages, as every reader finds by reading the kids.
		objs := ([]string{
			/* 1 */ "<< /Type /Catalog /Pages 3 0 R >>",
			/* 2 */ font,
			/* 3 */ "<< /Type /Pages /Kids [4 0 R 5 0 R 6 0 R] /Count 3 " + res + " >>",
			/* 4 */ page(3, 9),
			/* 5 */ "<< /Type /Pages /Parent 3 0 R /Kids [7 0 R 8 0 R] /Count 2 >>",
			/* 6 */ page(3, 12),
			/* 7 */ page(5, 10),
			/* 8 */ page(5, 11),
			/* 9 */ textPage("One"),
			/* 10 */ textPage("Two"),
			/* 11 */ textPage("Three"),
			/* 12 */ textPage("Four"),
		})
		checkTexts(t, pdfgen.Objects(objs), "One", "Two", "Three", "Four")
	})
	t.Run("an empty node before the pages", func(t *testing.T) {
		// Root: Kids [page, empty node, page, node(2 pages)], /Count 4
		// equal to its number of kids: indexing kids by page number would
		// give the empty node's neighbour for page 2.
		objs := ([]string{
			/* 1 */ "<< /Type /Catalog /Pages 3 0 R >>",
			/* 2 */ font,
			/* 3 */ "<< /Type /Pages /Kids [4 0 R 5 0 R 6 0 R 7 0 R] /Count 4 " + res + " >>",
			/* 4 */ page(3, 10),
			/* 5 */ "<< /Type /Pages /Parent 3 0 R /Kids [] /Count 0 >>",
			/* 6 */ page(3, 11),
			/* 7 */ "<< /Type /Pages /Parent 3 0 R /Kids [8 0 R 9 0 R] /Count 2 >>",
			/* 8 */ page(7, 12),
			/* 9 */ page(7, 13),
			/* 10 */ textPage("One"),
			/* 11 */ textPage("Two"),
			/* 12 */ textPage("Three"),
			/* 13 */ textPage("Four"),
		})
		checkTexts(t, pdfgen.Objects(objs), "One", "Two", "Three", "Four")
	})
	t.Run("one page listed many times", func(t *testing.T) {
		// qpdf lists a page as often as the tree does (and copies it).
		kids := strings.Repeat("3 0 R ", 500)
		objs := []string{
			/* 1 */ "<< /Type /Catalog /Pages 2 0 R >>",
			/* 2 */ "<< /Type /Pages /Kids [" + kids + "] /Count 500 " + strings.Replace(res, "2 0 R", "5 0 R", 1) + " >>",
			/* 3 */ page(2, 4),
			/* 4 */ textPage("Again"),
			/* 5 */ font,
		}
		d, err := openBytes(pdfgen.Objects(objs))
		if err != nil {
			t.Fatal(err)
		}
		if d.PageCount() != 500 {
			t.Fatalf("PageCount = %d, want 500", d.PageCount())
		}
		if err := d.Extract(context.Background(), 1, 500, io.Discard); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a loop", func(t *testing.T) {
		objs := []string{
			/* 1 */ "<< /Type /Catalog /Pages 2 0 R >>",
			/* 2 */ "<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 " + strings.Replace(res, "2 0 R", "6 0 R", 1) + " >>",
			/* 3 */ page(2, 5),
			/* 4 */ "<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",
			/* 5 */ textPage("Loop"),
			/* 6 */ font,
		}
		if d, err := openBytes(pdfgen.Objects(objs)); !errors.Is(err, errPageTree) {
			t.Fatalf("Open: %v (%v), want errPageTree", err, d)
		}
	})
}

// failingReaderAt fails every read after the first n.
type failingReaderAt struct {
	r io.ReaderAt
	n int
}

var errDisk = errors.New("disk on fire")

func (f *failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if f.n <= 0 {
		return 0, errDisk
	}
	f.n--
	return f.r.ReadAt(p, off)
}

// TestSourceErrors: a source that fails or is shorter than said gives a
// *SourceError, which is not a broken PDF.
func TestSourceErrors(t *testing.T) {
	pdf := pdfgen.Bytes(pdfgen.Options{Pages: 20, PageImageBytes: 20_000})
	ctx := context.Background()
	// Every read Open makes may fail.
	counter := &failingReaderAt{r: bytes.NewReader(pdf), n: 1 << 30}
	if _, err := Open(ctx, counter, int64(len(pdf)), Options{}); err != nil {
		t.Fatal(err)
	}
	reads := 1<<30 - counter.n
	if reads < 3 {
		t.Fatalf("Open made %d reads", reads)
	}
	for n := range reads {
		_, err := Open(ctx, &failingReaderAt{bytes.NewReader(pdf), n}, int64(len(pdf)), Options{})
		var se *SourceError
		if !errors.As(err, &se) || !errors.Is(err, errDisk) {
			t.Errorf("reads failing after %d: Open: %v, want a SourceError", n, err)
		}
	}
	// Failing during Extract.
	f := &failingReaderAt{bytes.NewReader(pdf), 1 << 30}
	d, err := Open(ctx, f, int64(len(pdf)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.n = 3
	var se *SourceError
	if err := d.Extract(ctx, 5, 10, io.Discard); !errors.As(err, &se) {
		t.Errorf("Extract with a failing source: %v, want a SourceError", err)
	}
	// A source shorter than its size.
	if _, err := Open(ctx, bytes.NewReader(pdf[:len(pdf)/2]), int64(len(pdf)), Options{}); !errors.As(err, &se) {
		t.Errorf("Open of a source shorter than its size: %v, want a SourceError", err)
	}
}

// TestBudgets: each budget of Options stops what exceeds it with
// ErrTooLarge.
func TestBudgets(t *testing.T) {
	pdf := pdfgen.Bytes(pdfgen.Options{Pages: 40, PageImageBytes: 10_000, Links: true})
	ctx := context.Background()
	open := func(o Options) (*Doc, error) {
		return Open(ctx, bytes.NewReader(pdf), int64(len(pdf)), o)
	}
	if _, err := open(Options{MaxObjects: 50}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxObjects: %v", err)
	}
	if _, err := open(Options{MaxObjectBytes: 100}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxObjectBytes: %v", err)
	}
	if _, err := open(Options{MaxReads: 2}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxReads at Open: %v", err)
	}
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"MaxPartObjects", Options{MaxPartObjects: 20}},
		{"MaxPartBytes", Options{MaxPartBytes: 100_000}},
		{"MaxReads", Options{MaxReads: 60}},
	} {
		d, err := open(tc.o)
		if err != nil {
			t.Fatalf("%s: Open: %v", tc.name, err)
		}
		if err := d.Extract(ctx, 1, 40, io.Discard); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: Extract: %v", tc.name, err)
		}
		if err := d.Extract(ctx, 1, 1, io.Discard); err != nil && tc.name != "MaxPartBytes" {
			t.Errorf("%s: a one-page part within the budget: %v", tc.name, err)
		}
	}
	// The first page, which Open lands on, nests three levels deep.
	if _, err := open(Options{MaxDepth: 2}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxDepth: %v", err)
	}
}

// failingWriter fails once it has taken n bytes.
type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, errDisk
	}
	f.n -= len(p)
	return len(p), nil
}

// TestWriteErrors: a failing writer gives a *WriteError, which is neither
// the source's fault nor the PDF's.
func TestWriteErrors(t *testing.T) {
	d, err := openBytes(pdfgen.Bytes(pdfgen.Options{Pages: 20, PageImageBytes: 50_000}))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 100, 70_000, 300_000} {
		err := d.Extract(context.Background(), 1, 20, &failingWriter{n})
		var we *WriteError
		var se *SourceError
		if !errors.As(err, &we) || !errors.Is(err, errDisk) || errors.As(err, &se) {
			t.Errorf("writer failing after %d bytes: %v, want a WriteError", n, err)
		}
	}
}

// TestNoPages: a document whose page tree is empty opens with no pages, as
// before; every range is out of bounds.
func TestNoPages(t *testing.T) {
	d, err := openBytes(pdfgen.Objects([]string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [] /Count 0 >>",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if d.PageCount() != 0 {
		t.Fatalf("PageCount = %d", d.PageCount())
	}
	if err := d.Extract(context.Background(), 1, 1, io.Discard); !errors.Is(err, ErrPageRange) {
		t.Errorf("Extract(1, 1): %v", err)
	}
}
