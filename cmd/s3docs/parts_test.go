package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"s3docs/internal/pdfgen"
	"s3docs/internal/testenv"
)

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		testenv.Tool(t, tool)
	}
}

func run1(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := testenv.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func pdfPages(t *testing.T, path string) int {
	t.Helper()
	for _, line := range strings.Split(run1(t, "pdfinfo", path), "\n") {
		if rest, ok := strings.CutPrefix(line, "Pages:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(rest))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("pdfinfo %s: no page count", path)
	return 0
}

func pdfText(t *testing.T, path string, from, thru int) string {
	t.Helper()
	return run1(t, "pdftotext", "-q", "-f", strconv.Itoa(from), "-l", strconv.Itoa(thru), path, "-")
}

// checkPart holds a part to what independent tools say of it and of the
// source: valid, the right number of pages, the same text.
func checkPart(t *testing.T, part, source string, from, thru int) {
	t.Helper()
	run1(t, "qpdf", "--check", part)
	if n := pdfPages(t, part); n != thru-from+1 {
		t.Fatalf("%s: %d pages, want %d", part, n, thru-from+1)
	}
	if got, want := pdfText(t, part, 1, thru-from+1), pdfText(t, source, from, thru); got != want {
		t.Fatalf("%s: text differs from pages %d-%d of the source:\n got %.200q\nwant %.200q", part, from, thru, got, want)
	}
}

func TestPartsTree(t *testing.T) {
	requireTools(t, "qpdf", "pdfinfo", "pdftotext", "getfattr")
	w := newWorld(t)
	brief := pdfgen.Bytes(pdfgen.Options{Pages: 137, Title: "brief"})
	w.s3.Put(t, testBucket, "cases/2024/brief.pdf", brief)
	w.s3.Put(t, testBucket, "cases/2024/notes.txt", []byte("not a pdf"))
	w.s3.PutRaw(t, testBucket, "cases/2024/raw.PDF", pdfgen.Bytes(pdfgen.Options{Pages: 3, Title: "raw"}))
	w.s3.Put(t, testBucket, "big/thousand.pdf", pdfgen.Bytes(pdfgen.Options{Pages: 1201, Title: "thousand"}))
	cacheDir := t.TempDir()
	d := w.mount(t, mountOpts{cacheDir: cacheDir})
	parts := d.path(".parts")
	src := filepath.Join(t.TempDir(), "brief.pdf")
	if err := os.WriteFile(src, brief, 0o644); err != nil {
		t.Fatal(err)
	}

	// .parts is reachable by name but not listed at the root.
	for _, name := range readDirNames(t, d.mountpoint) {
		if name == ".parts" {
			t.Fatal("the root lists .parts")
		}
	}
	if got := strings.Join(readDirNames(t, filepath.Join(parts, "cases/2024")), ","); got != "brief.pdf,raw.PDF" {
		t.Fatalf(".parts/cases/2024 lists %s", got)
	}
	if _, err := os.Stat(filepath.Join(parts, "cases/2024/notes.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a non-PDF has a parts directory: %v", err)
	}

	dir := filepath.Join(parts, "cases/2024/brief.pdf")
	if got := strings.Join(readDirNames(t, dir), " "); got != "pages-0001-0050.pdf pages-0051-0100.pdf pages-0101-0137.pdf" {
		t.Fatalf("brief.pdf parts: %s", got)
	}
	for _, r := range [][2]int{{1, 50}, {51, 100}, {101, 137}} {
		part := filepath.Join(dir, partFileName(r[0], r[1]))
		st, err := os.Stat(part)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(part)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != st.Size() {
			t.Fatalf("%s: stat says %d bytes, read %d", part, st.Size(), len(b))
		}
		checkPart(t, part, src, r[0], r[1])
	}

	// Any range resolves when looked up, with any zero padding.
	for _, name := range []string{"pages-12-14.pdf", "pages-0012-0014.pdf", "pages-7-7.pdf", "pages-137-137.pdf"} {
		from, thru := parseRange(t, name)
		out := filepath.Join(t.TempDir(), "p.pdf")
		run1(t, "sh", "-c", "cat \"$1\" > \"$2\"", "sh", filepath.Join(dir, name), out)
		checkPart(t, out, src, from, thru)
	}
	for _, name := range []string{"pages-0-3.pdf", "pages-130-138.pdf", "pages-14-12.pdf", "pages-1-2.txt", "page-7.pdf", "pages-a-b.pdf"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want ENOENT", name, err)
		}
	}

	// The page count as an extended attribute of the PDF itself.
	if got := strings.TrimSpace(run1(t, "getfattr", "--absolute-names", "--only-values", "-n", "user.s3docs.pages", d.path("cases/2024/brief.pdf"))); got != "137" {
		t.Fatalf("user.s3docs.pages = %q", got)
	}
	buf := make([]byte, 16)
	if n, err := syscall.Getxattr(d.path("cases/2024/raw.PDF"), "user.s3docs.pages", buf); err != nil || string(buf[:n]) != "3" {
		t.Fatalf("raw.PDF pages: %q, %v", buf[:n], err)
	}

	// A PDF of more than a thousand pages.
	bigDir := filepath.Join(parts, "big/thousand.pdf")
	names := readDirNames(t, bigDir)
	if len(names) != 25 || names[24] != "pages-1201-1201.pdf" {
		t.Fatalf("thousand.pdf lists %d parts: %v", len(names), names)
	}
	if n := pdfPages(t, filepath.Join(bigDir, "pages-1151-1200.pdf")); n != 50 {
		t.Fatalf("pages 1151-1200: %d pages", n)
	}

	// Parts survive a remount: no GET, no parse.
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	d2 := w.mount(t, mountOpts{cacheDir: cacheDir})
	w.proxy.Reset()
	dir2 := filepath.Join(d2.path(".parts"), "cases/2024/brief.pdf")
	if got := len(readDirNames(t, dir2)); got != 3 {
		t.Fatalf("after remount: %d parts", got)
	}
	checkPart(t, filepath.Join(dir2, "pages-0051-0100.pdf"), src, 51, 100)
	checkPart(t, filepath.Join(dir2, "pages-12-14.pdf"), src, 12, 14)
	if n := len(w.proxy.GETs()); n != 0 {
		t.Fatalf("cached parts after remount made %d GETs", n)
	}
	d2.stop() // all of its output is in
	if strings.Contains(d2.stderr.String(), "split worker started") {
		t.Fatalf("cached parts after remount started a split worker:\n%s", d2.stderr.String())
	}
}

func partFileName(from, thru int) string {
	return "pages-" + pad4(from) + "-" + pad4(thru) + ".pdf"
}

func pad4(n int) string {
	s := strconv.Itoa(n)
	for len(s) < 4 {
		s = "0" + s
	}
	return s
}

func parseRange(t *testing.T, name string) (int, int) {
	t.Helper()
	var from, thru int
	rest := strings.TrimSuffix(strings.TrimPrefix(name, "pages-"), ".pdf")
	a, b, _ := strings.Cut(rest, "-")
	from, _ = strconv.Atoi(a)
	thru, _ = strconv.Atoi(b)
	return from, thru
}

func TestBrokenPDFsFailAloneAndOnce(t *testing.T) {
	w := newWorld(t)
	good := pdfgen.Bytes(pdfgen.Options{Pages: 10, Title: "good"})
	w.s3.Put(t, testBucket, "good.pdf", good)
	w.s3.Put(t, testBucket, "garbage.pdf", testenv.RandomBytes(40, 100000))
	w.s3.Put(t, testBucket, "truncated.pdf", good[:len(good)/2])
	// Needs about twice 64 MiB to open: the worker is killed at its limit.
	w.s3.Put(t, testBucket, "heavy.pdf", pdfgen.HeavyXref(4_194_304))
	d := w.mount(t, mountOpts{extra: []string{"--split-memory-limit", "64MiB"}})
	parts := d.path(".parts")

	for _, name := range []string{"garbage.pdf", "truncated.pdf", "heavy.pdf"} {
		for attempt := 0; attempt < 2; attempt++ {
			_, err := os.ReadDir(filepath.Join(parts, name))
			if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.ENOENT) {
				t.Fatalf("%s: listing parts gave %v, want EIO or ENOENT", name, err)
			}
			if _, err := os.Stat(filepath.Join(parts, name, "pages-1-1.pdf")); err == nil {
				t.Fatalf("%s: a part of a broken PDF exists", name)
			}
		}
		if n := d.logCount("key="+name, 1); n == 0 {
			t.Fatalf("no log line names %s", name)
		}
	}
	if n := d.logCount("cannot split PDF", 3); n != 3 {
		t.Fatalf("%d failures logged for 3 broken PDFs (each must be parsed once):\n%s", n, d.stderr.String())
	}
	t.Logf("daemon log:\n%s", d.stderr.String())
	// The daemon keeps serving the good one, parts and plain reads alike.
	if got := readDirNames(t, filepath.Join(parts, "good.pdf")); len(got) != 1 {
		t.Fatalf("good.pdf parts: %v", got)
	}
	b, err := os.ReadFile(d.path("good.pdf"))
	if err != nil || len(b) != len(good) {
		t.Fatalf("plain read after failures: %v", err)
	}
}

func TestConcurrentPartLookupsShareOneParse(t *testing.T) {
	requireTools(t, "pdfinfo")
	w := newWorld(t)
	w.s3.Put(t, testBucket, "doc.pdf", pdfgen.Bytes(pdfgen.Options{Pages: 400, Title: "doc"}))
	d := w.mount(t, mountOpts{})
	dir := filepath.Join(d.path(".parts"), "doc.pdf")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := 1 + i*50
			_, err := os.Stat(filepath.Join(dir, "pages-"+strconv.Itoa(from)+"-"+strconv.Itoa(from+49)+".pdf"))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := d.logCount("split worker started", 1); n != 1 {
		t.Fatalf("%d split workers started for one PDF:\n%s", n, d.stderr.String())
	}
	if n := d.logCount("split worker parsed", 1); n != 1 {
		t.Fatalf("%d parses of one PDF", n)
	}
}
