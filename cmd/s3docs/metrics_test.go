package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/pdfgen"
	"s3docs/internal/testenv"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// metricValue finds "name{labels} value" or "name value" in a scrape.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no series %s in the scrape", series)
	return 0
}

func TestMetricsEndpoint(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(50, 20*mib)
	w.s3.Put(t, testBucket, "a.pdf", data)
	w.s3.Put(t, testBucket, "b.pdf", pdfgen.Bytes(pdfgen.Options{Pages: 60, Title: "b"}))
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d := w.mount(t, mountOpts{extra: []string{"--metrics-addr", addr}})
	if got := sha256Of(t, d.path("a.pdf")); got != sha256Hex(data) {
		t.Fatal("content differs")
	}
	if got := len(readDirNames(t, d.path(".parts/b.pdf"))); got != 2 {
		t.Fatalf("%d parts", got)
	}
	text := scrape(t, "http://"+addr+"/metrics")
	if v := metricValue(t, text, `s3docs_get_requests_total{outcome="ok"}`); v < 3 {
		t.Fatalf("GETs ok = %v, want at least the 3 chunks of a.pdf", v)
	}
	if v := metricValue(t, text, `s3docs_get_bytes_total{outcome="ok"}`); v < float64(len(data)) {
		t.Fatalf("GET bytes = %v", v)
	}
	if v := metricValue(t, text, "s3docs_cache_max_bytes"); v != 1<<30 {
		t.Fatalf("cache bound = %v", v)
	}
	if v := metricValue(t, text, "s3docs_cache_bytes"); v < float64(len(data)) {
		t.Fatalf("cache bytes = %v", v)
	}
	if v := metricValue(t, text, `s3docs_split_requests_total{op="pages",outcome="ok"}`); v != 1 {
		t.Fatalf("page counts = %v", v)
	}
	for _, name := range []string{"s3docs_cache_hits_total", "s3docs_cache_misses_total", "s3docs_cache_evictions_total",
		"s3docs_cache_dedup_joins_total", "s3docs_readahead_chunks_total", "s3docs_gets_in_flight", "s3docs_get_duration_seconds_count"} {
		metricValue(t, text, name)
	}
	if v := metricValue(t, text, "s3docs_cache_configured_max_bytes"); v != 1<<30 {
		t.Fatalf("configured cache bound = %v", v)
	}
	if v := metricValue(t, text, `s3docs_fuse_request_duration_seconds_count{op="read"}`); v < 20 {
		t.Fatalf("FUSE reads timed = %v, want at least one per MiB of a.pdf (requests are 1 MiB at most)", v)
	}
	if v := metricValue(t, text, `s3docs_fuse_request_duration_seconds_count{op="lookup"}`); v < 2 {
		t.Fatalf("FUSE lookups timed = %v", v)
	}
	if v := metricValue(t, text, `s3docs_fuse_request_duration_seconds_sum{op="read"}`); v <= 0 {
		t.Fatalf("FUSE read time = %v", v)
	}
	if v := metricValue(t, text, `s3docs_fuse_errors_total{errno="EIO",op="read"}`); v != 0 {
		t.Fatalf("read errors = %v before any read failed", v)
	}
	if v := metricValue(t, text, "s3docs_open_files"); v != 0 {
		t.Fatalf("open files = %v with none open", v)
	}

	// A name that is not there, a file held open, a read that fails (the
	// object is replaced under the open file, and its GET then fails)
	// and a .pdf that cannot be split.
	if _, err := os.Stat(d.path("missing.pdf")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing name: %v", err)
	}
	big := testenv.RandomBytes(51, 3*mib)
	w.s3.Put(t, testBucket, "c.pdf", big)
	f, err := os.Open(d.path("c.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w.s3.Put(t, testBucket, "c.pdf", testenv.RandomBytes(52, 3*mib))
	w.s3.Put(t, testBucket, "bad.pdf", []byte("not a PDF at all"))
	readDirNames(t, d.path(".parts")) // a lookup of .parts
	if _, err := os.ReadDir(d.path(".parts/bad.pdf")); err == nil {
		t.Fatal("parts of a file that is not a PDF were listed")
	}
	if _, err := f.ReadAt(make([]byte, 4096), 2*mib); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a replaced object: %v, want EIO", err)
	}
	text = scrape(t, "http://"+addr+"/metrics")
	if v := metricValue(t, text, "s3docs_open_files"); v != 1 {
		t.Fatalf("open files = %v with one open", v)
	}
	if v := metricValue(t, text, `s3docs_fuse_errors_total{errno="ENOENT",op="lookup"}`); v < 1 {
		t.Fatalf("lookups answered ENOENT = %v", v)
	}
	if v := metricValue(t, text, `s3docs_fuse_errors_total{errno="EIO",op="read"}`); v < 1 {
		t.Fatalf("reads answered EIO = %v", v)
	}
	if v := metricValue(t, text, `s3docs_split_requests_total{op="pages",outcome="error"}`); v != 1 {
		t.Fatalf("failed page counts = %v", v)
	}
	// Label values stay a fixed, small set: no key or path in any of them.
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "s3docs_") && (strings.Contains(line, ".pdf") || strings.Contains(line, "/")) {
			t.Errorf("a series names a key or path: %s", line)
		}
	}
	f.Close()
	testenv.WaitFor(t, 10*time.Second, "open files to come back to 0 after the close", func() bool {
		return metricValue(t, scrape(t, "http://"+addr+"/metrics"), "s3docs_open_files") == 0
	})
	// pprof only with --pprof.
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("pprof without --pprof: %d", resp.StatusCode)
	}
}
