package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

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
