// Package worker runs document parsing in child processes: the parent side
// (Pool) spawns and supervises them (memory limit, timeouts, exit
// classification, least privilege), the child side (Serve, Main) answers the
// parent's requests with a Document made by an Opener. It knows nothing of
// PDF: the caller injects the opener and names the kinds of its errors.
//
// The child reads its source through the parent, by ranges, on demand, and
// streams the parts it makes back to the parent; it needs no file system
// access and holds no credentials.
package worker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The protocol is framed, binary, on the child's stdin (parent to child) and
// a private copy of its stdout (child to parent). A frame is one type byte, a
// big-endian uint32 payload length, and the payload. One request is in flight
// at a time; while the child works on it, it may ask the parent for bytes of
// the source any number of times:
//
//	← H                                   the child is confined and ready
//	→ O {"size":9000000}                  the source's size: open it
//	← R off,n   → D bytes | F message     a read of the source (any number)
//	← Q n,off…  → D (empty)               reads of n bytes at each off follow:
//	                                      fetch them at once (any number)
//	← P {"pages":137}                     opened (or X)
//	→ E {"from":51,"thru":100}            extract pages
//	← R …   ← W bytes …                   reads and pieces of the part, interleaved
//	← Z {"size":48213}                    the part is complete (or X)
//	← X {"err":"message","kind":"notpdf"} instead of P or Z
//
// EOF on stdin asks the child to exit. A failed open ends the child after its
// answer; a failed extract does not, except a panic.
//
// Neither side trusts the other's lengths: every frame is bounded by its type
// before anything is allocated, so a compromised worker cannot make the
// daemon allocate more than one data frame.
const (
	frameOpen    = 'O'
	frameExtract = 'E'
	frameData    = 'D'
	frameFailed  = 'F'

	frameHello    = 'H'
	frameRead     = 'R'
	framePrefetch = 'Q'
	frameParsed   = 'P'
	framePart     = 'W'
	frameDone     = 'Z'
	frameError    = 'X'
	frameHdrSize  = 5
)

const (
	// maxData bounds a data frame (a read answer, a piece of a part), and so
	// the memory each side spends on one worker's traffic.
	maxData = 1 << 20
	// maxControl bounds a control frame (JSON, an error message).
	maxControl  = 64 << 10
	readReqSize = 12 // int64 offset, uint32 length
	// maxPrefetch bounds the offsets of one prefetch frame (a uint32
	// length, then int64 offsets); maxPrefetchSpan the reads it announces
	// (the worker's are of a page dictionary, 512 bytes): a prefetch is
	// for small scattered reads, and what a long one asks of the source
	// (4,096 of 1 MiB: a GiB of chunks from one frame) is for reads to ask.
	maxPrefetch     = 4096
	maxPrefetchSpan = 64 << 10
)

// frameLimit is the largest payload a frame of type typ may carry, or -1 for
// a type that is no part of the protocol.
func frameLimit(typ byte) int {
	switch typ {
	case frameData, framePart:
		return maxData
	case frameRead:
		return readReqSize
	case framePrefetch:
		return 4 + 8*maxPrefetch
	case frameHello:
		return 0
	case frameOpen, frameExtract, frameFailed, frameParsed, frameDone, frameError:
		return maxControl
	}
	return -1
}

// errProtocol is a frame that breaks the protocol: unknown, oversized or out
// of place.
var errProtocol = errors.New("protocol violation")

// smallFrame is the size up to which a frame is written in one call (one
// system call on a pipe) rather than header and payload apart.
const smallFrame = 4 << 10

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) <= smallFrame {
		b := make([]byte, frameHdrSize+len(payload))
		putHeader(b, typ, len(payload))
		copy(b[frameHdrSize:], payload)
		_, err := w.Write(b)
		return err
	}
	var hdr [frameHdrSize]byte
	putHeader(hdr[:], typ, len(payload))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

func putHeader(b []byte, typ byte, n int) {
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], uint32(n))
}

func writeJSON(w io.Writer, typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxControl {
		return fmt.Errorf("control frame of %d bytes", len(b))
	}
	return writeFrame(w, typ, b)
}

// readHeader reads a frame header and checks the length against the type's
// bound. io.EOF means a clean end between frames.
func readHeader(r io.Reader) (typ byte, n int, err error) {
	var hdr [frameHdrSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, 0, fmt.Errorf("%w: cut inside a frame header", errProtocol)
		}
		return 0, 0, err
	}
	typ = hdr[0]
	length := binary.BigEndian.Uint32(hdr[1:])
	limit := frameLimit(typ)
	if limit < 0 {
		return 0, 0, fmt.Errorf("%w: unknown frame type %#x", errProtocol, typ)
	}
	if int64(length) > int64(limit) {
		return 0, 0, fmt.Errorf("%w: frame %q of %d bytes, limit %d", errProtocol, typ, length, limit)
	}
	return typ, int(length), nil
}

// readPayload reads n bytes into buf, growing it up to n (which readHeader
// bounded).
func readPayload(r io.Reader, buf *[]byte, n int) ([]byte, error) {
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: cut inside a frame: %w", errProtocol, err)
	}
	return b, nil
}

type openMsg struct {
	Size int64 `json:"size"`
}

type extractMsg struct {
	From int `json:"from"`
	Thru int `json:"thru"`
}

type parsedMsg struct {
	Pages int `json:"pages"`
}

type doneMsg struct {
	Size int64 `json:"size"`
}

type errorMsg struct {
	Err  string `json:"err"`
	Kind string `json:"kind,omitempty"`
}

func encodeRead(off int64, n int) []byte {
	b := make([]byte, readReqSize)
	binary.BigEndian.PutUint64(b, uint64(off))
	binary.BigEndian.PutUint32(b[8:], uint32(n))
	return b
}

func decodeRead(b []byte) (off int64, n int, err error) {
	if len(b) != readReqSize {
		return 0, 0, fmt.Errorf("%w: read request of %d bytes", errProtocol, len(b))
	}
	off = int64(binary.BigEndian.Uint64(b))
	n = int(binary.BigEndian.Uint32(b[8:]))
	if off < 0 || n < 1 || n > maxData {
		return 0, 0, fmt.Errorf("%w: read of %d bytes at %d", errProtocol, n, off)
	}
	return off, n, nil
}

func encodePrefetch(offs []int64, n int) []byte {
	b := make([]byte, 4+8*len(offs))
	binary.BigEndian.PutUint32(b, uint32(n))
	for i, off := range offs {
		binary.BigEndian.PutUint64(b[4+8*i:], uint64(off))
	}
	return b
}

func decodePrefetch(b []byte) (offs []int64, n int, err error) {
	if len(b) < 4 || (len(b)-4)%8 != 0 {
		return nil, 0, fmt.Errorf("%w: prefetch request of %d bytes", errProtocol, len(b))
	}
	n = int(binary.BigEndian.Uint32(b))
	if n < 1 || n > maxPrefetchSpan {
		return nil, 0, fmt.Errorf("%w: prefetch of %d bytes a range", errProtocol, n)
	}
	offs = make([]int64, (len(b)-4)/8)
	for i := range offs {
		offs[i] = int64(binary.BigEndian.Uint64(b[4+8*i:]))
		if offs[i] < 0 {
			return nil, 0, fmt.Errorf("%w: prefetch at %d", errProtocol, offs[i])
		}
	}
	return offs, n, nil
}

func decodeJSON(typ byte, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: frame %q: %w", errProtocol, typ, err)
	}
	return nil
}
