package pdfdoc

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"s3docs/internal/pdfgen"
	"s3docs/internal/testenv"
)

// docTool runs an external program and returns its standard output. It fails
// the test on a non-zero exit and on anything qpdf writes to standard error:
// qpdf reports repairs (a damaged xref, a wrong /Length) as warnings with
// exit status 3, and no part may need repairing, so no qpdf warning counts as
// benign. poppler's standard error is judged separately (docPopplerClean),
// and only for parts: sources may carry the oddities a test is about.
func docTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	stdout, stderr := testenv.Run(t, name, args...)
	docToolStderr(t, name, args, stderr)
	return stdout
}

// docAsk is docTool, with standard error too, for a run that writes no
// files, answered from toolAnswers when the program was asked the same of
// the same bytes before.
func docAsk(t testing.TB, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	path := testenv.Tool(t, name)
	r := toolAnswers.ask(path, args, func() (diffRun, bool) {
		cmd := testenv.Command(path, args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return diffRun{stdout: out.String(), stderr: errOut.String(), err: err}, err == nil
	})
	if r.err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	docToolStderr(t, name, args, r.stderr)
	return r.stdout, r.stderr
}

func docToolStderr(t testing.TB, name string, args []string, stderr string) {
	t.Helper()
	if name == "qpdf" && stderr != "" {
		t.Fatalf("%s %s: warnings:\n%s", name, strings.Join(args, " "), stderr)
	}
	popplerDataPresent(t, stderr)
}

// popplerDataPresent fails the test when poppler says it lacks the CMaps of
// Debian's poppler-data: its text of CJK documents is then wrong, and the
// fault is the machine's, so the message says what to install.
func popplerDataPresent(t testing.TB, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "Missing language pack") {
		t.Fatalf("poppler lacks its language data (install the Debian package poppler-data; scripts/test.sh does):\n%s", stderr)
	}
}

// docPopplerClean fails the test if poppler reports a syntax error or
// warning while extracting the text of path (say, a link to a null page:
// "Bad annotation destination"). Its other notes, about fonts and the like,
// concern the reader's environment, not the file.
func docPopplerClean(t testing.TB, path string) {
	t.Helper()
	_, stderr := docAsk(t, "pdftotext", path, os.DevNull)
	if strings.Contains(stderr, "Syntax ") {
		t.Errorf("pdftotext %s:\n%s", filepath.Base(path), stderr)
	}
}

// docQpdfCheck runs qpdf --check on path, which must pass without a warning.
func docQpdfCheck(t testing.TB, path string) string {
	t.Helper()
	out, _ := docAsk(t, "qpdf", "--check", path)
	if !strings.Contains(out, "No syntax or stream encoding errors found") {
		t.Fatalf("qpdf --check %s:\n%s", path, out)
	}
	return out
}

var (
	docPagesLine = regexp.MustCompile(`(?m)^Pages:\s+(\d+)$`)
	docTitleLine = regexp.MustCompile(`(?m)^Title:\s+(.*)$`)
)

func docInfoTitle(t testing.TB, path string) string {
	t.Helper()
	out, _ := docAsk(t, "pdfinfo", path)
	if m := docTitleLine.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

func docPdfinfoPages(t testing.TB, path string) int {
	t.Helper()
	out, _ := docAsk(t, "pdfinfo", path)
	m := docPagesLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pdfinfo %s: no Pages line", path)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// docPageTexts returns pdftotext's text of pages from..thru of path, one string
// per page, with trailing white space of every line and trailing empty lines
// removed: those depend on layout details (and page order within the run),
// not on the page's content.
func docPageTexts(t testing.TB, path string, from, thru int) []string {
	t.Helper()
	out, _ := docAsk(t, "pdftotext", "-f", strconv.Itoa(from), "-l", strconv.Itoa(thru), "-enc", "UTF-8", path, "-")
	pages := strings.Split(out, "\f")
	// Every page ends with a form feed, so the last piece is empty.
	if len(pages) != thru-from+2 || strings.TrimSpace(pages[len(pages)-1]) != "" {
		t.Fatalf("pdftotext -f %d -l %d %s: want %d pages, got %d pieces", from, thru, path, thru-from+1, len(pages)-1)
	}
	pages = pages[:len(pages)-1]
	for i, p := range pages {
		lines := strings.Split(p, "\n")
		for j := range lines {
			lines[j] = strings.TrimRight(lines[j], " \t\r")
		}
		pages[i] = strings.TrimRight(strings.Join(lines, "\n"), "\n")
	}
	return pages
}

// docWords reduces text to its words, which is what survives of pdfgen's lines.
func docWords(s string) string { return strings.Join(strings.Fields(s), " ") }

func docWriteFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// docQpdfConvert writes qpdf's rewrite of src with args to a new file.
func docQpdfConvert(t testing.TB, src, name string, args ...string) string {
	t.Helper()
	out := filepath.Join(filepath.Dir(src), name)
	docTool(t, "qpdf", append(append(args, src), out)...)
	return out
}

// docOpenFile opens a PDF file; the file stays open until the test ends,
// since a Doc reads its source lazily.
func docOpenFile(t testing.TB, path string) *Doc {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(context.Background(), f, fi.Size(), Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return d
}

// openBytes opens a PDF held in memory.
func openBytes(b []byte) (*Doc, error) {
	return Open(context.Background(), bytes.NewReader(b), int64(len(b)), Options{})
}

func docExtract(t testing.TB, d *Doc, from, thru int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := d.Extract(context.Background(), from, thru, &buf); err != nil {
		t.Fatalf("Extract(%d, %d): %v", from, thru, err)
	}
	return buf.Bytes()
}

// docNonZeroGen matches an object header or a reference with a generation
// number above 0.
var docNonZeroGen = regexp.MustCompile(`(?m)(^\d+ [1-9]\d* obj\b)|(\b\d+ [1-9]\d* R\b)`)

// docCheckPart checks a part the way an independent reader sees it: qpdf finds
// nothing to repair, pdfinfo counts thru-from+1 pages, and pdftotext gives
// every page the same text as the source's page (and, for generated sources,
// the text the generator put there, so that a source read wrongly by both
// cannot pass).
func docCheckPart(t testing.TB, src, part string, from, thru int, want func(int) string) {
	t.Helper()
	docQpdfCheck(t, part)
	docPopplerClean(t, part)
	if n := docPdfinfoPages(t, part); n != thru-from+1 {
		t.Errorf("%s: pdfinfo says %d pages, want %d", filepath.Base(part), n, thru-from+1)
	}
	got := docPageTexts(t, part, 1, thru-from+1)
	exp := docPageTexts(t, src, from, thru)
	for i := range got {
		if got[i] != exp[i] {
			t.Errorf("%s: page %d (source page %d):\ngot  %q\nwant %q", filepath.Base(part), i+1, from+i, got[i], exp[i])
		}
		if want != nil && docWords(got[i]) != docWords(want(from+i)) {
			t.Errorf("%s: page %d (source page %d):\ngot  %q\nwant %q (generated)", filepath.Base(part), i+1, from+i, docWords(got[i]), docWords(want(from+i)))
		}
	}
	if got, want := docInfoTitle(t, part), docInfoTitle(t, src); got != want {
		t.Errorf("%s: title %q, source's %q", filepath.Base(part), got, want)
	}
	b, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	if m := docNonZeroGen.Find(b); m != nil {
		t.Errorf("%s: generation above 0: %q", filepath.Base(part), m)
	}
}

// docSource is a PDF for TestExtract: generated by pdfgen and possibly
// rewritten by qpdf.
type docSource struct {
	name   string
	o      pdfgen.Options
	qpdf   []string // qpdf arguments to rewrite the generated file with
	marks  []string // strings the source must contain (proof of its kind)
	ranges [][2]int
}

func TestExtract(t *testing.T) {
	revise := func(i int) (string, bool) {
		return fmt.Sprintf("Revised page %d\nThis text replaced the original in an incremental update.", i), i%9 == 4
	}
	sources := []docSource{
		{name: "shared-resources-1200", o: pdfgen.Options{Pages: 1200, Title: "Shared", SharedResources: true, PadBytes: 1 << 20},
			marks:  []string{"/Resources 2407 0 R"},
			ranges: [][2]int{{1, 50}, {51, 100}, {1151, 1200}, {600, 600}, {1, 1200}}},
		{name: "inherited-tree-links", o: pdfgen.Options{Pages: 150, Title: "Tree", Inherit: true, Fanout: 6, Links: true, PadBytes: 200_000},
			ranges: [][2]int{{1, 1}, {7, 36}, {145, 150}}},
		{name: "object-streams", o: pdfgen.Options{Pages: 300, Title: "ObjStm", SharedResources: true, Links: true},
			qpdf:   []string{"--object-streams=generate"},
			marks:  []string{"/ObjStm", "/XRef"},
			ranges: [][2]int{{1, 50}, {251, 300}, {123, 124}}},
		{name: "incremental-update", o: pdfgen.Options{Pages: 80, Title: "Updated", Revise: revise},
			marks:  []string{"/Prev"},
			ranges: [][2]int{{1, 10}, {4, 4}, {70, 80}}},
		{name: "linearized", o: pdfgen.Options{Pages: 200, Title: "Linear", Inherit: true, Fanout: 10, Links: true},
			qpdf:   []string{"--linearize"},
			marks:  []string{"/Linearized"},
			ranges: [][2]int{{1, 1}, {2, 50}, {151, 200}}},
		{name: "owner-password-aes256", o: pdfgen.Options{Pages: 120, Title: "Owner"},
			qpdf:   []string{"--encrypt", "", "ownerpw", "256", "--"},
			marks:  []string{"/Encrypt"},
			ranges: [][2]int{{1, 50}, {100, 120}}},
		{name: "owner-password-aes256-restricted", o: pdfgen.Options{Pages: 20, Title: "Restricted", SharedResources: true},
			qpdf:   []string{"--encrypt", "", "ownerpw", "256", "--extract=n", "--modify=none", "--print=none", "--"},
			marks:  []string{"/Encrypt"},
			ranges: [][2]int{{3, 7}}},
		{name: "owner-password-aes128", o: pdfgen.Options{Pages: 30, Title: "AES128", Inherit: true},
			qpdf:   []string{"--encrypt", "", "ownerpw", "128", "--use-aes=y", "--"},
			marks:  []string{"/Encrypt"},
			ranges: [][2]int{{1, 30}, {15, 16}}},
		{name: "owner-password-rc4", o: pdfgen.Options{Pages: 30, Title: "RC4"},
			qpdf:   []string{"--allow-weak-crypto", "--encrypt", "", "ownerpw", "128", "--use-aes=n", "--"},
			marks:  []string{"/Encrypt"},
			ranges: [][2]int{{2, 29}}},
		{name: "generation-5", o: pdfgen.Options{Pages: 60, Title: "Gen", Generation: 5, SharedResources: true, Links: true},
			marks:  []string{"1 5 obj", "2 5 R"},
			ranges: [][2]int{{1, 60}, {30, 31}, {60, 60}}},
		{name: "generation-2-inherited-updated", o: pdfgen.Options{Pages: 90, Title: "Everything", Generation: 2,
			Inherit: true, Fanout: 4, Links: true, PadBytes: 100_000, Revise: revise},
			marks:  []string{"1 2 obj", "/Prev"},
			ranges: [][2]int{{1, 90}, {4, 13}, {85, 90}}},
		{name: "object-streams-linearized-encrypted", o: pdfgen.Options{Pages: 100, Title: "Combined", SharedResources: true, Revise: revise},
			qpdf:   []string{"--object-streams=generate", "--linearize", "--encrypt", "", "ownerpw", "256", "--"},
			marks:  []string{"/Linearized", "/Encrypt"},
			ranges: [][2]int{{1, 100}, {4, 4}, {50, 99}}},
	}
	for _, s := range sources {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := docWriteFile(t, dir, "generated.pdf", pdfgen.Bytes(s.o))
			if s.qpdf != nil {
				src = docQpdfConvert(t, src, "source.pdf", s.qpdf...)
			}
			// The source itself must be sound, or a failure says nothing
			// about the splitter.
			docQpdfCheck(t, src)
			raw, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range s.marks {
				if !bytes.Contains(raw, []byte(m)) {
					t.Fatalf("source does not contain %q: not the kind of PDF this case is about", m)
				}
			}
			if n := docPdfinfoPages(t, src); n != s.o.Pages {
				t.Fatalf("source: pdfinfo says %d pages, want %d", n, s.o.Pages)
			}

			d := docOpenFile(t, src)
			if d.PageCount() != s.o.Pages {
				t.Fatalf("PageCount = %d, want %d", d.PageCount(), s.o.Pages)
			}
			var first []byte
			for k, r := range s.ranges {
				part := docExtract(t, d, r[0], r[1])
				if k == 0 {
					first = part
				}
				path := docWriteFile(t, dir, fmt.Sprintf("part-%d-%d.pdf", r[0], r[1]), part)
				docCheckPart(t, src, path, r[0], r[1], pdfgen.ExpectedText(s.o))
				if bytes.Contains(part, []byte("/Image")) {
					t.Errorf("part %d-%d (%d bytes) has an image: the unused pad was copied", r[0], r[1], len(part))
				}
				if perPage := len(part) / (r[1] - r[0] + 1); perPage > 4000 {
					t.Errorf("part %d-%d has %d bytes a page: more than its pages were copied", r[0], r[1], perPage)
				}
				if s.o.Inherit {
					docCheckCropBoxes(t, path, r[1]-r[0]+1)
				}
			}
			// Later extractions must not have changed what the first one sees.
			if again := docExtract(t, d, s.ranges[0][0], s.ranges[0][1]); !bytes.Equal(again, first) {
				t.Errorf("extracting pages %v again gave different bytes (%d bytes, first %d)", s.ranges[0], len(again), len(first))
			}
		})
	}
}

// docCheckCropBoxes checks that every page of a part kept the crop box that
// pdfgen's Inherit puts on the root of the page tree.
func docCheckCropBoxes(t testing.TB, path string, pages int) {
	t.Helper()
	cb := pdfgen.InheritedCropBox()
	want := regexp.MustCompile(fmt.Sprintf(`(?m)^Page +\d+ CropBox: +%d\.00 +%d\.00 +%d\.00 +%d\.00$`, cb[0], cb[1], cb[2], cb[3]))
	box := docTool(t, "pdfinfo", "-f", "1", "-l", strconv.Itoa(pages), "-box", path)
	if n := len(want.FindAllString(box, -1)); n != pages {
		t.Errorf("%s: %d of %d pages have the inherited crop box %v", filepath.Base(path), n, pages, cb)
	}
}

func TestExtractIsReproducible(t *testing.T) {
	t.Run("generated", func(t *testing.T) {
		docTestReproducible(t, pdfgen.Bytes(pdfgen.Options{Pages: 40, SharedResources: true, Links: true, Generation: 1}), 5, 25)
	})
	t.Run("handmade", func(t *testing.T) { docTestReproducible(t, docHandmadePDF(), 1, 2) })
}

func docTestReproducible(t *testing.T, src []byte, from, thru int) {
	d, err := openBytes(src)
	if err != nil {
		t.Fatal(err)
	}
	a := docExtract(t, d, from, thru)
	for range 10 {
		b := docExtract(t, d, from, thru)
		if !bytes.Equal(a, b) {
			t.Fatalf("two extractions of one range: %d and %d bytes, not the same", len(a), len(b))
		}
	}
	// Reopening reads afresh: the same bytes. No date, no random /ID, no
	// map order reaches a part.
	d2, err := openBytes(src)
	if err != nil {
		t.Fatal(err)
	}
	if b := docExtract(t, d2, from, thru); !bytes.Equal(a, b) {
		t.Fatalf("extraction after reopening: %d bytes, before %d, not the same", len(b), len(a))
	}
}

func TestOpenErrors(t *testing.T) {
	good := pdfgen.Bytes(pdfgen.Options{Pages: 30, Title: "Good", SharedResources: true, PadBytes: 50_000})
	for _, tc := range []struct {
		name string
		data []byte
		want error // nil: any error
	}{
		{"empty", nil, ErrNotPDF},
		{"text", []byte("hello, world\n"), ErrNotPDF},
		{"html", []byte("<!DOCTYPE html><html><body>Not found</body></html>"), ErrNotPDF},
		{"zip", append([]byte("PK\x03\x04"), bytes.Repeat([]byte{0}, 5000)...), ErrNotPDF},
		{"header-only", []byte("%PDF-1.7\n"), nil},
		{"header-and-eof", []byte("%PDF-1.7\ngarbage\n%%EOF\n"), nil},
		{"truncated-10%", good[:len(good)/10], nil},
		{"truncated-50%", good[:len(good)/2], nil},
		{"truncated-99%", good[:len(good)*99/100], nil},
		{"truncated-last-byte-of-eof", good[:len(good)-2], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := openBytes(tc.data)
			if err == nil {
				t.Fatalf("Open succeeded with %d pages", d.PageCount())
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Open: %v; want %v", err, tc.want)
			}
			if tc.want == nil && errors.Is(err, ErrNotPDF) {
				t.Errorf("Open: %v; a damaged PDF is not ErrNotPDF", err)
			}
		})
	}
}

func TestOpenEncrypted(t *testing.T) {
	dir := t.TempDir()
	src := docWriteFile(t, dir, "plain.pdf", pdfgen.Bytes(pdfgen.Options{Pages: 5, Title: "Secret"}))
	for _, tc := range []struct {
		name string
		args []string
		want error // nil: opens
	}{
		{"user-aes256", []string{"--encrypt", "userpw", "ownerpw", "256", "--"}, ErrEncrypted},
		{"user-same-as-owner", []string{"--encrypt", "pw", "pw", "256", "--"}, ErrEncrypted},
		{"user-aes128", []string{"--encrypt", "userpw", "ownerpw", "128", "--use-aes=y", "--"}, ErrEncrypted},
		{"owner-only", []string{"--encrypt", "", "ownerpw", "256", "--"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := docQpdfConvert(t, src, tc.name+".pdf", tc.args...)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			d, err := Open(context.Background(), f, fi.Size(), Options{})
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Open: %v", err)
			case tc.want == nil:
				part := docWriteFile(t, dir, tc.name+"-part.pdf", docExtract(t, d, 2, 4))
				docCheckPart(t, path, part, 2, 4, nil)
				if info := docTool(t, "pdfinfo", part); !strings.Contains(info, "Encrypted:       no") {
					t.Errorf("part is encrypted:\n%s", info)
				}
			case !errors.Is(err, tc.want):
				t.Fatalf("Open: %v; want %v", err, tc.want)
			}
		})
	}
}

// TestEncryptionLengthMissing: an RC4 file whose /Length is missing (a
// producer that spelled it /Wength, as in qpdf's own tests) is 128 bits to
// qpdf, 40 to the standard (and poppler): the empty password's key tells
// which.
func TestEncryptionLengthMissing(t *testing.T) {
	dir := t.TempDir()
	src := docWriteFile(t, dir, "plain.pdf", pdfgen.Bytes(pdfgen.Options{Pages: 3, Title: "Secret"}))
	enc := docQpdfConvert(t, src, "rc4.pdf", "--allow-weak-crypto", "--encrypt", "", "owner", "128", "--use-aes=n", "--")
	b, err := os.ReadFile(enc)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b, []byte("/Length 128")) != 1 {
		t.Fatalf("qpdf wrote /Length 128 %d times", bytes.Count(b, []byte("/Length 128")))
	}
	path := docWriteFile(t, dir, "wength.pdf", bytes.Replace(b, []byte("/Length 128"), []byte("/Wength 128"), 1))
	d := docOpenFile(t, path)
	part := docWriteFile(t, dir, "part.pdf", docExtract(t, d, 1, 3))
	// poppler takes the standard's 40 bits and cannot read the source:
	// the part is compared with the file before encryption.
	docCheckPart(t, src, part, 1, 3, nil)
}

func TestExtractPageRange(t *testing.T) {
	d, err := openBytes(pdfgen.Bytes(pdfgen.Options{Pages: 10}))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int{{0, 1}, {-1, 3}, {0, 0}, {5, 4}, {10, 11}, {11, 11}, {1, 100}} {
		var buf bytes.Buffer
		if err := d.Extract(context.Background(), r[0], r[1], &buf); !errors.Is(err, ErrPageRange) {
			t.Errorf("Extract(%d, %d) = %v; want ErrPageRange", r[0], r[1], err)
		}
		if buf.Len() > 0 {
			t.Errorf("Extract(%d, %d) wrote %d bytes", r[0], r[1], buf.Len())
		}
	}
	for _, r := range [][2]int{{1, 1}, {10, 10}, {1, 10}} {
		if err := d.Extract(context.Background(), r[0], r[1], &bytes.Buffer{}); err != nil {
			t.Errorf("Extract(%d, %d) = %v", r[0], r[1], err)
		}
	}
}

func TestOpenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := pdfgen.Bytes(pdfgen.Options{Pages: 50})
	if _, err := Open(ctx, bytes.NewReader(b), int64(len(b)), Options{}); err == nil {
		t.Error("Open with a canceled context succeeded")
	}
}

// TestCorruptInput damages a valid PDF in many ways; Open and Extract must
// return (an error or a result), never panic.
func TestCorruptInput(t *testing.T) {
	good := pdfgen.Bytes(pdfgen.Options{Pages: 6, Title: "Fragile", SharedResources: true, Inherit: true, Fanout: 2, Links: true, Generation: 1})
	rng := rand.New(rand.NewPCG(1, 2))
	opened := 0
	for i := range 300 {
		b := bytes.Clone(good)
		switch i % 3 {
		case 0: // overwrite a few bytes
			for range 1 + rng.IntN(8) {
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
			}
		case 1: // delete a span, keeping the trailer in place
			at := rng.IntN(len(b) - 200)
			b = append(b[:at], b[at+1+rng.IntN(100):]...)
		case 2: // replace a token-ish span with a digit run
			at := rng.IntN(len(b) - 20)
			copy(b[at:], strconv.Itoa(rng.IntN(1<<30)))
		}
		d, err := openBytes(b)
		if err != nil {
			continue
		}
		opened++
		for from := 1; from <= d.PageCount(); from += 2 {
			_ = d.Extract(context.Background(), from, min(from+1, d.PageCount()), &bytes.Buffer{})
		}
	}
	t.Logf("%d of 300 damaged files opened", opened)
}

// TestExtractHandmade covers what pdfgen does not write: a /Contents array
// split inside a text object without white space at the boundary, literal
// strings with balanced parentheses, a form XObject without resources of its
// own, an inline image, a name with # escapes, a widget with a parent field,
// links inside and outside the part, an unused image in the shared
// resources, an inherited /Rotate, optional content hidden by default, and a
// Type 3 font without resources whose glyph uses a font of the page's.
func TestExtractHandmade(t *testing.T) {
	dir := t.TempDir()
	src := docWriteFile(t, dir, "handmade.pdf", docHandmadePDF())
	docQpdfCheck(t, src)
	d := docOpenFile(t, src)
	if d.PageCount() != 2 {
		t.Fatalf("PageCount = %d", d.PageCount())
	}
	texts := docPageTexts(t, src, 1, 2)
	for _, w := range []string{"Nested (balanced) parens, an escaped ) and 100%", "Second font", "In the form"} {
		if !strings.Contains(texts[0], w) {
			t.Fatalf("source page 1 lacks %q: %q", w, texts[0])
		}
	}
	if strings.Contains(texts[1], "Hidden") || !strings.Contains(texts[1], "Page two") {
		t.Fatalf("source page 2: %q", texts[1])
	}
	for _, r := range [][2]int{{1, 1}, {2, 2}, {1, 2}} {
		part := docExtract(t, d, r[0], r[1])
		path := docWriteFile(t, dir, fmt.Sprintf("part-%d-%d.pdf", r[0], r[1]), part)
		docCheckPart(t, src, path, r[0], r[1], nil)
		if bytes.Contains(part, []byte("/Image")) {
			t.Errorf("part %v: %d bytes; the unused image was copied", r, len(part))
		}
		links := bytes.Count(part, []byte("/Link"))
		if want := map[[2]int]int{{1, 1}: 0, {2, 2}: 0, {1, 2}: 2}[r]; links != want {
			t.Errorf("part %v has %d links, want %d (links out of the part are dropped)", r, links, want)
		}
		if courier := bytes.Contains(part, []byte("/Courier")); courier != (r[0] == 1) {
			t.Errorf("part %v: Courier (used on page 1 only) present = %v", r, courier)
		}
		if times := bytes.Contains(part, []byte("/Times-Roman")); times != (r[1] == 2) {
			t.Errorf("part %v: Times-Roman (used by page 2's Type 3 font) present = %v", r, times)
		}
		if r[0] == 1 && (!bytes.Contains(part, []byte("/Widget")) || !bytes.Contains(part, []byte("/FT/Tx")) || bytes.Count(part, []byte("/Kids")) != 1 ||
			bytes.Count(part, []byte("/Parent")) != r[1]-r[0]+1) {
			t.Errorf("part %v: want the widget merged with its field, without a parent", r)
		}
		if n := strings.Count(docTool(t, "pdfinfo", "-f", "1", "-l", "2", path), "rot:   90"); n != r[1]-r[0]+1 {
			t.Errorf("part %v: %d pages with the inherited rotation", r, n)
		}
	}
}

// docHandmadePDF is the two-page PDF of TestExtractHandmade.
func docHandmadePDF() []byte {
	objs := []string{
		/* 1 */ "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [9 0 R] >> /Lang (en-US)" +
			" /OCProperties << /OCGs [17 0 R] /D << /Order [17 0 R] /OFF [17 0 R] >> >> >>",
		/* 2 */ "<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 /Resources 5 0 R /MediaBox [0 0 612 792] /Rotate 90 >>",
		/* 3 */ "<< /Type /Page /Parent 2 0 R /Contents [6 0 R 7 0 R] /Annots [8 0 R 10 0 R] >>",
		/* 4 */ "<< /Type /Page /Parent 2 0 R /Contents 11 0 R /Annots [<< /Type /Annot /Subtype /Link /Rect [0 0 10 10] /A << /S /GoTo /D [3 0 R /Fit] >> >>] >>",
		/* 5 */ "<< /Font << /F1 12 0 R /F2 13 0 R /F#233 12 0 R /Unused 13 0 R /T3 18 0 R /F3 20 0 R >> /XObject << /Fm1 14 0 R /Im1 15 0 R >>" +
			" /Properties << /oc1 17 0 R >> /ProcSet [/PDF /Text] >>",
		/* 6 */ docStream("", "BT /F1 12 Tf 72 700 Td (Nested (balanced) parens, an escaped \\) and 100%) Tj ET\nBT /F2 10 Tf"),
		/* 7 */ docStream("", "72 680 Td (Second font) Tj ET q /Fm1 Do Q"),
		/* 8 */ "<< /Type /Annot /Subtype /Widget /Rect [72 500 272 520] /P 3 0 R /Parent 9 0 R /AP << /N 16 0 R >> >>",
		/* 9 */ "<< /FT /Tx /T (name) /V (Field value) /Kids [8 0 R] >>",
		/* 10 */ "<< /Type /Annot /Subtype /Link /Rect [72 400 272 420] /Dest [4 0 R /Fit] >>",
		/* 11 */ docStream("", "q 20 0 0 10 72 600 cm BI /W 2 /H 1 /BPC 8 /CS /G ID \x00/ EI Q BT /F#233 12 Tf 72 700 Td (Page two) Tj ET"+
			" /OC /oc1 BDC BT /F1 12 Tf 72 650 Td (Hidden text) Tj ET EMC BT /T3 12 Tf 72 620 Td (a) Tj ET"),
		/* 12 */ "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		/* 13 */ "<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>",
		/* 14 */ docStream("/Type /XObject /Subtype /Form /BBox [0 0 612 792]", "BT /F1 9 Tf 72 600 Td (In the form) Tj ET"),
		/* 15 */ docStream("/Type /XObject /Subtype /Image /Width 1000 /Height 100 /ColorSpace /DeviceGray /BitsPerComponent 8",
			strings.Repeat("\xff\x00", 50_000)),
		/* 16 */ docStream("/Type /XObject /Subtype /Form /BBox [0 0 200 20] /Resources << /Font << /F1 12 0 R >> >>", "BT /F1 10 Tf 2 5 Td (Field value) Tj ET"),
		/* 17 */ "<< /Type /OCG /Name (Hidden layer) >>",
		/* 18 */ "<< /Type /Font /Subtype /Type3 /FontBBox [0 0 1000 1000] /FontMatrix [0.001 0 0 0.001 0 0] /CharProcs << /a 19 0 R >>" +
			" /Encoding << /Type /Encoding /Differences [97 /a] >> /FirstChar 97 /LastChar 97 /Widths [1000] >>",
		/* 19 */ docStream("", "1000 0 d0 BT /F3 800 Tf 0 0 Td (a) Tj ET"),
		/* 20 */ "<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding /WinAnsiEncoding >>",
	}
	return pdfgen.Objects(objs)
}

// docStream returns a stream object with the given extra dictionary entries.
func docStream(dict, data string) string {
	return fmt.Sprintf("<< %s /Length %d >>\nstream\n%s\nendstream", dict, len(data), data)
}

func TestScanNames(t *testing.T) {
	flate := func(data string) string {
		var b bytes.Buffer
		z := zlib.NewWriter(&b)
		z.Write([]byte(data))
		z.Close()
		return b.String()
	}
	// A JPEG in its structure (start, a table segment, a scan, end) with
	// entropy-coded data that holds " EI (" and a stuffed 0xFF.
	jpeg := "\xff\xd8\xff\xdb\x00\x04ab\xff\xda\x00\x02 EI (\xff\x00x\xff\xd0y\xff\xd9"
	for _, tc := range []struct {
		content string
		want    []string
		ok      bool
	}{
		{"BT /F1 12 Tf (x) Tj ET", []string{"F1"}, true},
		{"/F1 12 Tf/F2 9 Tf", []string{"F1", "F2"}, true},
		{"(a (nested /NotA) b) Tj /F3 1 Tf", []string{"F3"}, true},
		{`(escaped \) /NotB \\) Tj /F4 1 Tf`, []string{"F4"}, true},
		{"<2F4E6F74> Tj <</MCID 3>> BDC /GS1 gs", []string{"MCID", "GS1"}, true},
		{"% a comment /NotC\n/Im1 Do", []string{"Im1"}, true},
		{"/A#20B#2 sh", []string{"A#20B#2", "A B#2"}, true},
		{"[(a) -20 (b)] TJ /P0 scn /Sh1 sh /OC /oc1 BDC EMC", []string{"P0", "Sh1", "OC", "oc1"}, true},
		// Inline images, skipped by their real length: data that holds
		// " EI" and a "(" that would hide what follows.
		{"BI /W 5 /H 1 /BPC 8 /CS /G ID a EI( EI /F2 12 Tf (x) Tj", []string{"W", "H", "BPC", "CS", "G", "F2"}, true},
		{"BI /W 2 /H 3 /BPC 4 /CS /RGB ID \x00 EI (x EI /F3 Tf", []string{"W", "H", "BPC", "CS", "RGB", "F3"}, true},
		{"BI /IM true /W 9 /H 2 ID ( EI EI /F3 Tf", []string{"IM", "W", "H", "F3"}, true},
		{"BI /Width 4 /Height 1 /BitsPerComponent 8 /ColorSpace [/I /RGB 1 <0000ff>] ID (EI( EI /F4 Tf", []string{"Width", "Height", "BitsPerComponent", "ColorSpace", "I", "RGB", "F4"}, true},
		{"BI /W 100 /H 100 /L 5 /F /DCT ID ( EI EI /F5 Tf", []string{"W", "H", "L", "F", "DCT", "F5"}, true},
		{"BI /W 9 /H 9 /F /AHx ID 2028 EI> EI /F6 Tf", []string{"W", "H", "F", "AHx", "F6"}, true},
		{"BI /W 9 /H 9 /F [/A85 /Fl] ID ( EI ~> EI /F7 Tf", []string{"W", "H", "F", "A85", "Fl", "F7"}, true},
		{"BI /W 9 /H 9 /F /Fl ID " + flate("( EI < /NotE") + " EI /F8 Tf", []string{"W", "H", "F", "Fl", "F8"}, true},
		{"BI /W 9 /H 9 /F /RL ID \x02( E\xfeI\x80 EI /F9 Tf", []string{"W", "H", "F", "RL", "F9"}, true},
		{"BI /W 9 /H 9 /F /DCT ID " + jpeg + " EI /F10 Tf", []string{"W", "H", "F", "DCT", "F10"}, true},
		// Where the end cannot be known, every name after "ID" counts,
		// image data and strings included.
		{"BI /W 1 /H 1 /CS /CS0 ID \x00/NotD\xffEI and more EI /X1 Do", []string{"W", "H", "CS", "CS0", "NotD\xffEI", "X1"}, true},
		{"BI /W 1 ID data EI (/Y1) /Z1", []string{"W", "Y1", "Z1"}, true},
		{"BI /W 1 /H 1 /CS /G /BPC 8 ID ab EI /F1 Tf", []string{"W", "H", "CS", "G", "BPC", "F1"}, true},
		{"ID /Q1 EI", []string{"Q1"}, true},
		{"(unterminated /F1", []string{"F1"}, true},
		{"<abc /F2", []string{"F2"}, true},
		{"BI /W 1 ID no end", []string{"W"}, true},
		// An /L near the largest int: data+L wrapped round, and the scan
		// indexed the content at a negative offset (a panic: the part
		// failed).
		{"BI /W 1 /H 1 /L 9223372036854775807 ID x EI /F1 Tf", []string{"W", "H", "L", "F1"}, true},
		// A JPEG segment whose length's low byte has bit 1 set (6): its
		// length was read as (2 + hi<<8) | lo, 2 short, and the image's
		// end was lost (every name after it counted).
		{"BI /W 9 /H 9 /F /DCT ID \xff\xd8\xff\xdb\x00\x06abcd\xff\xda\x00\x02 EI (/NotJ\xff\xd9 EI /F11 Tf", []string{"W", "H", "F", "DCT", "F11"}, true},
	} {
		ns := newNameSet()
		left := int64(1 << 30)
		ok := scanNames([]byte(tc.content), ns, &left)
		names := ns.has
		if ok != tc.ok {
			t.Errorf("scanNames(%q) ok = %v, want %v", tc.content, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		var got []string
		for n := range names {
			got = append(got, n)
		}
		want := map[string]bool{}
		for _, n := range tc.want {
			want[n] = true
		}
		if len(names) != len(want) {
			t.Errorf("scanNames(%q) = %v, want %v", tc.content, got, tc.want)
			continue
		}
		for n := range want {
			if !names[n] {
				t.Errorf("scanNames(%q) = %v, want %v", tc.content, got, tc.want)
				break
			}
		}
	}
}

// FuzzOpenExtract feeds Open arbitrary bytes (seeded with small valid PDFs of
// every kind pdfgen writes); whatever it accepts, every page must extract or
// fail cleanly, and nothing may panic.
func FuzzOpenExtract(f *testing.F) {
	f.Add(pdfgen.Bytes(pdfgen.Options{Pages: 2}))
	f.Add(pdfgen.Bytes(pdfgen.Options{Pages: 5, Generation: 3, SharedResources: true, Inherit: true, Fanout: 2, Links: true,
		Revise: func(i int) (string, bool) { return "new", i == 2 }}))
	f.Add(pdfgen.Objects([]string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << >> >>",
		docStream("", "BT /F1 12 Tf (x) Tj ET"),
	}))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := openBytes(b)
		if err != nil {
			return
		}
		for i := 1; i <= min(d.PageCount(), 20); i++ {
			_ = d.Extract(context.Background(), i, i, io.Discard)
		}
	})
}

// pdfcpuModuleDir returns the directory of the pdfcpu module, whose samples
// the real-world tests use. The module is in the module cache whenever this
// package builds, at the version go.mod pins, so a missing file is a
// failure, not a skip.
func pdfcpuModuleDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/pdfcpu/pdfcpu").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("cannot locate the pdfcpu module: %v", err)
	}
	return dir
}

// realWorldSample returns the path of a sample of pdfcpu's module.
func realWorldSample(t testing.TB, dir, name string) string {
	t.Helper()
	src := filepath.Join(dir, "pkg", name)
	if _, err := os.Stat(src); err != nil {
		t.Fatalf("sample missing from the pinned pdfcpu: %v", err)
	}
	return src
}

// docCheckWhole opens src, checks its page count against pdfinfo's and
// extracts its first, last, middle and all pages, each checked with
// docCheckPart.
func docCheckWhole(t *testing.T, src string) {
	d := docOpenFile(t, src)
	n := d.PageCount()
	if want := docPdfinfoPages(t, src); n != want {
		t.Fatalf("PageCount = %d, pdfinfo says %d", n, want)
	}
	tmp := t.TempDir()
	for _, r := range [][2]int{{1, 1}, {n, n}, {max(1, n/2-2), min(n, n/2+2)}, {1, n}} {
		part := docWriteFile(t, tmp, fmt.Sprintf("part-%d-%d.pdf", r[0], r[1]), docExtract(t, d, r[0], r[1]))
		docCheckPart(t, src, part, r[0], r[1], nil)
	}
}

// TestExtractRealWorld runs the checks of TestExtract on PDFs from outside
// this project: samples shipped in pdfcpu's module. Books from real
// producers; object and cross-reference streams (thousands of objects in
// object streams, with links to pages the extract no longer has); linearized
// files; incremental updates, classic and with cross-reference streams;
// a cross-reference stream of the wrong size; a file whose offsets are all
// off (rebuilt by a scan); a file with bare CR line ends; forms with CJK
// field values whose appearance readers rebuild from the form's default
// resources; annotations; PDF 2.0.
func TestExtractRealWorld(t *testing.T) {
	dir := pdfcpuModuleDir(t)
	for _, name := range []string{
		"testdata/WaldenFull.pdf",                  // linearized, object streams
		"testdata/bookletTest.pdf",                 // linearized, object streams
		"testdata/ECSTR11-01.pdf",                  // object streams
		"testdata/CenterOfWhy.pdf",                 // 2,187 objects in object streams
		"testdata/T4.pdf",                          // object streams
		"testdata/TheGoProgrammingLanguageCh1.pdf", // object streams, links to null
		"testdata/Hybrid-PDF.pdf",
		"testdata/5116.DCT_Filter.pdf",
		"testdata/Acroforms2.pdf",
		"testdata/annotTest.pdf",
		"testdata/itu-t81.pdf",      // 186 pages
		"testdata/read.go.pdf",      // classic table
		"testdata/VectorApple.pdf",  // CR line ends
		"testdata/testWithText.pdf", // incremental update, cross-reference streams
		"testdata/testRot.pdf",      // incremental update, a cross-reference stream of the wrong size
		"testdata/pdf20/viaIncrementalSave.pdf",
		"testdata/pdf20/withOffsetStart.pdf", // every offset off: rebuilt
		"testdata/pdf20/utf8stringAndAnnotation.pdf",
		"samples/form/fill/chineseSimple.pdf",
		"samples/form/demo/korean.pdf",
	} {
		t.Run(filepath.Base(name), func(t *testing.T) {
			t.Parallel()
			docCheckWhole(t, realWorldSample(t, dir, name))
		})
	}
}

// TestExtractRealWorldEncrypted encrypts real-world samples with an owner
// password only (pdfcpu's module ships no encrypted sample), by two
// producers, qpdf and pdfcpu, in every method they offer, and runs the checks
// of TestExtractRealWorld on the results: parts come out decrypted.
func TestExtractRealWorldEncrypted(t *testing.T) {
	dir := pdfcpuModuleDir(t)
	for _, tc := range []struct {
		sample string
		by     string // qpdf or pdfcpu
		args   []string
		aes    bool // pdfcpu: AES rather than RC4
		bits   int  // pdfcpu: key length
	}{
		{sample: "testdata/bookletTest.pdf", by: "qpdf", args: []string{"--encrypt", "", "owner", "256", "--"}},
		{sample: "testdata/Acroforms2.pdf", by: "qpdf", args: []string{"--encrypt", "", "owner", "128", "--use-aes=y", "--"}},
		{sample: "testdata/TheGoProgrammingLanguageCh1.pdf", by: "qpdf", args: []string{"--allow-weak-crypto", "--encrypt", "", "owner", "128", "--use-aes=n", "--"}},
		{sample: "testdata/go.pdf", by: "qpdf", args: []string{"--allow-weak-crypto", "--encrypt", "", "owner", "40", "--"}},
		{sample: "testdata/golang.pdf", by: "pdfcpu", aes: true, bits: 256},
		{sample: "testdata/annotTest.pdf", by: "pdfcpu", aes: true, bits: 128},
		{sample: "samples/form/demo/korean.pdf", by: "pdfcpu", aes: false, bits: 128},
	} {
		name := fmt.Sprintf("%s-%s-%v%s", filepath.Base(tc.sample), tc.by, tc.bits, strings.Join(tc.args, ""))
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			plain := realWorldSample(t, dir, tc.sample)
			enc := filepath.Join(t.TempDir(), "encrypted.pdf")
			if tc.by == "qpdf" {
				docTool(t, "qpdf", append(append([]string{}, tc.args...), plain, enc)...)
			} else {
				conf := model.NewRC4Configuration("", "owner", tc.bits)
				if tc.aes {
					conf = model.NewAESConfiguration("", "owner", tc.bits)
				}
				if err := api.EncryptFile(plain, enc, conf); err != nil {
					t.Fatalf("pdfcpu encrypt: %v", err)
				}
			}
			raw, err := os.ReadFile(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(raw, []byte("/Encrypt")) {
				t.Fatal("the source is not encrypted")
			}
			docCheckWhole(t, enc)
		})
	}
}
