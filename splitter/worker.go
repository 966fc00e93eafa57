package splitter

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"sort"
	"syscall"
)

// The protocol between Pool (parent) and ServeWorker (child) is JSON lines:
// requests on the child's stdin, responses on its stdout, one request at a
// time.
//
//	→ {"op":"open","paths":["/cache/c0","/cache/c1"],"size":9000000}
//	← {"op":"opened"}             every file is open: the parent may unpin them
//	← {"op":"parsed","pages":137}
//	→ {"op":"extract","from":51,"thru":100,"out":"/cache/tmp/p1"}
//	← {"op":"extract","size":48213}
//	any response may instead carry {"err":"message","kind":"notpdf"}
//
// EOF on stdin asks the child to exit. A failed open or parse ends the child
// after its answer; a failed extract does not (the parsed document is still
// good), except a panic, after which nothing in the process is trusted.
const (
	workerOpOpen    = "open"
	workerOpOpened  = "opened"
	workerOpParsed  = "parsed"
	workerOpExtract = "extract"
)

// Kinds carry the document's sentinel errors across the process boundary,
// where errors.Is cannot see them otherwise.
const (
	workerKindNotPDF    = "notpdf"
	workerKindEncrypted = "encrypted"
	workerKindPageRange = "pagerange"
	workerKindPanic     = "panic"
	// workerKindIO: the worker's own files (the source chunks, the output)
	// failed, e.g. a full disk: not the document's fault.
	workerKindIO = "io"
)

type workerRequest struct {
	Op    string   `json:"op"`
	Paths []string `json:"paths,omitempty"`
	Size  int64    `json:"size,omitempty"`
	From  int      `json:"from,omitempty"`
	Thru  int      `json:"thru,omitempty"`
	Out   string   `json:"out,omitempty"`
}

type workerResponse struct {
	Op    string `json:"op"`
	Pages int    `json:"pages,omitempty"`
	Size  int64  `json:"size,omitempty"`
	Err   string `json:"err,omitempty"`
	Kind  string `json:"kind,omitempty"`
}

// workerDocument is what a worker needs of a parsed PDF; *Doc is the real one,
// tests substitute fakes that panic, hog memory or sleep.
type workerDocument interface {
	PageCount() int
	Extract(from, thru int, w io.Writer) error
}

type workerOpener func(ctx context.Context, r io.ReadSeeker) (workerDocument, error)

func openWorkerDoc(ctx context.Context, r io.ReadSeeker) (workerDocument, error) {
	d, err := Open(ctx, r)
	if err != nil {
		// Not a typed nil inside a non-nil interface.
		return nil, err
	}
	return d, nil
}

// ServeWorker is the body of the hidden worker subcommand: it answers the
// requests of one Pool process on in and out (the subcommand's stdin and
// stdout) for one PDF, then returns when in reaches EOF. Failures of the
// document (not a PDF, encrypted, bad range, unreadable source files) are
// answered to the parent, not returned; the error is for the protocol breaking
// down or a panic. ctx is checked between requests and handed to Open.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	return serveWorker(ctx, in, out, os.Stderr, openWorkerDoc)
}

func serveWorker(ctx context.Context, in io.Reader, out, errOut io.Writer, open workerOpener) error {
	out, closeOut, err := workerProtocolOut(out)
	if err != nil {
		return err
	}
	defer closeOut()
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)

	var req workerRequest
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("reading the open request: %w", err)
	}
	if req.Op != workerOpOpen {
		return fmt.Errorf("first request is %q, want %q", req.Op, workerOpOpen)
	}
	src, closeSrc, err := openWorkerSource(req.Paths, req.Size)
	if err != nil {
		return enc.Encode(workerErrResponse(workerOpOpened, err))
	}
	defer closeSrc()
	if err := enc.Encode(workerResponse{Op: workerOpOpened}); err != nil {
		return err
	}

	var doc workerDocument
	err = workerRecover(errOut, func() (err error) {
		doc, err = open(ctx, src)
		return err
	})
	if err != nil {
		if eerr := enc.Encode(workerErrResponse(workerOpParsed, err)); eerr != nil {
			return eerr
		}
		return workerPanicOnly(err)
	}
	if err := enc.Encode(workerResponse{Op: workerOpParsed, Pages: doc.PageCount()}); err != nil {
		return err
	}

	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var req workerRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading a request: %w", err)
		}
		resp := workerResponse{Op: req.Op}
		switch req.Op {
		case workerOpExtract:
			err = workerRecover(errOut, func() (err error) {
				resp.Size, err = workerExtract(doc, req.From, req.Thru, req.Out)
				return err
			})
		default:
			err = fmt.Errorf("unknown request %q", req.Op)
		}
		if err != nil {
			resp = workerErrResponse(req.Op, err)
		}
		if eerr := enc.Encode(resp); eerr != nil {
			return eerr
		}
		if err := workerPanicOnly(err); err != nil {
			return err
		}
	}
}

func workerErrResponse(op string, err error) workerResponse {
	r := workerResponse{Op: op, Err: err.Error()}
	var p *workerPanic
	switch {
	case errors.As(err, &p):
		r.Kind = workerKindPanic
	case errors.Is(err, ErrNotPDF):
		r.Kind = workerKindNotPDF
	case errors.Is(err, ErrEncrypted):
		r.Kind = workerKindEncrypted
	case errors.Is(err, ErrPageRange):
		r.Kind = workerKindPageRange
	case isLocalIOError(err):
		r.Kind = workerKindIO
	}
	return r
}

// isLocalIOError is a failure of a file system call (opening or reading a
// source chunk, writing the output), as opposed to a fault of the document.
func isLocalIOError(err error) bool {
	var pe *fs.PathError
	var errno syscall.Errno
	return errors.As(err, &pe) || errors.As(err, &errno)
}

// workerPanic is a recovered panic: reported to the parent like an error, but
// the worker then exits, since the panic may have left the document broken.
type workerPanic struct{ value any }

func (p *workerPanic) Error() string { return fmt.Sprintf("panic: %v", p.value) }

func workerPanicOnly(err error) error {
	var p *workerPanic
	if errors.As(err, &p) {
		return p
	}
	return nil
}

// workerRecover turns a panic (pdfcpu has panicked on malformed files) into an
// answer the parent can log, with the stack on stderr for whoever debugs it.
func workerRecover(errOut io.Writer, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(errOut, "panic: %v\n%s", v, debug.Stack())
			err = &workerPanic{value: v}
		}
	}()
	return f()
}

// workerProtocolOut keeps the protocol apart from anything else in the process
// that prints to standard output (one stray fmt.Print in a library would
// corrupt a response): the protocol gets a private copy of fd 1, and fd 1 is
// pointed at stderr, which the parent logs.
func workerProtocolOut(out io.Writer) (io.Writer, func(), error) {
	if f, ok := out.(*os.File); !ok || f != os.Stdout {
		return out, func() {}, nil
	}
	fd, err := syscall.Dup(int(os.Stdout.Fd()))
	if err != nil {
		return nil, nil, fmt.Errorf("duplicating stdout: %w", err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.Dup3(int(os.Stderr.Fd()), int(os.Stdout.Fd()), 0); err != nil {
		syscall.Close(fd)
		return nil, nil, fmt.Errorf("pointing stdout at stderr: %w", err)
	}
	f := os.NewFile(uintptr(fd), "split-protocol")
	return f, func() { f.Close() }, nil
}

// workerExtract writes the part to path and leaves nothing there on failure,
// so a half-written part cannot be mistaken for a whole one.
func workerExtract(doc workerDocument, from, thru int, path string) (size int64, err error) {
	if path == "" {
		return 0, errors.New("no output path")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(path)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &workerCountingWriter{w: bw}
	if err := doc.Extract(from, thru, cw); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	ok = true
	return cw.n, nil
}

type workerCountingWriter struct {
	w io.Writer
	n int64
}

func (c *workerCountingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// openWorkerSource opens every file before anything is read, because the
// parent unpins them once told they are open and the cache may then unlink
// them; an open file stays readable after unlink.
func openWorkerSource(paths []string, size int64) (*io.SectionReader, func(), error) {
	m := &workerFiles{}
	closeAll := func() {
		for _, f := range m.files {
			f.Close()
		}
	}
	var end int64
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		m.files = append(m.files, f)
		fi, err := f.Stat()
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		end += fi.Size()
		m.ends = append(m.ends, end)
	}
	if end != size {
		closeAll()
		return nil, nil, fmt.Errorf("the %d source files hold %d bytes, want %d", len(paths), end, size)
	}
	return io.NewSectionReader(m, 0, size), closeAll, nil
}

// workerFiles reads the concatenation of files whose sizes were fixed at open.
type workerFiles struct {
	files []*os.File
	ends  []int64 // ends[i] is the offset just past files[i]
}

func (m *workerFiles) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	i := sort.Search(len(m.ends), func(i int) bool { return m.ends[i] > off })
	n := 0
	for n < len(p) && i < len(m.files) {
		start := int64(0)
		if i > 0 {
			start = m.ends[i-1]
		}
		want := int(min(int64(len(p)-n), m.ends[i]-off))
		k, err := m.files[i].ReadAt(p[n:n+want], off-start)
		n += k
		off += int64(k)
		if k < want {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("%s shrank below its size at open: %w", m.files[i].Name(), io.ErrUnexpectedEOF)
			}
			return n, err
		}
		i++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
