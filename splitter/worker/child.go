package worker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
)

// Document is what a worker needs of an opened document.
type Document interface {
	PageCount() int
	// Extract writes pages from..thru (1-based, inclusive) as a standalone
	// document to w.
	Extract(ctx context.Context, from, thru int, w io.Writer) error
}

// Opener opens the document of size bytes that r reads. r reads through the
// parent, range by range: an opener should read only what it needs.
type Opener func(ctx context.Context, r io.ReaderAt, size int64) (Document, error)

// KindPanic is the kind of a panic recovered in the worker; the worker exits
// after reporting it, since the panic may have left its state broken.
const KindPanic = "panic"

// ServeOptions are the child side's.
type ServeOptions struct {
	Open Opener
	// Classify names the kind of a document error ("" for none), so that
	// the parent can tell failures apart where errors.Is cannot reach.
	Classify func(error) string
	// Stderr receives the stack of a recovered panic (default os.Stderr).
	Stderr io.Writer
}

// Serve answers one parent's requests on in and out for one document, then
// returns when in reaches EOF. Failures of the document are answered to the
// parent, not returned; the error is for the protocol breaking down or a
// panic. ctx is checked between requests and handed to the opener.
func Serve(ctx context.Context, in io.Reader, out io.Writer, o ServeOptions) error {
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Classify == nil {
		o.Classify = func(error) string { return "" }
	}
	s := &server{in: bufio.NewReaderSize(in, 64<<10), out: out, o: o}
	if err := s.send(frameHello, nil); err != nil {
		return err
	}
	typ, payload, err := s.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("reading the open request: %w", err)
	}
	var om openMsg
	if typ != frameOpen {
		return fmt.Errorf("%w: first request is %q, want %q", errProtocol, typ, frameOpen)
	}
	if err := decodeJSON(typ, payload, &om); err != nil {
		return err
	}
	if om.Size < 0 {
		return fmt.Errorf("%w: negative size %d", errProtocol, om.Size)
	}
	src := &remote{s: s, size: om.Size}

	var doc Document
	err = s.recover(func() (err error) {
		doc, err = o.Open(ctx, src, om.Size)
		if err == nil && doc == nil {
			err = errors.New("worker: the opener returned no document")
		}
		return err
	})
	if err != nil {
		if serr := s.sendError(err); serr != nil {
			return serr
		}
		return panicOnly(err)
	}
	if err := writeJSON(s, frameParsed, parsedMsg{Pages: doc.PageCount()}); err != nil {
		return err
	}

	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		typ, payload, err := s.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading a request: %w", err)
		}
		if typ != frameExtract {
			return fmt.Errorf("%w: request %q", errProtocol, typ)
		}
		var em extractMsg
		if err := decodeJSON(typ, payload, &em); err != nil {
			return err
		}
		pw := &partWriter{s: s}
		bw := bufio.NewWriterSize(pw, partBuffer)
		err = s.recover(func() error {
			if err := doc.Extract(ctx, em.From, em.Thru, bw); err != nil {
				return err
			}
			return bw.Flush()
		})
		if err != nil {
			if serr := s.sendError(err); serr != nil {
				return serr
			}
			if err := panicOnly(err); err != nil {
				return err
			}
			continue
		}
		if err := writeJSON(s, frameDone, doneMsg{Size: pw.n}); err != nil {
			return err
		}
	}
}

// partBuffer is how much of a part the worker holds before sending it on.
const partBuffer = 256 << 10

type server struct {
	in  *bufio.Reader
	out io.Writer
	o   ServeOptions

	// wmu keeps frames whole if the document writes and reads from
	// different goroutines; rmu makes a read's request and answer one step.
	wmu sync.Mutex
	rmu sync.Mutex
	buf []byte
}

// Write sends one frame: writeJSON and writeFrame call it with whole frames.
func (s *server) Write(b []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.out.Write(b)
}

func (s *server) send(typ byte, payload []byte) error {
	if len(payload) > smallFrame {
		// writeFrame would split header and payload into two writes.
		s.wmu.Lock()
		defer s.wmu.Unlock()
		return writeFrame(s.out, typ, payload)
	}
	return writeFrame(s, typ, payload)
}

func (s *server) sendError(err error) error {
	m := errorMsg{Err: err.Error(), Kind: s.o.Classify(err)}
	var p *panicError
	if errors.As(err, &p) {
		m.Kind = KindPanic
	}
	if len(m.Err) > maxControl/2 {
		m.Err = m.Err[:maxControl/2] + "…"
	}
	return writeJSON(s, frameError, m)
}

// next reads the parent's next request.
func (s *server) next() (byte, []byte, error) {
	typ, n, err := readHeader(s.in)
	if err != nil {
		return 0, nil, err
	}
	if typ != frameOpen && typ != frameExtract {
		return 0, nil, fmt.Errorf("%w: unexpected frame %q", errProtocol, typ)
	}
	b, err := readPayload(s.in, &s.buf, n)
	return typ, b, err
}

// fetch asks the parent for len(p) bytes at off, which must lie within the
// source, and reads its answer into p.
func (s *server) fetch(p []byte, off int64) error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if err := s.send(frameRead, encodeRead(off, len(p))); err != nil {
		return fmt.Errorf("asking for source bytes: %w", err)
	}
	typ, n, err := readHeader(s.in)
	if err != nil {
		return fmt.Errorf("reading source bytes: %w", err)
	}
	switch typ {
	case frameData:
		if n != len(p) {
			return fmt.Errorf("%w: %d source bytes at %d, asked for %d", errProtocol, n, off, len(p))
		}
		if _, err := io.ReadFull(s.in, p); err != nil {
			return fmt.Errorf("reading source bytes: %w", err)
		}
		return nil
	case frameFailed:
		msg, err := readPayload(s.in, &s.buf, n)
		if err != nil {
			return err
		}
		return &sourceError{msg: string(msg)}
	}
	return fmt.Errorf("%w: frame %q in answer to a read", errProtocol, typ)
}

// prefetch tells the parent that reads of n bytes at each of offs follow,
// and waits for it to have fetched them. Reads longer than the protocol
// lets a prefetch announce are not announced: the parent would take the
// frame for a hijacked worker's.
func (s *server) prefetch(offs []int64, n int) error {
	if n < 1 || n > maxPrefetchSpan {
		return nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for len(offs) > 0 {
		k := min(len(offs), maxPrefetch)
		if err := s.send(framePrefetch, encodePrefetch(offs[:k], n)); err != nil {
			return fmt.Errorf("announcing source reads: %w", err)
		}
		typ, m, err := readHeader(s.in)
		if err != nil {
			return fmt.Errorf("reading the answer to a prefetch: %w", err)
		}
		if typ != frameData || m != 0 {
			return fmt.Errorf("%w: frame %q of %d bytes in answer to a prefetch", errProtocol, typ, m)
		}
		offs = offs[k:]
	}
	return nil
}

// sourceError is the parent failing to read the source (the parent knows
// it and does not blame the document).
type sourceError struct{ msg string }

func (e *sourceError) Error() string { return "reading the source: " + e.msg }

// remote is the source as the worker sees it: an io.ReaderAt whose bytes
// come from the parent. Small reads go through a few cached blocks, so that
// a parser reading a few bytes at a time does not cost a round trip each;
// large ones go straight through.
type remote struct {
	s    *server
	size int64

	mu     sync.Mutex
	blocks [remoteBlocks]remoteBlock
	tick   uint64
}

// The block cache's blocks are small and aligned like the parser's own and
// the daemon's smallest cache entries (4 KiB), so that a small read asks the
// parent for no more than one of those; reads of a block or more go
// straight through.
const (
	remoteBlockSize = 4 << 10
	remoteBlocks    = 32
)

type remoteBlock struct {
	valid bool
	idx   int64  // block index
	buf   []byte // the block's bytes (shorter at the end of the source)
	used  uint64
}

func (r *remote) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("worker: negative offset")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) && off < r.size {
		rest := p[n:]
		k := 0
		if len(rest) >= remoteBlockSize {
			k = int(min(int64(len(rest)), maxData, r.size-off))
			if err := r.s.fetch(rest[:k], off); err != nil {
				return n, err
			}
		} else {
			b, err := r.block(off / remoteBlockSize)
			if err != nil {
				return n, err
			}
			k = copy(rest, b[off%remoteBlockSize:])
		}
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Prefetch asks the parent to fetch, at once, what reads of n bytes at
// each of offs need (see pdfdoc.Prefetcher).
func (r *remote) Prefetch(offs []int64, n int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.s.prefetch(offs, n)
}

// block returns block idx, fetching it into the least recently used slot.
func (r *remote) block(idx int64) ([]byte, error) {
	r.tick++
	victim := 0
	for i := range r.blocks {
		b := &r.blocks[i]
		if b.valid && b.idx == idx {
			b.used = r.tick
			return b.buf, nil
		}
		if !b.valid || (r.blocks[victim].valid && b.used < r.blocks[victim].used) {
			victim = i
		}
	}
	b := &r.blocks[victim]
	off := idx * remoteBlockSize
	if cap(b.buf) < remoteBlockSize {
		b.buf = make([]byte, remoteBlockSize)
	}
	b.valid = false
	b.buf = b.buf[:min(remoteBlockSize, r.size-off)]
	if err := r.s.fetch(b.buf, off); err != nil {
		return nil, err
	}
	b.valid, b.idx, b.used = true, idx, r.tick
	return b.buf, nil
}

// partWriter sends what it is given as part frames.
type partWriter struct {
	s *server
	n int64
}

func (w *partWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), maxData)
		if err := w.s.send(framePart, p[:k]); err != nil {
			return written, fmt.Errorf("sending the part: %w", err)
		}
		written += k
		w.n += int64(k)
		p = p[k:]
	}
	return written, nil
}

// panicError is a recovered panic.
type panicError struct{ value any }

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

func panicOnly(err error) error {
	var p *panicError
	if errors.As(err, &p) {
		return p
	}
	return nil
}

// recover turns a panic (parsers have panicked on malformed files) into an
// answer the parent can log, with the stack on stderr for whoever debugs it.
func (s *server) recover(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(s.o.Stderr, "panic: %v\n%s", v, debug.Stack())
			err = &panicError{value: v}
		}
	}()
	return f()
}
