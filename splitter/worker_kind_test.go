package splitter

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"
)

// A full disk in a worker is not the PDF's fault: it must not be remembered.
func TestWorkerIOErrorsAreNotTheDocumentsFault(t *testing.T) {
	full := &fs.PathError{Op: "write", Path: "/cache/tmp/blob.1", Err: syscall.ENOSPC}
	r := workerErrResponse(workerOpExtract, full)
	if r.Kind != workerKindIO {
		t.Fatalf("kind %q, want %q", r.Kind, workerKindIO)
	}
	if isDocumentFailure(r.error()) {
		t.Fatal("a full disk counts as a broken PDF")
	}
	parse := workerErrResponse(workerOpParsed, errors.New("splitter: parse PDF: bad xref"))
	if !isDocumentFailure(parse.error()) {
		t.Fatal("a parse error does not count as the PDF's fault")
	}
	if !isDocumentFailure(workerErrResponse(workerOpParsed, ErrNotPDF).error()) {
		t.Fatal("not a PDF does not count as the PDF's fault")
	}
}
