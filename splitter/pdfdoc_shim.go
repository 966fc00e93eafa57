package splitter

// Temporary shim (delete at merge): the worker code still calls the old
// in-package API; it forwards to pdfdoc, the PDF code's new home.

import (
	"context"
	"errors"
	"io"

	"s3docs/splitter/pdfdoc"
)

var (
	ErrNotPDF    = pdfdoc.ErrNotPDF
	ErrEncrypted = pdfdoc.ErrEncrypted
	ErrPageRange = pdfdoc.ErrPageRange
)

// Doc is an open PDF, read lazily through pdfdoc.
type Doc struct{ d *pdfdoc.Doc }

// Open opens the PDF r, which must also be an io.ReaderAt (the worker's
// source is an *io.SectionReader).
func Open(ctx context.Context, r io.ReadSeeker) (*Doc, error) {
	ra, ok := r.(io.ReaderAt)
	if !ok {
		return nil, errors.New("splitter: the source is not an io.ReaderAt")
	}
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	d, err := pdfdoc.Open(ctx, ra, size, pdfdoc.Options{})
	if err != nil {
		return nil, err
	}
	return &Doc{d: d}, nil
}

func (d *Doc) PageCount() int { return d.d.PageCount() }

func (d *Doc) Extract(from, thru int, w io.Writer) error {
	return d.d.Extract(context.Background(), from, thru, w)
}
