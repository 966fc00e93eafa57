// Command mkpdfs writes the sample PDFs of the demo (scripts/demo.sh) into a
// directory, as the tree the demo uploads to its bucket:
//
//	go run ./internal/tools/mkpdfs -out DIR
//	go run ./internal/tools/mkpdfs -out DIR -one big.pdf -pages 3000 -image 350000
//
// The second form writes one PDF of that many pages (for benchmarks) instead
// of the sample tree: with -pad, one padding image of that many bytes; with
// -image, an incompressible image of that many bytes on every page, each
// page's dictionary beside its image (the layout that makes readers which
// visit every page read the whole file).
//
// The files are deterministic: running it twice gives the same bytes, so the
// same ETags.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"s3docs/internal/pdfgen"
)

// sample is one file of the tree.
type sample struct {
	path       string // slash-separated, relative to -out: the object key
	title      string
	pages      int
	padBytes   int64
	imageBytes int64 // per page
}

var samples = []sample{
	{"cases/2024/brief.pdf", "Brief: Doe v. Roe (2024)", 137, 0, 0},
	{"cases/2024/exhibit-a.pdf", "Exhibit A: Doe v. Roe (2024)", 12, 0, 0},
	{"cases/2023/memo.pdf", "Memo (2023)", 3, 0, 0},
	{"reports/annual.pdf", "Annual report", 400, 20 << 20, 0},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkpdfs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mkpdfs -out DIR\n\nWrites the demo's sample PDFs into DIR.")
		fs.PrintDefaults()
	}
	out := fs.String("out", "", "directory to write the sample tree into (required)")
	one := fs.String("one", "", "write only this one PDF (a path relative to -out), of -pages pages and -pad padding bytes")
	pages := fs.Int("pages", 100, "pages of the -one PDF")
	pad := fs.Int64("pad", 0, "padding bytes of the -one PDF (an image stream that makes it big)")
	image := fs.Int64("image", 0, "bytes of an image of its own on every page of the -one PDF")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	todo := samples
	if *one != "" {
		todo = []sample{{*one, *one, *pages, *pad, *image}}
	}
	for _, s := range todo {
		path := filepath.Join(*out, filepath.FromSlash(s.path))
		n, err := writeSample(path, s)
		if err != nil {
			fmt.Fprintf(stderr, "mkpdfs: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\t%d pages\t%d bytes\n", path, s.pages, n)
	}
	return 0
}

// writeSample writes s to path through a temporary file renamed into place,
// so an interrupted run never leaves a truncated PDF behind.
func writeSample(path string, s sample) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".mkpdfs-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	n, err := pdfgen.Write(f, pdfgen.Options{Pages: s.pages, Title: s.title, PadBytes: s.padBytes, PageImageBytes: s.imageBytes})
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return 0, err
	}
	return n, nil
}
