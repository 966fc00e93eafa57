package pdfdoc

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"s3docs/internal/pdfgen"
)

// BenchmarkOpenExtract opens a generated ~300 MB, 3,200-page PDF whose pages
// share one resource dictionary (holding an unused 300 MB image), then
// extracts it as 64 parts of 50 pages, as the daemon's worker does for a
// listed directory. It reports the time of Open, of the first part (Open
// included, what a first lookup waits for), the mean time of a later part,
// and memory: the Go heap in use with the document open and the process's
// peak resident set (VmHWM, Linux only; it includes the benchmark's own
// generation of the file, which streams and needs little).
//
//	go test -run '^$' -bench OpenExtract -benchtime 1x ./splitter/pdfdoc
func BenchmarkOpenExtract(b *testing.B) {
	const pages, partPages = 3200, 50
	path := filepath.Join(b.TempDir(), "big.pdf")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	size, err := pdfgen.Write(f, pdfgen.Options{Pages: pages, Title: "Big", SharedResources: true, PadBytes: 300 << 20})
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()

	var open, first, later time.Duration
	var heap uint64
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		d, err := Open(context.Background(), f, size, Options{})
		if err != nil {
			b.Fatal(err)
		}
		open += time.Since(start)
		if d.PageCount() != pages {
			b.Fatalf("PageCount = %d", d.PageCount())
		}
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap = max(heap, ms.HeapInuse)
		for from := 1; from <= pages; from += partPages {
			start := time.Now()
			if err := d.Extract(context.Background(), from, from+partPages-1, io.Discard); err != nil {
				b.Fatal(err)
			}
			if from == 1 {
				first += time.Since(start)
			} else {
				later += time.Since(start)
			}
		}
		runtime.KeepAlive(d)
		f.Close()
	}
	n := float64(b.N)
	b.ReportMetric(open.Seconds()/n, "open-s")
	b.ReportMetric((open+first).Seconds()/n, "first-part-s")
	b.ReportMetric(later.Seconds()*1000/n/float64(pages/partPages-1), "later-part-ms")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
	if hwm := vmHWM(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	}
	b.ReportMetric(float64(size)/(1<<20), "file-MiB")
}
