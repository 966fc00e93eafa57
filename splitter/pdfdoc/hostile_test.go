package pdfdoc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
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
