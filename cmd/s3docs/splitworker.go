package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"s3docs/splitter"
	"s3docs/splitter/pdfdoc"
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

// openPDF is the worker's opener: the lazy reader of splitter/pdfdoc, which
// reads only what the pages asked for through r (the daemon's chunk cache,
// by ranges).
func openPDF(ctx context.Context, r io.ReaderAt, size int64) (worker.Document, error) {
	d, err := pdfdoc.Open(ctx, r, size, pdfdoc.Options{})
	if err != nil {
		// Not a typed nil inside a non-nil interface.
		return nil, err
	}
	return d, nil
}

// classifyPDFError names the PDF package's sentinel errors for the daemon,
// on the other side of the process boundary.
func classifyPDFError(err error) string {
	switch {
	case errors.Is(err, pdfdoc.ErrNotPDF):
		return splitter.KindNotPDF
	case errors.Is(err, pdfdoc.ErrEncrypted):
		return splitter.KindEncrypted
	case errors.Is(err, pdfdoc.ErrPageRange):
		return splitter.KindPageRange
	}
	return ""
}
