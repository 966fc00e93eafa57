package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"s3docs/splitter"
	"s3docs/splitter/worker"
)

// splitWorkerCommand is the hidden subcommand that runs one PDF-splitting
// worker process: it parses untrusted PDFs, so it runs apart from the
// daemon, under a memory limit and with the least privilege (see
// worker.Main).
const splitWorkerCommand = "__split-worker"

// splitIdleTimeout is how long a worker keeps its parsed PDF for more parts.
const splitIdleTimeout = 30 * time.Second

func runSplitWorker(stderr io.Writer) int {
	if err := worker.Main(worker.ServeOptions{Open: openPDF, Classify: classifyPDFError}); err != nil {
		fmt.Fprintf(stderr, "s3docs split worker: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// openPDF is the worker's opener. It adapts splitter.Open, which reads the
// whole file through r; splitter/pdfdoc's lazy reader takes its place:
//
//	d, err := pdfdoc.Open(ctx, r, size, pdfdoc.Options{})
func openPDF(ctx context.Context, r io.ReaderAt, size int64) (worker.Document, error) {
	d, err := splitter.Open(ctx, io.NewSectionReader(r, 0, size))
	if err != nil {
		// Not a typed nil inside a non-nil interface.
		return nil, err
	}
	return pdfDocument{d}, nil
}

type pdfDocument struct{ d *splitter.Doc }

func (p pdfDocument) PageCount() int { return p.d.PageCount() }

func (p pdfDocument) Extract(ctx context.Context, from, thru int, w io.Writer) error {
	return p.d.Extract(from, thru, w)
}

// classifyPDFError names the PDF package's sentinel errors for the daemon,
// on the other side of the process boundary.
func classifyPDFError(err error) string {
	switch {
	case errors.Is(err, splitter.ErrNotPDF):
		return splitter.KindNotPDF
	case errors.Is(err, splitter.ErrEncrypted):
		return splitter.KindEncrypted
	case errors.Is(err, splitter.ErrPageRange):
		return splitter.KindPageRange
	}
	return ""
}
