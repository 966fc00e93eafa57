package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/pdfgen"
)

// lazyReaderLanded turns on the bounds of issue 10 in
// TestMemoryOfABigPDFsPageCountAndPart. Set it to true when openPDF
// (splitworker.go) opens with splitter/pdfdoc's lazy reader instead of
// splitter.Open, which reads the whole file through the worker's range
// protocol.
const lazyReaderLanded = false

// Issue 10's bounds, asserted once lazyReaderLanded.
const (
	pageCountFetchMax = 0.02     // of the object, for the page count
	partFetchMax      = 0.05     // of the object, for a 50-page part
	lazyWorkerPeakMax = 64 << 20 // the worker's peak RSS, bytes
)

// TestMemoryOfABigPDFsPageCountAndPart counts the bytes fetched (at the test
// proxy) for the page count of a 200 MB PDF on a fresh mount, and for a
// 50-page part from its middle on another, and the split worker's peak
// memory. The source is read by ranges through the chunk cache (1 MiB chunks
// here, so that 2% of 200 MB is more than one chunk): no chunk is fetched
// twice, and once the lazy reader is in place only the chunks the pages need
// are. The part must hold the right pages.
func TestMemoryOfABigPDFsPageCountAndPart(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector inflates RSS; scripts/test.sh runs this test without -race")
	}
	requireTools(t, "pdfinfo", "pdftotext", "qpdf")
	w := newWorld(t)
	path := filepath.Join(w.s3.Root, testBucket, "big.pdf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	size, err := pdfgen.Write(f, pdfgen.Options{Pages: 400, Title: "big", PadBytes: 200 << 20})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	// The eager reader needs about the file's size: give it room.
	limit := "512MiB"
	if lazyReaderLanded {
		limit = "192MiB" // the default
	}
	opts := mountOpts{extra: []string{"--chunk-size", "1MiB", "--split-memory-limit", limit}}

	fetched := func(t *testing.T) (bytes int64, ranges map[string]int) {
		ranges = map[string]int{}
		for _, r := range w.proxy.GETs() {
			if strings.HasSuffix(r.Path, "/big.pdf") {
				bytes += r.BodyBytes
				ranges[r.Range]++
			}
		}
		return bytes, ranges
	}
	checkFetched := func(t *testing.T, what string, max float64) {
		t.Helper()
		got, ranges := fetched(t)
		t.Logf("%s: %d of %d bytes fetched (%.1f%%) in %d GETs", what, got, size, 100*float64(got)/float64(size), len(ranges))
		for r, n := range ranges {
			if n > 1 {
				t.Errorf("%s: range %s fetched %d times", what, r, n)
			}
		}
		if got > size {
			t.Errorf("%s: %d bytes fetched, more than the object's %d", what, got, size)
		}
		if lazyReaderLanded && float64(got) > max*float64(size) {
			t.Errorf("%s: %d bytes fetched, more than %.0f%% of %d", what, got, 100*max, size)
		}
	}
	checkWorker := func(t *testing.T, d *daemon) {
		t.Helper()
		daemonPeak := d.peakRSS()
		d.stop()
		lines := regexp.MustCompile(`msg="split worker (exited|killed|failed)".*`).FindAllString(d.stderr.String(), -1)
		if len(lines) != 1 {
			t.Fatalf("worker ends: %q", lines)
		}
		peak := fieldInt(lines[0], "peak_rss")
		t.Logf("worker peak RSS %d MiB; daemon peak RSS %d MiB", peak>>20, daemonPeak>>20)
		if lazyReaderLanded && (peak == 0 || peak > lazyWorkerPeakMax) {
			t.Errorf("worker peak RSS %d bytes, want at most %d: %s", peak, lazyWorkerPeakMax, lines[0])
		}
	}

	t.Run("page count", func(t *testing.T) {
		d := w.mount(t, opts)
		w.proxy.Reset()
		buf := make([]byte, 16)
		began := time.Now()
		n, err := syscall.Getxattr(d.path("big.pdf"), "user.s3docs.pages", buf)
		if err != nil || string(buf[:n]) != "400" {
			t.Fatalf("user.s3docs.pages = %q, %v", buf[:n], err)
		}
		t.Logf("page count in %v", time.Since(began).Round(time.Millisecond))
		checkFetched(t, "page count", pageCountFetchMax)
		checkWorker(t, d)
	})
	t.Run("part", func(t *testing.T) {
		d := w.mount(t, opts)
		w.proxy.Reset()
		part := filepath.Join(t.TempDir(), "part.pdf")
		began := time.Now()
		run1(t, "sh", "-c", "cat \"$1\" > \"$2\"", "sh", filepath.Join(d.path(".parts"), "big.pdf", "pages-0201-0250.pdf"), part)
		t.Logf("part in %v", time.Since(began).Round(time.Millisecond))
		checkFetched(t, "pages 201-250", partFetchMax)
		checkPart(t, part, path, 201, 250)
		checkWorker(t, d)
	})
}

// A PDF bigger than the cache is split like any other: the worker reads it
// through the cache by ranges, chunks come and go, nothing needs the whole
// file on disk at once (issue 14, finding 10: it was EIO past half the
// cache).
func TestPartsOfAPDFBiggerThanTheCache(t *testing.T) {
	requireTools(t, "pdfinfo")
	w := newWorld(t)
	f, err := os.Create(filepath.Join(w.s3.Root, testBucket, "big.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	size, err := pdfgen.Write(f, pdfgen.Options{Pages: 100, Title: "big", PadBytes: 40 << 20})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	d := w.mount(t, mountOpts{direct: true, cacheSize: "16MiB", extra: []string{"--split-memory-limit", "1GiB"}})
	if n := pdfPages(t, filepath.Join(d.path(".parts"), "big.pdf", "pages-0051-0100.pdf")); n != 50 {
		t.Fatalf("part of %d pages", n)
	}
	if disk := cacheDiskBytes(t, d.cacheDir); disk > 16<<20 || disk >= size {
		t.Errorf("the cache holds %d bytes; its bound is 16 MiB, the PDF %d", disk, size)
	}
}
