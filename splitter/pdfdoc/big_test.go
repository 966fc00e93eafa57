package pdfdoc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"s3docs/internal/pdfgen"
)

// The big-file tests: a many-page PDF, each page with an incompressible
// image of its own, in the four layouts of issue 10, read through a
// ReaderAt that counts the chunks it touches (what the chunk cache would
// fetch from S3) and, in a child process, the peak memory.
//
// By default the files have the 3,000 pages with images of 35 KB
// (about 100 MB a file), and the chunk size is a 128th of the file, so that
// the proportions, and with them the bounds on chunks touched, are those of
// the 1 GiB files. S3DOCS_PDF_FULL=1 (set by scripts/test.sh for its
// run without -race) makes them the files: 350 KB images, 1 GiB a
// file, 8 MiB chunks.

// fullEnv selects the full-size files.
const fullEnv = "S3DOCS_PDF_FULL"

// helperEnv, when set, makes the test binary a helper process (TestMain).
const helperEnv = "PDFDOC_HELPER"

func TestMain(m *testing.M) {
	if req := os.Getenv(helperEnv); req != "" {
		os.Exit(helperMain(req))
	}
	os.Exit(m.Run())
}

// bigParams returns the pages and image size of the big files.
func bigParams() (pages int, img int64, full bool) {
	if os.Getenv(fullEnv) == "1" {
		return 3000, 350_000, true
	}
	return 3000, 35_000, false
}

type bigLayout struct {
	name string
	o    pdfgen.Options
	qpdf bool // rewrite with qpdf --object-streams=generate
}

func bigLayouts(pages int, img int64) []bigLayout {
	base := pdfgen.Options{Pages: pages, Title: "Big", PageImageBytes: img}
	last, tree := base, base
	last.PagesLast = true
	tree.Fanout = 10
	return []bigLayout{
		{name: "flat-beside", o: base},
		{name: "flat-pages-last", o: last},
		{name: "balanced", o: tree},
		{name: "object-streams", o: base, qpdf: true},
	}
}

// writeBig writes layout l into dir, streaming, and returns its path.
func writeBig(tb testing.TB, dir string, l bigLayout) string {
	tb.Helper()
	path := filepath.Join(dir, l.name+".pdf")
	gen := path
	if l.qpdf {
		gen = filepath.Join(dir, l.name+"-generated.pdf")
	}
	f, err := os.Create(gen)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := pdfgen.Write(f, l.o); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	if l.qpdf {
		docTool(tb, "qpdf", "--object-streams=generate", gen, path)
		if err := os.Remove(gen); err != nil {
			tb.Fatal(err)
		}
	}
	return path
}

// countingReaderAt counts the bytes read and the distinct chunks touched.
type countingReaderAt struct {
	r     io.ReaderAt
	chunk int64

	mu     sync.Mutex
	chunks map[int64]bool
	bytes  int64
}

func newCountingReaderAt(r io.ReaderAt, chunk int64) *countingReaderAt {
	return &countingReaderAt{r: r, chunk: chunk, chunks: map[int64]bool{}}
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > 0 {
		c.mu.Lock()
		c.bytes += int64(len(p))
		for k := off / c.chunk; k <= (off+int64(len(p))-1)/c.chunk; k++ {
			c.chunks[k] = true
		}
		c.mu.Unlock()
	}
	return c.r.ReadAt(p, off)
}

func (c *countingReaderAt) touched() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.chunks), c.bytes
}

// helperRequest is what a helper process does: open Path (unless
// Baseline), then extract From..Thru to Out (unless From is 0).
type helperRequest struct {
	Path       string
	Chunk      int64
	From, Thru int
	Out        string
	Baseline   bool // open nothing: the process's own footprint
}

type helperResult struct {
	Pages                       int
	OpenChunks, Chunks          int
	OpenBytes, Bytes            int64
	OpenSeconds, ExtractSeconds float64
	PeakRSS                     int64 // VmHWM at the end
	Err                         string
}

func helperMain(req string) int {
	var q helperRequest
	res := helperResult{}
	if err := json.Unmarshal([]byte(req), &q); err != nil {
		res.Err = err.Error()
	} else if !q.Baseline {
		if err := helperRun(q, &res); err != nil {
			res.Err = err.Error()
		}
	}
	res.PeakRSS = vmHWM()
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

func helperRun(q helperRequest, res *helperResult) error {
	f, err := os.Open(q.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	c := newCountingReaderAt(f, q.Chunk)
	start := time.Now()
	d, err := Open(context.Background(), c, fi.Size(), Options{})
	if err != nil {
		return err
	}
	res.OpenSeconds = time.Since(start).Seconds()
	res.Pages = d.PageCount()
	res.OpenChunks, res.OpenBytes = c.touched()
	if q.From > 0 {
		out, err := os.Create(q.Out)
		if err != nil {
			return err
		}
		start = time.Now()
		if err := d.Extract(context.Background(), q.From, q.Thru, out); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		res.ExtractSeconds = time.Since(start).Seconds()
	}
	res.Chunks, res.Bytes = c.touched()
	return nil
}

// runHelper runs a helper process (this test binary) and returns what it
// measured.
func runHelper(tb testing.TB, q helperRequest, env ...string) helperResult {
	tb.Helper()
	req, err := json.Marshal(q)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), env...), helperEnv+"="+string(req))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("helper %+v: %v\n%s", q, err, stderr.String())
	}
	var res helperResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		tb.Fatalf("helper %+v: %v\n%s\n%s", q, err, stdout.String(), stderr.String())
	}
	if res.Err != "" {
		tb.Fatalf("helper %+v: %s", q, res.Err)
	}
	return res
}

// vmHWM returns the process's peak resident set size in bytes, or 0 where
// /proc does not tell.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// maxWorkerRSS is issue 10's bound on a split worker's peak RSS, whatever
// the part's size.
const maxWorkerRSS = 64 << 20

// TestBigPDF: the page count reads at most 2% of the file's chunks; a
// 50-page part from the middle at most 5%; a 1,000-page part about its
// share; the parts are valid and hold the right pages; and the extracting
// process peaks under 64 MiB, whatever the part's size.
func TestBigPDF(t *testing.T) {
	pages, img, full := bigParams()
	dir := t.TempDir()
	base := runHelper(t, helperRequest{Baseline: true})
	t.Logf("%d pages, %d-byte images (full size: %v); helper process alone: peak RSS %.1f MiB", pages, img, full, mib(base.PeakRSS))
	mid := [2]int{pages*2/3 + 1, pages*2/3 + 50}    // 2001-2050
	thousand := [2]int{pages/3 + 1, pages/3 + 1000} // 1001-2000
	for _, l := range bigLayouts(pages, img) {
		t.Run(l.name, func(t *testing.T) {
			src := writeBig(t, dir, l)
			defer os.Remove(src)
			fi, err := os.Stat(src)
			if err != nil {
				t.Fatal(err)
			}
			chunk := int64(8 << 20)
			if !full {
				chunk = (fi.Size() + 127) / 128
			}
			nChunks := int((fi.Size() + chunk - 1) / chunk)

			count := runHelper(t, helperRequest{Path: src, Chunk: chunk})
			t.Logf("page count: %d chunks of %d, %d bytes read, %.3f s, peak RSS %.1f MiB",
				count.OpenChunks, nChunks, count.OpenBytes, count.OpenSeconds, mib(count.PeakRSS))
			if count.Pages != pages {
				t.Fatalf("PageCount = %d, want %d", count.Pages, pages)
			}
			if limit := nChunks * 2 / 100; count.OpenChunks > limit {
				t.Errorf("page count touched %d of %d chunks, over 2%% (%d)", count.OpenChunks, nChunks, limit)
			}

			for _, r := range [][2]int{mid, thousand} {
				out := filepath.Join(dir, fmt.Sprintf("%s-%d-%d.pdf", l.name, r[0], r[1]))
				res := runHelper(t, helperRequest{Path: src, Chunk: chunk, From: r[0], Thru: r[1], Out: out})
				n := r[1] - r[0] + 1
				t.Logf("pages %d-%d: %d chunks of %d, %d bytes read, open %.3f s + extract %.3f s, peak RSS %.1f MiB",
					r[0], r[1], res.Chunks, nChunks, res.Bytes, res.OpenSeconds, res.ExtractSeconds, mib(res.PeakRSS))
				// A part's own pages are n/pages of the file; beyond them
				// it may touch the chunks of the cross-reference data, the
				// catalog and tree, and one more at each end of its pages.
				limit := (nChunks*n+pages-1)/pages + 4
				if n == 50 {
					limit = nChunks * 5 / 100
				}
				if res.Chunks > limit {
					t.Errorf("pages %d-%d touched %d of %d chunks, over %d", r[0], r[1], res.Chunks, nChunks, limit)
				}
				if !raceEnabled && res.PeakRSS > maxWorkerRSS {
					t.Errorf("pages %d-%d: peak RSS %.1f MiB, over %d MiB", r[0], r[1], mib(res.PeakRSS), maxWorkerRSS>>20)
				}
				bigCheckPart(t, src, out, r[0], r[1], pdfgen.ExpectedText(l.o))
				os.Remove(out)
			}
		})
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// bigCheckPart checks a part of a big file: qpdf finds nothing to repair,
// pdfinfo counts its pages, and its first and last pages have the text of
// the source's pages (and the generator's).
func bigCheckPart(t *testing.T, src, part string, from, thru int, want func(int) string) {
	t.Helper()
	docQpdfCheck(t, part)
	n := thru - from + 1
	if got := docPdfinfoPages(t, part); got != n {
		t.Errorf("%s: pdfinfo says %d pages, want %d", filepath.Base(part), got, n)
	}
	for _, k := range []int{1, n} {
		got := docPageTexts(t, part, k, k)[0]
		exp := docPageTexts(t, src, from+k-1, from+k-1)[0]
		if got != exp {
			t.Errorf("%s: page %d (source page %d):\ngot  %q\nwant %q", filepath.Base(part), k, from+k-1, got, exp)
		}
		if docWords(got) != docWords(want(from+k-1)) {
			t.Errorf("%s: page %d: %q, generated %q", filepath.Base(part), k, docWords(got), docWords(want(from+k-1)))
		}
	}
}

// BenchmarkBigPDF reports, per layout, for the page count and for a
// 50-page part from the middle: the time, the bytes read, the chunks
// touched and (from a separate helper process) the peak RSS. Timing goals
// live here: issue 10 wants the 50-page part of the 1 GiB file in 1.5 s.
//
//	S3DOCS_PDF_FULL=1 go test -run '^$' -bench BigPDF -benchtime 5x ./splitter/pdfdoc
func BenchmarkBigPDF(b *testing.B) {
	pages, img, full := bigParams()
	dir := b.TempDir()
	mid := [2]int{pages*2/3 + 1, pages*2/3 + 50}
	for _, l := range bigLayouts(pages, img) {
		src := writeBig(b, dir, l)
		fi, err := os.Stat(src)
		if err != nil {
			b.Fatal(err)
		}
		chunk := int64(8 << 20)
		if !full {
			chunk = (fi.Size() + 127) / 128
		}
		for _, op := range []string{"count", "part50"} {
			b.Run(l.name+"/"+op, func(b *testing.B) {
				f, err := os.Open(src)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				var chunks int
				var read int64
				for b.Loop() {
					c := newCountingReaderAt(f, chunk)
					d, err := Open(context.Background(), c, fi.Size(), Options{})
					if err != nil {
						b.Fatal(err)
					}
					if op == "part50" {
						if err := d.Extract(context.Background(), mid[0], mid[1], io.Discard); err != nil {
							b.Fatal(err)
						}
					}
					chunks, read = c.touched()
				}
				q := helperRequest{Path: src, Chunk: chunk}
				if op == "part50" {
					q.From, q.Thru, q.Out = mid[0], mid[1], filepath.Join(b.TempDir(), "part.pdf")
				}
				res := runHelper(b, q)
				b.ReportMetric(float64(chunks), "chunks")
				b.ReportMetric(float64((fi.Size()+chunk-1)/chunk), "chunks-in-file")
				b.ReportMetric(float64(read), "bytes-read")
				b.ReportMetric(mib(res.PeakRSS), "peak-RSS-MiB")
			})
		}
		os.Remove(src)
	}
}

// TestNoConfigDir: opening and extracting never reads or creates pdfcpu's
// configuration directory (a worker has no business in its user's home).
func TestNoConfigDir(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	src := docWriteFile(t, dir, "src.pdf", pdfgen.Bytes(pdfgen.Options{Pages: 3, Links: true}))
	res := runHelper(t, helperRequest{Path: src, Chunk: 1 << 20, From: 1, Thru: 3, Out: filepath.Join(dir, "part.pdf")},
		"HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	if res.Pages != 3 {
		t.Fatalf("helper: %d pages", res.Pages)
	}
	entries, err := os.ReadDir(home)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) > 0 {
		t.Errorf("the home directory got %v", entries)
	}
}
