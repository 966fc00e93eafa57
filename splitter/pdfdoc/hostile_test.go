package pdfdoc

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"

	"s3docs/internal/pdfgen"
)

// TestHostileDocuments: files built to attack a parser end in an error or a
// part made of what they really hold, quickly and without a panic; the
// worker's limits are the second line of defence, not the first.
func TestHostileDocuments(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pdf   []byte
		pages int // 0: Open, or the extraction of every page, must fail
	}{
		{"nested arrays 100k deep", pdfgen.Nested(100_000, false), 0},
		{"nested dictionaries 100k deep", pdfgen.Nested(100_000, true), 0},
		{"page tree loop", pdfgen.PageTreeLoop(), 0},
		{"claims two billion pages", pdfgen.PageCountClaim(2_000_000_000), 1},
		{"claims a negative count", pdfgen.PageCountClaim(-1), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := openBytes(tc.pdf)
			if tc.pages == 0 {
				// Open reads the page tree's inner nodes but not every
				// page (that is the point of a lazy reader), so a flaw
				// under a node that looks flat, such as the loop, is found
				// when the pages are: Open may succeed, extracting all the
				// pages may not.
				if err == nil {
					err = d.Extract(context.Background(), 1, d.PageCount(), io.Discard)
				}
				if err == nil {
					t.Fatalf("Open and Extract succeeded with %d pages", d.PageCount())
				}
				if errors.Is(err, ErrNotPDF) {
					t.Fatalf("%v; a hostile PDF is still a PDF", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.PageCount() != tc.pages {
				t.Fatalf("PageCount = %d, want %d (the leaves, not /Count)", d.PageCount(), tc.pages)
			}
			var part bytes.Buffer
			if err := d.Extract(context.Background(), 1, tc.pages, &part); err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(part.Bytes(), []byte("/Count 1")) {
				t.Fatal("the part does not count its one page")
			}
		})
	}
}

// TestFlateBombStaysCompressed: a page whose content stream inflates to
// 4 GiB (53 KB in the file) is extracted without inflating it: scanning its
// names stops at maxScanBytes, the page keeps its resources whole, and the
// stream is copied as it was. Before the bound, the scan inflated up to
// pdfcpu's 512 MiB limit in memory, which killed any worker under a
// realistic memory limit.
func TestFlateBombStaysCompressed(t *testing.T) {
	pdf := pdfgen.FlateBomb(4 << 30)
	d, err := openBytes(pdf)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var part bytes.Buffer
	if err := d.Extract(context.Background(), 1, 1, &part); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// Without the bound: about 1 GiB (a buffer doubling up to 512 MiB).
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 128<<20 {
		t.Fatalf("Extract allocated %d MiB for a bomb", alloc>>20)
	}
	if part.Len() > len(pdf)+64<<10 {
		t.Fatalf("part of %d bytes from a %d-byte source", part.Len(), len(pdf))
	}
	if !bytes.Contains(part.Bytes(), []byte("/Helvetica")) {
		t.Fatal("the page lost its resources")
	}
}

// zlibTwice compresses b in two layers of Flate (/Filter [/FlateDecode
// /FlateDecode]): a long run of one byte shrinks to a few hundred bytes.
func zlibTwice(b []byte) []byte {
	for range 2 {
		var z bytes.Buffer
		zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression) // a valid level
		zw.Write(b)
		zw.Close()
		b = z.Bytes()
	}
	return b
}

// twoLayerStream is the text of a stream object whose data is data in two
// layers of Flate.
func twoLayerStream(dict string, data []byte) string {
	z := zlibTwice(data)
	return fmt.Sprintf("<< %s /Filter [/FlateDecode /FlateDecode] /Length %d >>\nstream\n%s\nendstream", dict, len(z), z)
}

// TestDecodeBudget: a small file must not make one Open or Extract inflate
// without end by naming a small, highly compressed stream many times, with
// each naming decoding it again. Each file below decoded 40 times a stream
// of almost MaxDecodeBytes and opened or was extracted; at full scale
// (4096 sections, streams of 32 MiB) that was over ten minutes of CPU for a
// file of a few hundred KB. Now the streams decoded in one call are
// bounded (MaxDecodeTotal), and the call fails with ErrTooLarge.
func TestDecodeBudget(t *testing.T) {
	const maxDecode = 256 << 10
	// The cache of decoded object streams holds one of them (the defaults
	// would, at full scale: 8 MiB and streams of 32 MiB).
	o := Options{MaxDecodeBytes: maxDecode, ObjStmCacheBytes: maxDecode / 2}
	big := make([]byte, maxDecode-8<<10)
	tree := []string{
		/* 1 */ "<< /Type /Catalog /Pages 2 0 R >>",
		/* 2 */ "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
	}
	const page = "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"

	// Hybrid sections (a classic table each, /Prev chained), every one of
	// them naming the same /XRefStm.
	hybrid := func() []byte {
		var b bytes.Buffer
		b.WriteString("%PDF-1.5\n")
		var offs []int
		for i, body := range append(tree, page+" >>") {
			offs = append(offs, b.Len())
			fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, body)
		}
		xrefStm := b.Len()
		fmt.Fprintf(&b, "9 0 obj\n%s\nendobj\n", twoLayerStream("/Type /XRef /Size 9 /W [1 1 1]", big))
		prev := 0
		for range 40 {
			at := b.Len()
			fmt.Fprintf(&b, "xref\n0 4\n0000000000 65535 f\r\n%010d 00000 n\r\n%010d 00000 n\r\n%010d 00000 n\r\n", offs[0], offs[1], offs[2])
			fmt.Fprintf(&b, "trailer\n<< /Size 4 /Root 1 0 R /XRefStm %d", xrefStm)
			if prev > 0 {
				fmt.Fprintf(&b, " /Prev %d", prev)
			}
			b.WriteString(" >>\n")
			prev = at
		}
		fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", prev)
		return b.Bytes()
	}

	// Two object streams, each holding every other one of the page's 40
	// annotations: the cache of decoded object streams keeps one of them,
	// so each annotation decoded the other again.
	objStms := func() []byte {
		var annots strings.Builder
		for k := range 40 {
			fmt.Fprintf(&annots, "%d 0 R ", 10+k)
		}
		objs := append(slices.Clone(tree), page+" /Annots ["+annots.String()+"] >>")
		for stm := range 2 {
			var hdr, body strings.Builder
			for k := stm; k < 40; k += 2 {
				fmt.Fprintf(&hdr, "%d %d ", 10+k, body.Len())
				body.WriteString("<< /Subtype /Text /Rect [0 0 1 1] >>\n")
			}
			data := append([]byte(hdr.String()+body.String()), big...)
			objs = append(objs, twoLayerStream(fmt.Sprintf("/Type /ObjStm /N 20 /First %d", hdr.Len()), data))
		}
		// No cross-reference data: a scan rebuilds it, opening the object
		// streams for what they hold.
		var b bytes.Buffer
		b.WriteString("%PDF-1.5\n")
		for i, body := range objs {
			fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, body)
		}
		b.WriteString("%%EOF\n")
		return b.Bytes()
	}()

	t.Run("hybrid sections share one /XRefStm", func(t *testing.T) {
		pdf := hybrid()
		_, err := Open(context.Background(), bytes.NewReader(pdf), int64(len(pdf)), o)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Open: %v; want ErrTooLarge", err)
		}
	})
	t.Run("objects alternate between two object streams", func(t *testing.T) {
		d, err := Open(context.Background(), bytes.NewReader(objStms), int64(len(objStms)), o)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Extract(context.Background(), 1, 1, io.Discard); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Extract: %v; want ErrTooLarge", err)
		}
	})
}

// TestScanBudget: the content streams scanned for one page's resource names
// are bounded in all, not only one by one. A /Contents array naming one
// stream 2,000 times had it decoded 2,000 times (at full scale, 600,000
// times a stream of 4 MiB: hours of CPU from a 4 MB file, deaf to the
// context); now a stream is scanned once per page. Many distinct streams
// that decode to more than the page's scan budget are not scanned: the page
// keeps its resources whole, as for one stream over ScanBytes.
func TestScanBudget(t *testing.T) {
	const scan = 64 << 10
	content := append([]byte("BT /F1 24 Tf 72 700 Td (hello) Tj ET\n"), bytes.Repeat([]byte{' '}, scan-1024)...)
	file := func(contents string, streams int) []byte {
		objs := []string{
			/* 1 */ "<< /Type /Catalog /Pages 2 0 R >>",
			/* 2 */ "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
			/* 3 */ "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents " + contents +
				" /Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> >>",
			/* 4 */ "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
			/* 5 */ "<< /Type /Font /Subtype /Type1 /BaseFont /Unused >>",
		}
		for range streams {
			objs = append(objs, twoLayerStream("", content))
		}
		return pdfgen.Objects(objs)
	}
	extract := func(t *testing.T, pdf []byte) (part []byte, read int64) {
		src := newCountingReaderAt(bytes.NewReader(pdf), 4096, int64(len(pdf)))
		d, err := Open(context.Background(), src, int64(len(pdf)), Options{ScanBytes: scan})
		if err != nil {
			t.Fatal(err)
		}
		_, _, _, _, before := src.touched()
		var b bytes.Buffer
		if err := d.Extract(context.Background(), 1, 1, &b); err != nil {
			t.Fatal(err)
		}
		_, _, _, _, after := src.touched()
		return b.Bytes(), after - before
	}

	t.Run("one stream named 2000 times", func(t *testing.T) {
		pdf := file("["+strings.Repeat("6 0 R ", 2000)+"]", 1)
		part, read := extract(t, pdf)
		// Copying the page reads the file about once; scanning the
		// stream 2,000 times read its data 2,000 times.
		if read > 2*int64(len(pdf)) {
			t.Errorf("extracting the page read %d bytes of a %d-byte file", read, len(pdf))
		}
		if bytes.Contains(part, []byte("/Unused")) {
			t.Error("the page kept a font its content does not use: its content was not scanned")
		}
	})
	t.Run("many streams", func(t *testing.T) {
		var refs strings.Builder
		for k := range 20 {
			fmt.Fprintf(&refs, "%d 0 R ", 6+k)
		}
		part, _ := extract(t, file("["+refs.String()+"]", 20))
		if !bytes.Contains(part, []byte("/Unused")) {
			t.Error("the page lost a font: its content streams, over the scan budget, were scanned")
		}
	})
}

// TestContentsThatAreNotStreams: a page's /Contents may name things that are
// not streams (numbers, names, strings, a dictionary, nulls, objects that do
// not exist). They were copied as they were, and qpdf --check warned about
// the part ("ignoring non-stream in an array of streams", "object is
// supposed to be a stream or an array of streams but is neither"). The part
// keeps only the streams, reached through any references.
func TestContentsThatAreNotStreams(t *testing.T) {
	pdf := pdfgen.Objects([]string{
		/* 1 */ "<< /Type /Catalog /Pages 2 0 R >>",
		/* 2 */ "<< /Type /Pages /Kids [3 0 R 4 0 R 10 0 R 11 0 R] /Count 4 /MediaBox [0 0 612 792] /Resources << /Font << /F1 7 0 R >> >> >>",
		/* 3 */ "<< /Type /Page /Parent 2 0 R /Contents [5 0 R 9 /N (s) 7 0 R null 99 0 R] >>",
		/* 4 */ "<< /Type /Page /Parent 2 0 R /Contents 7 0 R >>",
		/* 5 */ textPage("First page"),
		/* 6 */ textPage("Second page"),
		/* 7 */ "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		/* 8 */ "6 0 R",
		/* 9 */ "[8 0 R 7 0 R]",
		/* 10 */ "<< /Type /Page /Parent 2 0 R /Contents 8 0 R >>",
		/* 11 */ "<< /Type /Page /Parent 2 0 R /Contents 9 0 R >>",
	})
	checkTexts(t, pdf, "First page", "", "Second page", "Second page")
}

// sharedResources is a document of pages pages that share one resource
// dictionary naming fonts fonts (all the same Helvetica object); page k
// shows its text in font /F<k>.
func sharedResources(pages, fonts int) []byte {
	var fontDict strings.Builder
	for k := 1; k <= fonts; k++ {
		fmt.Fprintf(&fontDict, "/F%d 3 0 R ", k)
	}
	objs := []string{
		/* 1 */ "<< /Type /Catalog /Pages 2 0 R >>",
		/* 2 */ "", // the tree, below
		/* 3 */ "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		/* 4 */ "<< /Font << " + fontDict.String() + ">> >>",
	}
	var kids strings.Builder
	for k := 1; k <= pages; k++ {
		n := len(objs) + 1
		fmt.Fprintf(&kids, "%d 0 R ", n)
		objs = append(objs,
			fmt.Sprintf("<< /Type /Page /Parent 2 0 R /Resources 4 0 R /Contents %d 0 R >>", n+1),
			docStream("", fmt.Sprintf("BT /F%d 24 Tf 72 700 Td (Page %d) Tj ET", k, k)))
	}
	objs[1] = fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d /MediaBox [0 0 612 792] >>", kids.String(), pages)
	return pdfgen.Objects(objs)
}

// TestSharedResourcesKeepOnlyUsedNames: pages sharing one resource
// dictionary that names many fonts keep, each, the one font they use. The
// names are looked up in the dictionary when the page uses fewer than it
// holds (a page of a document whose shared dictionary named 250,000 fonts
// cost a tenth of a second of CPU, walking all of them;
// BenchmarkSharedResources measures it).
func TestSharedResourcesKeepOnlyUsedNames(t *testing.T) {
	const pages, fonts = 5, 2000
	pdf := sharedResources(pages, fonts)
	want := make([]string, pages)
	for k := range want {
		want[k] = fmt.Sprintf("Page %d", k+1)
	}
	d := checkTexts(t, pdf, want...)
	part := docExtract(t, d, 2, 3)
	for _, name := range []string{"/F2 ", "/F3 "} {
		if !bytes.Contains(part, []byte(name)) {
			t.Errorf("the part lost font %s, which its pages use", name)
		}
	}
	if n := bytes.Count(part, []byte("/F")); n > 2*2+4 {
		t.Errorf("the part of two pages names /F %d times: unused fonts of the shared dictionary were kept", n)
	}
}

// BenchmarkSharedResources extracts 50 pages whose shared resource
// dictionary names 250,000 fonts.
func BenchmarkSharedResources(b *testing.B) {
	pdf := sharedResources(50, 250_000)
	d, err := openBytes(pdf)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := d.Extract(context.Background(), 1, 50, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// TestObjStmCountClaim: an object stream's /N is a claim, and room is made
// for the pairs its data can hold. A 603-byte file whose two object
// streams (one page each) claimed 4,000,000 objects allocated 61 MiB for
// each (122 MiB in use: a 128 MiB worker killed); now under a MiB.
func TestObjStmCountClaim(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("%PDF-1.5\n")
	offs := map[int]int{}
	obj := func(n int, body string) { offs[n] = b.Len(); fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", n, body) }
	obj(1, "<< /Type /Catalog /Pages 2 0 R >>")
	obj(2, "<< /Type /Pages /Kids [3 0 R 4 0 R 3 0 R 4 0 R] /Count 4 /MediaBox [0 0 612 792] >>")
	for i, stm := range []int{10, 11} {
		head := fmt.Sprintf("%d 0 ", 3+i)
		data := head + "<< /Type /Page /Parent 2 0 R >>"
		obj(stm, fmt.Sprintf("<< /Type /ObjStm /N 4000000 /First %d /Length %d >>\nstream\n%s\nendstream", len(head), len(data), data))
	}
	// The cross-reference stream, object 12: /W [1 4 2].
	var xs bytes.Buffer
	entry := func(typ byte, f2 int) {
		xs.Write([]byte{typ, byte(f2 >> 24), byte(f2 >> 16), byte(f2 >> 8), byte(f2), 0, 0})
	}
	for n := 0; n <= 12; n++ {
		switch {
		case n == 3 || n == 4:
			entry(2, 10+n-3)
		case n == 12:
			entry(1, b.Len())
		case offs[n] > 0:
			entry(1, offs[n])
		default:
			entry(0, 0)
		}
	}
	x := b.Len()
	fmt.Fprintf(&b, "12 0 obj\n<< /Type /XRef /Size 13 /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n%s\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", xs.Len(), xs.Bytes(), x)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	d, err := openBytes(b.Bytes())
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if d.PageCount() != 4 {
		t.Fatalf("PageCount = %d, want 4", d.PageCount())
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("Open allocated %d MiB for a file of %d bytes", alloc>>20, b.Len())
	}
	if err := d.Extract(context.Background(), 1, 4, io.Discard); err != nil {
		t.Fatal(err)
	}
}
