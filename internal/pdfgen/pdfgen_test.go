package pdfgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"s3docs/internal/testenv"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	stdout, stderr := testenv.Run(t, name, args...)
	if name == "qpdf" && stderr != "" {
		t.Errorf("%s %s: unexpected stderr:\n%s", name, strings.Join(args, " "), stderr)
	}
	return stdout
}

// normalize reduces text to its non-empty lines with whitespace runs
// collapsed, which is what survives pdftotext.
func normalize(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			out = append(out, strings.Join(f, " "))
		}
	}
	return out
}

func writeFile(t *testing.T, o Options) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.pdf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Write(f, o)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != n {
		t.Fatalf("Write returned %d, file has %d bytes", n, fi.Size())
	}
	return path
}

func TestWithPDFTools(t *testing.T) {
	specials := func(i int) string {
		return fmt.Sprintf("Special page %d: (parens) \\backslash\\ )unbalanced(\n\tCafé — 50 € “quoted” ‘single’\n\nafter a blank line", i)
	}
	revise := func(i int) (string, bool) { return fmt.Sprintf("Revised page %d\nwith new text", i), i%3 == 2 }
	tests := []struct {
		name   string
		o      Options
		ranges [][2]int // pdftotext -f A -l B
	}{
		{"1page", Options{Pages: 1, Title: "One"}, [][2]int{{1, 1}}},
		{"3pages", Options{Pages: 3, Title: "Three"}, [][2]int{{1, 3}, {2, 3}, {2, 2}}},
		{"137pages", Options{Pages: 137, Title: "Brief"}, [][2]int{{1, 137}, {50, 60}, {137, 137}}},
		{"pad5MB", Options{Pages: 4, Title: "Padded", PadBytes: 5 << 20}, [][2]int{{1, 4}, {1, 1}}},
		{"specials", Options{Pages: 2, Title: "Spécial (title)", PageText: specials}, [][2]int{{1, 2}}},
		{"gen7", Options{Pages: 12, Title: "Gen", Generation: 7}, [][2]int{{1, 12}, {5, 6}}},
		{"shared", Options{Pages: 30, Title: "Shared", SharedResources: true, PadBytes: 10_000}, [][2]int{{1, 30}}},
		{"inherit-tree", Options{Pages: 100, Title: "Tree", Inherit: true, Fanout: 4, Links: true}, [][2]int{{1, 100}, {17, 18}, {100, 100}}},
		{"revised", Options{Pages: 10, Title: "Revised", Generation: 2, Revise: revise}, [][2]int{{1, 10}, {2, 2}}},
		{"page-images", Options{Pages: 20, Title: "Images", PageImageBytes: 30_000}, [][2]int{{1, 20}, {7, 8}}},
		{"page-images-last", Options{Pages: 20, Title: "Last", PageImageBytes: 30_000, PagesLast: true, Links: true}, [][2]int{{1, 20}}},
		{"page-images-tree", Options{Pages: 45, Title: "Tree", PageImageBytes: 5000, Fanout: 4, PagesLast: true, PadBytes: 2000}, [][2]int{{1, 45}}},
		{"everything", Options{Pages: 40, Title: "All", Generation: 1, SharedResources: true, Inherit: true, Fanout: 3,
			Links: true, PadBytes: 3000, Revise: revise}, [][2]int{{1, 40}, {11, 29}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tc.o)

			out := run(t, "qpdf", "--check", path)
			if !strings.Contains(out, "No syntax or stream encoding errors found") {
				t.Errorf("qpdf --check:\n%s", out)
			}

			info := run(t, "pdfinfo", path)
			m := regexp.MustCompile(`(?m)^Pages:\s+(\d+)$`).FindStringSubmatch(info)
			if m == nil || m[1] != strconv.Itoa(tc.o.Pages) {
				t.Errorf("pdfinfo: want Pages: %d, got:\n%s", tc.o.Pages, info)
			}
			if !strings.Contains(info, "Title:           "+tc.o.Title+"\n") {
				t.Errorf("pdfinfo: want Title %q, got:\n%s", tc.o.Title, info)
			}

			if tc.o.Inherit {
				box := run(t, "pdfinfo", "-f", "1", "-l", strconv.Itoa(tc.o.Pages), "-box", path)
				cb := InheritedCropBox()
				want := regexp.MustCompile(fmt.Sprintf(`(?m)^Page +\d+ CropBox: +%d\.00 +%d\.00 +%d\.00 +%d\.00$`, cb[0], cb[1], cb[2], cb[3]))
				if n := len(want.FindAllString(box, -1)); n != tc.o.Pages {
					t.Errorf("pdfinfo -box: %d pages with the crop box %v, want %d", n, cb, tc.o.Pages)
				}
			}
			if tc.o.Generation > 0 {
				pdf, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if n := bytes.Count(pdf, []byte(" 0 obj")) + bytes.Count(pdf, []byte(" 0 R")); n > 0 {
					t.Errorf("%d objects or references with generation 0", n)
				}
			}

			pageText := ExpectedText(tc.o)
			for _, r := range tc.ranges {
				a, b := r[0], r[1]
				txt := run(t, "pdftotext", "-f", strconv.Itoa(a), "-l", strconv.Itoa(b), "-enc", "UTF-8", path, "-")
				pages := strings.Split(txt, "\f")
				// Every page ends with a form feed, so the last piece is empty.
				if len(pages) != b-a+2 || strings.TrimSpace(pages[len(pages)-1]) != "" {
					t.Fatalf("pdftotext -f %d -l %d: want %d pages, got %d pieces", a, b, b-a+1, len(pages))
				}
				for i := a; i <= b; i++ {
					got, want := normalize(pages[i-a]), normalize(pageText(i))
					if strings.Join(got, "\n") != strings.Join(want, "\n") {
						t.Errorf("pdftotext -f %d -l %d, page %d:\ngot  %q\nwant %q", a, b, i, got, want)
					}
				}
			}
		})
	}
}

// checkStructure verifies, without external tools, that the trailer,
// startxref and every cross-reference entry point where they should.
func checkStructure(t *testing.T, pdf []byte, gen int) {
	t.Helper()
	if !bytes.HasPrefix(pdf, []byte("%PDF-1.4\n")) {
		t.Fatalf("bad header %q", pdf[:min(len(pdf), 16)])
	}
	if !bytes.HasSuffix(pdf, []byte("%%EOF\n")) {
		t.Fatalf("no %%%%EOF at the end")
	}
	m := regexp.MustCompile(`startxref\n(\d+)\n%%EOF\n$`).FindSubmatch(pdf)
	if m == nil {
		t.Fatal("no startxref")
	}
	xref, _ := strconv.Atoi(string(m[1]))
	rest := pdf[xref:]
	hm := regexp.MustCompile(`^xref\n0 (\d+)\n`).FindSubmatch(rest)
	if hm == nil {
		t.Fatalf("startxref %d does not point at an xref table: %q", xref, rest[:min(len(rest), 20)])
	}
	size, _ := strconv.Atoi(string(hm[1]))
	entries := rest[len(hm[0]):]
	if len(entries) < 20*size {
		t.Fatalf("xref table truncated")
	}
	inUse := 0
	for n := 0; n < size; n++ {
		e := string(entries[20*n : 20*n+20])
		if !regexp.MustCompile(`^\d{10} \d{5} [nf]\r\n$`).MatchString(e) {
			t.Fatalf("xref entry %d malformed: %q", n, e)
		}
		if e[17] == 'f' {
			continue
		}
		inUse++
		if g, _ := strconv.Atoi(e[11:16]); g != gen {
			t.Errorf("xref entry %d: generation %d, want %d", n, g, gen)
		}
		off, _ := strconv.Atoi(e[:10])
		want := fmt.Sprintf("%d %d obj\n", n, gen)
		if off >= len(pdf) || !bytes.HasPrefix(pdf[off:], []byte(want)) {
			t.Errorf("xref entry %d: offset %d does not start %q", n, off, want)
		}
	}
	if got := bytes.Count(pdf, []byte(fmt.Sprintf(" %d obj\n", gen))); got < inUse {
		t.Errorf("%d objects in use in xref, %d in file", inUse, got)
	}
	trailer := entries[20*size:]
	if !bytes.HasPrefix(trailer, []byte(fmt.Sprintf("trailer\n<< /Size %d ", size))) {
		t.Errorf("trailer does not follow xref with /Size %d: %q", size, trailer[:min(len(trailer), 40)])
	}
}

func TestStructure(t *testing.T) {
	for _, o := range []Options{
		{Pages: 1},
		{Pages: 10, Title: "Ten"},
		{Pages: 3, PadBytes: 1},
		{Pages: 2, PadBytes: 100_000},
		{Pages: 5, Generation: 9},
		{Pages: 50, Generation: 65534, SharedResources: true, Inherit: true, Fanout: 3, Links: true, PadBytes: 5000},
		{Pages: 7, PageImageBytes: 3000, PagesLast: true, Fanout: 2},
	} {
		t.Run(fmt.Sprintf("%d-%d-%d", o.Pages, o.PadBytes, o.Generation), func(t *testing.T) {
			pdf := Bytes(o)
			checkStructure(t, pdf, o.Generation)
			var buf bytes.Buffer
			n, err := Write(&buf, o)
			if err != nil || n != int64(len(pdf)) || !bytes.Equal(buf.Bytes(), pdf) {
				t.Errorf("Write = %d, %v; Bytes has %d bytes, equal=%v", n, err, len(pdf), bytes.Equal(buf.Bytes(), pdf))
			}
		})
	}
}

func TestPadSize(t *testing.T) {
	base := int64(len(Bytes(Options{Pages: 2})))
	for _, pad := range []int64{1, 1023, 1024, 1025, 5 << 20, 5<<20 + 1} {
		pdf := Bytes(Options{Pages: 2, PadBytes: pad})
		m := regexp.MustCompile(`/Length (\d+) >>\nstream\n`).FindSubmatch(pdf) // the pad is the first stream
		if m == nil {
			t.Fatalf("pad %d: no stream", pad)
		}
		length, _ := strconv.ParseInt(string(m[1]), 10, 64)
		if length < pad || length >= pad+padWidth {
			t.Errorf("pad %d: stream /Length %d", pad, length)
		}
		if extra := int64(len(pdf)) - base; extra < length || extra > length+400 {
			t.Errorf("pad %d: file grew by %d for a %d-byte stream", pad, extra, length)
		}
	}
}

func TestDeterministic(t *testing.T) {
	o := Options{Pages: 5, Title: "Same", PadBytes: 10_000}
	if !bytes.Equal(Bytes(o), Bytes(o)) {
		t.Error("same options gave different bytes")
	}
	all := Options{Pages: 20, Generation: 3, SharedResources: true, Inherit: true, Fanout: 4, Links: true,
		Revise: func(i int) (string, bool) { return "new", i == 7 }}
	if !bytes.Equal(Bytes(all), Bytes(all)) {
		t.Error("same options (all of them) gave different bytes")
	}
	// A Revise that revises nothing writes no update.
	noop := Options{Pages: 3, Revise: func(int) (string, bool) { return "", false }}
	if !bytes.Equal(Bytes(noop), Bytes(Options{Pages: 3})) {
		t.Error("a Revise revising no page changed the output")
	}
	id := regexp.MustCompile(`/ID \[<([0-9a-f]+)>`)
	a := id.FindSubmatch(Bytes(Options{Pages: 1, Title: "A"}))
	b := id.FindSubmatch(Bytes(Options{Pages: 1, Title: "B"}))
	if a == nil || b == nil || bytes.Equal(a[1], b[1]) {
		t.Errorf("IDs of different documents: %q, %q", a, b)
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, o := range []Options{{Pages: 0}, {Pages: -1}, {Pages: 1, PadBytes: -1},
		{Pages: 1, Generation: -1}, {Pages: 1, Generation: 65535}, {Pages: 1, Fanout: -1}, {Pages: 1, PageImageBytes: -1}} {
		if n, err := Write(io.Discard, o); err == nil || n != 0 {
			t.Errorf("Write(%+v) = %d, %v; want an error", o, n, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Bytes(Pages: 0) did not panic")
		}
	}()
	Bytes(Options{})
}

type failAfter struct{ left int }

var errFull = errors.New("disk full")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n := f.left
		f.left = 0
		return n, errFull
	}
	f.left -= len(p)
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	n, err := Write(&failAfter{left: 100_000}, Options{Pages: 3, PadBytes: 1 << 20})
	if !errors.Is(err, errFull) || n != 100_000 {
		t.Errorf("Write = %d, %v; want 100000, %v", n, err, errFull)
	}
}

// TestStreamingMemory checks that a big pad is streamed, not buffered.
func TestStreamingMemory(t *testing.T) {
	const pad = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, err := Write(io.Discard, Options{Pages: 3, PadBytes: pad})
	runtime.ReadMemStats(&after)
	if err != nil || n < pad {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("writing a %d MiB pad allocated %d bytes", pad>>20, alloc)
	}
}

func TestEncodings(t *testing.T) {
	if got := literal([]byte("a(b)c\\d\n")); got != `(a\(b\)c\\d\012)` {
		t.Errorf("literal = %s", got)
	}
	if got := string(winAnsi("é€—\tx☃")); got != "\xe9\x80\x97 x?" {
		t.Errorf("winAnsi = %q", got)
	}
	if got := textString("Plain (title)"); got != `(Plain \(title\))` {
		t.Errorf("textString ascii = %s", got)
	}
	if got := textString("é😀"); got != "<FEFF00E9D83DDE00>" {
		t.Errorf("textString utf16 = %s", got)
	}
}

// TestPageImages checks the layout PageImageBytes and PagesLast make: an
// image of its own for every page, used by its content and different from
// the others', and the page dictionaries where PagesLast puts them.
func TestPageImages(t *testing.T) {
	for _, last := range []bool{false, true} {
		pdf := Bytes(Options{Pages: 5, PageImageBytes: 4096, PagesLast: last})
		if n := bytes.Count(pdf, []byte("/Subtype /Image")); n != 5 {
			t.Errorf("PagesLast=%v: %d images, want 5", last, n)
		}
		if n := bytes.Count(pdf, []byte("/Im1 Do")); n != 5 {
			t.Errorf("PagesLast=%v: %d contents draw the image, want 5", last, n)
		}
		firstPage := bytes.Index(pdf, []byte("/Type /Page "))
		lastImage := bytes.LastIndex(pdf, []byte("/Subtype /Image"))
		if (firstPage > lastImage) != last {
			t.Errorf("PagesLast=%v: first page dictionary at %d, last image at %d", last, firstPage, lastImage)
		}
		streams := regexp.MustCompile(`(?s)/Subtype /Image[^>]*>>\nstream\n(.{64})`).FindAllSubmatch(pdf, -1)
		if len(streams) != 5 || bytes.Equal(streams[0][1], streams[1][1]) {
			t.Errorf("PagesLast=%v: images are not different", last)
		}
	}
}
