package pdfdoc

import (
	"bufio"
	"fmt"
	"io"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// partWriter writes a part as it is copied: each object as soon as it is
// complete, stream data straight from the source. It keeps the objects'
// offsets and nothing else, so memory is O(objects) whatever the part's
// size. Every object has generation 0, which its xref entry says too
// (pdfcpu's writer got this wrong for generations above 0).
type partWriter struct {
	bw      *bufio.Writer
	cw      *limitWriter
	offsets []int64 // offsets[n]: where object n starts; -1 not written yet
	maxObjs int
}

// limitWriter counts bytes and refuses to go past a budget.
type limitWriter struct {
	w     io.Writer
	n     int64
	limit int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n+int64(len(p)) > l.limit {
		return 0, fmt.Errorf("%w: part over %d bytes", ErrTooLarge, l.limit)
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	if err != nil {
		err = &WriteError{Err: err}
	}
	return n, err
}

// WriteError is a failure of the writer a part goes to (a full disk, say):
// neither the source's fault nor the PDF's. errors.As finds it.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "pdfdoc: writing the part: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

func newPartWriter(w io.Writer, version string, maxBytes int64, maxObjs int) *partWriter {
	cw := &limitWriter{w: w, limit: maxBytes}
	p := &partWriter{bw: bufio.NewWriterSize(cw, 64<<10), cw: cw, offsets: []int64{0}, maxObjs: maxObjs}
	// The comment of bytes >= 128 marks the file as binary.
	fmt.Fprintf(p.bw, "%%PDF-%s\n%%\xe2\xe3\xcf\xd3\n", version)
	return p
}

func (p *partWriter) pos() int64 { return p.cw.n + int64(p.bw.Buffered()) }

// alloc reserves the next object number.
func (p *partWriter) alloc() (int, error) {
	if len(p.offsets) > p.maxObjs {
		return 0, fmt.Errorf("%w: part over %d objects", ErrTooLarge, p.maxObjs)
	}
	p.offsets = append(p.offsets, -1)
	return len(p.offsets) - 1, nil
}

func (p *partWriter) begin(n int) {
	p.offsets[n] = p.pos()
	fmt.Fprintf(p.bw, "%d 0 obj\n", n)
}

// serialize writes a direct object as PDF text: pdfcpu's PDFString, null
// for nil.
func serialize(o types.Object) string {
	if o == nil {
		return "null"
	}
	return o.PDFString()
}

// object writes object n.
func (p *partWriter) object(n int, o types.Object) error {
	p.begin(n)
	p.bw.WriteString(serialize(o))
	_, err := p.bw.WriteString("\nendobj\n")
	return err
}

// stream writes stream object n: dict with /Length set, then length bytes
// of data.
func (p *partWriter) stream(n int, dict types.Dict, data io.Reader, length int64) error {
	dict["Length"] = types.Integer(length)
	p.begin(n)
	p.bw.WriteString(dict.PDFString())
	p.bw.WriteString("\nstream\n")
	if _, err := io.CopyN(p.bw, data, length); err != nil {
		return err
	}
	_, err := p.bw.WriteString("\nendstream\nendobj\n")
	return err
}

// finish writes the cross-reference table and the trailer.
func (p *partWriter) finish(root, info int, id []byte) error {
	for n := 1; n < len(p.offsets); n++ {
		if p.offsets[n] < 0 {
			return fmt.Errorf("object %d of the part was never written", n)
		}
	}
	xref := p.pos()
	fmt.Fprintf(p.bw, "xref\n0 %d\n0000000000 65535 f\r\n", len(p.offsets))
	for _, off := range p.offsets[1:] {
		fmt.Fprintf(p.bw, "%010d 00000 n\r\n", off)
	}
	fmt.Fprintf(p.bw, "trailer\n<< /Size %d /Root %d 0 R", len(p.offsets), root)
	if info > 0 {
		fmt.Fprintf(p.bw, " /Info %d 0 R", info)
	}
	fmt.Fprintf(p.bw, " /ID [<%x> <%x>] >>\nstartxref\n%d\n%%%%EOF\n", id, id, xref)
	return p.bw.Flush()
}
