package worker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// In-process tests of the child side, where the race detector sees it: a
// test plays the parent over pipes.

type testParent struct {
	t       *testing.T
	toChild *io.PipeWriter
	fromCh  *bufio.Reader
	closeCh func()
	served  chan error // Serve's result
	content []byte
	reads   []int // sizes of the reads asked for
	// prefetches are the prefetch frames: their offsets each.
	prefetches [][]int64
	// failAt: a read touching this offset is answered with a failure (-1:
	// none).
	failAt int64
}

func startChild(t *testing.T, content []byte, open Opener) *testParent {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	tp := &testParent{t: t, toChild: inW, fromCh: bufio.NewReader(outR), served: make(chan error, 1),
		content: content, failAt: -1}
	tp.closeCh = func() { inW.Close(); outR.Close() }
	go func() {
		err := Serve(context.Background(), inR, outW, ServeOptions{Open: open, Classify: fakeClassify, Stderr: io.Discard})
		outW.CloseWithError(io.EOF)
		tp.served <- err
	}()
	t.Cleanup(tp.closeCh)
	return tp
}

func (tp *testParent) send(typ byte, v any) {
	tp.t.Helper()
	var err error
	if b, ok := v.([]byte); ok {
		err = writeFrame(tp.toChild, typ, b)
	} else {
		err = writeJSON(tp.toChild, typ, v)
	}
	if err != nil {
		tp.t.Fatalf("sending %q: %v", typ, err)
	}
}

// answer serves reads until the child sends another frame, which it
// returns; part frames are appended to part.
func (tp *testParent) answer(part *bytes.Buffer) (byte, []byte) {
	tp.t.Helper()
	var buf []byte
	for {
		typ, n, err := readHeader(tp.fromCh)
		if err != nil {
			tp.t.Fatalf("reading from the child: %v", err)
		}
		payload, err := readPayload(tp.fromCh, &buf, n)
		if err != nil {
			tp.t.Fatal(err)
		}
		switch typ {
		case frameRead:
			off, n, err := decodeRead(payload)
			if err != nil {
				tp.t.Fatal(err)
			}
			tp.reads = append(tp.reads, n)
			if tp.failAt >= off && tp.failAt < off+int64(n) {
				tp.send(frameFailed, []byte("bucket on fire"))
				continue
			}
			end := min(off+int64(n), int64(len(tp.content)))
			tp.send(frameData, tp.content[off:end])
		case framePrefetch:
			offs, _, err := decodePrefetch(payload)
			if err != nil {
				tp.t.Fatal(err)
			}
			tp.prefetches = append(tp.prefetches, offs)
			tp.send(frameData, []byte{})
		case framePart:
			part.Write(payload)
		default:
			return typ, bytes.Clone(payload)
		}
	}
}

func TestServeProtocol(t *testing.T) {
	content := []byte("%FAKE pages=6 read-all\n" + strings.Repeat("body of the fake document ", 100_000))
	tp := startChild(t, content, fakeOpen)
	if typ, _ := tp.answer(nil); typ != frameHello {
		t.Fatalf("first frame %q, want hello", typ)
	}
	tp.send(frameOpen, openMsg{Size: int64(len(content))})
	typ, payload := tp.answer(nil)
	if typ != frameParsed || string(payload) != `{"pages":6}` {
		t.Fatalf("open: %q %s", typ, payload)
	}
	for _, n := range tp.reads {
		if n > maxData {
			t.Errorf("a read of %d bytes, past the frame bound", n)
		}
	}
	var part bytes.Buffer
	tp.send(frameExtract, extractMsg{From: 2, Thru: 3})
	typ, payload = tp.answer(&part)
	want := fakePart(sha256.Sum256(content), 2, 3)
	if typ != frameDone || part.String() != want || string(payload) != fmt.Sprintf(`{"size":%d}`, len(want)) {
		t.Fatalf("extract: %q %s, part %q", typ, payload, part.String())
	}
	tp.send(frameExtract, extractMsg{From: 5, Thru: 9})
	typ, payload = tp.answer(nil)
	if typ != frameError || !strings.Contains(string(payload), `"kind":"pagerange"`) {
		t.Fatalf("bad range: %q %s", typ, payload)
	}
	// A frame the child does not expect ends it.
	tp.send(frameData, []byte("surprise"))
	select {
	case err := <-tp.served:
		if !errors.Is(err, errProtocol) {
			t.Errorf("Serve after a stray frame: %v, want a protocol error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not end after a stray frame")
	}
}

func TestServeOpenFailures(t *testing.T) {
	tp := startChild(t, []byte("not a document"), fakeOpen)
	tp.answer(nil)
	tp.send(frameOpen, openMsg{Size: 14})
	typ, payload := tp.answer(nil)
	if typ != frameError || !strings.Contains(string(payload), `"kind":"notpdf"`) {
		t.Errorf("open of junk: %q %s", typ, payload)
	}
	if err := <-tp.served; err != nil {
		t.Errorf("Serve after a failed open: %v", err)
	}

	panicky := func(context.Context, io.ReaderAt, int64) (Document, error) { panic("kaboom") }
	tp = startChild(t, []byte("x"), panicky)
	tp.answer(nil)
	tp.send(frameOpen, openMsg{Size: 1})
	typ, payload = tp.answer(nil)
	if typ != frameError || !strings.Contains(string(payload), `"kind":"panic"`) || !strings.Contains(string(payload), "kaboom") {
		t.Errorf("panic in open: %q %s", typ, payload)
	}
	if err := <-tp.served; err == nil || !strings.Contains(err.Error(), "kaboom") {
		t.Errorf("Serve after a panic: %v", err)
	}

	// EOF before the open: the parent changed its mind.
	tp = startChild(t, nil, fakeOpen)
	tp.answer(nil)
	tp.toChild.Close()
	if err := <-tp.served; err != nil {
		t.Errorf("Serve at EOF: %v", err)
	}
}

// A failed read of the source reaches the opener as an error, which the
// child reports; the parent knows it was the source.
func TestServeSourceFailure(t *testing.T) {
	content := []byte("%FAKE pages=2 read-all\n" + strings.Repeat("x", 1_000_000))
	tp := startChild(t, content, fakeOpen)
	tp.failAt = 700_000
	tp.answer(nil)
	tp.send(frameOpen, openMsg{Size: int64(len(content))})
	typ, payload := tp.answer(nil)
	if typ != frameError || !strings.Contains(string(payload), "bucket on fire") {
		t.Errorf("open with a failing source: %q %s", typ, payload)
	}
}

// A parent that dies while the child waits for source bytes ends the
// child, instead of leaving it hanging.
func TestServeParentDies(t *testing.T) {
	content := []byte("%FAKE pages=2 read-all\n" + strings.Repeat("x", 1_000_000))
	tp := startChild(t, content, fakeOpen)
	tp.answer(nil)
	tp.send(frameOpen, openMsg{Size: int64(len(content))})
	if _, _, err := readHeader(tp.fromCh); err != nil { // the first read request
		t.Fatal(err)
	}
	tp.closeCh()
	select {
	case err := <-tp.served:
		if err == nil {
			t.Error("Serve returned no error when its parent went away")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve hangs after its parent went away")
	}
}

// The worker's reader returns exactly the source's bytes for any pattern of
// reads, in frames no larger than the bound.
func TestRemoteReadAt(t *testing.T) {
	for _, size := range []int{0, 1, remoteBlockSize - 1, remoteBlockSize, 3*remoteBlockSize + 17, maxData + 3} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			content := make([]byte, size)
			for i := range content {
				content[i] = byte(i*7 + i/4093)
			}
			check := func(ctx context.Context, r io.ReaderAt, n int64) (Document, error) {
				if err := iotest.TestReader(io.NewSectionReader(r, 0, n), content); err != nil {
					return nil, err
				}
				// One read spanning many frames, unaligned.
				if n > 10 {
					b := make([]byte, n-10)
					if k, err := r.ReadAt(b, 5); k != len(b) && !errors.Is(err, io.EOF) {
						return nil, fmt.Errorf("ReadAt(%d, 5) = %d, %v", len(b), k, err)
					}
					if !bytes.Equal(b[:min(len(b), int(n-5))], content[5:5+min(len(b), int(n-5))]) {
						return nil, errors.New("wrong bytes in a long read")
					}
				}
				if k, err := r.ReadAt(make([]byte, 10), n); k != 0 || !errors.Is(err, io.EOF) {
					return nil, fmt.Errorf("ReadAt at the end = %d, %v", k, err)
				}
				return &fakeDoc{pages: 1}, nil
			}
			tp := startChild(t, content, check)
			tp.answer(nil)
			tp.send(frameOpen, openMsg{Size: int64(size)})
			if typ, payload := tp.answer(nil); typ != frameParsed {
				t.Fatalf("%q %s", typ, payload)
			}
			for _, n := range tp.reads {
				if n > maxData || n < 1 {
					t.Errorf("a read of %d bytes", n)
				}
			}
		})
	}
}

// The worker's reader passes prefetches on to the parent in frames of at
// most maxPrefetch offsets, and reads go on after them.
func TestRemotePrefetch(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789"), 100_000)
	offs := make([]int64, maxPrefetch+904)
	for i := range offs {
		offs[i] = int64(i * 100)
	}
	open := func(ctx context.Context, r io.ReaderAt, n int64) (Document, error) {
		p, ok := r.(interface{ Prefetch([]int64, int) error })
		if !ok {
			return nil, errors.New("the worker's reader cannot prefetch")
		}
		if err := p.Prefetch(offs, 1024); err != nil {
			return nil, err
		}
		// Reads too long to announce are not: the parent would kill
		// the worker for it.
		if err := p.Prefetch(offs[:5], maxPrefetchSpan+1); err != nil {
			return nil, err
		}
		b := make([]byte, 10)
		if _, err := r.ReadAt(b, 123_456); err != nil || string(b) != "6789012345" {
			return nil, fmt.Errorf("read after a prefetch: %q, %v", b, err)
		}
		return &fakeDoc{pages: 1}, nil
	}
	tp := startChild(t, content, open)
	tp.answer(nil)
	tp.send(frameOpen, openMsg{Size: int64(len(content))})
	if typ, payload := tp.answer(nil); typ != frameParsed {
		t.Fatalf("%q %s", typ, payload)
	}
	if len(tp.prefetches) != 2 || len(tp.prefetches[0]) != maxPrefetch || len(tp.prefetches[1]) != 904 {
		t.Fatalf("prefetch frames of %d offsets", len(tp.prefetches))
	}
	if got := append(tp.prefetches[0], tp.prefetches[1]...); !slices.Equal(got, offs) {
		t.Error("the parent got other offsets than the worker announced")
	}
}

func TestFrameBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"unknown type", []byte{'?', 0, 0, 0, 0}},
		{"oversized part", []byte{framePart, 0, 0x10, 0, 1}},
		{"oversized control", []byte{frameError, 0, 1, 0, 1}},
		{"payload on hello", []byte{frameHello, 0, 0, 0, 1}},
		{"cut header", []byte{framePart, 0}},
	} {
		if _, _, err := readHeader(bytes.NewReader(tc.in)); !errors.Is(err, errProtocol) {
			t.Errorf("%s: %v, want a protocol error", tc.name, err)
		}
	}
	if _, _, err := decodeRead(encodeRead(-1, 10)); !errors.Is(err, errProtocol) {
		t.Errorf("negative offset: %v", err)
	}
	if _, _, err := decodeRead(encodeRead(0, maxData+1)); !errors.Is(err, errProtocol) {
		t.Errorf("oversized read: %v", err)
	}
	for name, b := range map[string][]byte{
		"negative prefetch":   encodePrefetch([]int64{5, -1}, 100),
		"prefetch of nothing": encodePrefetch([]int64{5}, 0),
		"oversized prefetch":  encodePrefetch([]int64{5}, maxPrefetchSpan+1),
		"cut prefetch":        encodePrefetch([]int64{5}, 10)[:7],
	} {
		if _, _, err := decodePrefetch(b); !errors.Is(err, errProtocol) {
			t.Errorf("%s: %v, want a protocol error", name, err)
		}
	}
	if _, _, err := readHeader(bytes.NewReader([]byte{framePrefetch, 0, 0, 0x80, 5})); !errors.Is(err, errProtocol) {
		t.Errorf("a prefetch frame of more than %d offsets: %v", maxPrefetch, err)
	}
	var buf []byte
	if _, err := readPayload(bytes.NewReader([]byte("abc")), &buf, 5); !errors.Is(err, errProtocol) {
		t.Errorf("cut payload: %v", err)
	}
}

func TestParsers(t *testing.T) {
	rss, hwm, ok := parseStatus([]byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads: 3\n"))
	if !ok || rss != 1<<20 || hwm != 2<<20 {
		t.Errorf("parseStatus = %d, %d, %v", rss, hwm, ok)
	}
	if _, _, ok := parseStatus([]byte("Name:\tzombie\nState:\tZ\n")); ok {
		t.Error("a zombie's status gave an RSS")
	}
	if got := oomKills([]byte("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")); got != 1 {
		t.Errorf("oomKills = %d", got)
	}
	for in, want := range map[string]string{
		"0::/system.slice/s3docs.service\n":                          "/system.slice/s3docs.service",
		"12:memory:/x\n1:name=systemd:/init.scope\n0::/user.slice\n": "/user.slice",
		"0::/\n": "/",
	} {
		if got, err := ownCgroup([]byte(in)); err != nil || got != want {
			t.Errorf("ownCgroup(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"4:memory:/process_api/x\n", "0::relative\n", "0::/a/../b\n"} {
		if got, err := ownCgroup([]byte(in)); err == nil {
			t.Errorf("ownCgroup(%q) = %q, want an error", in, got)
		}
	}
	var tl tail
	tl.add("panic: boom")
	for i := range 20 {
		tl.add("frame " + strconv.Itoa(i))
	}
	if s := tl.String(); !strings.HasPrefix(s, "panic: boom | ... | frame 14") || !strings.HasSuffix(s, "frame 19") {
		t.Errorf("tail = %q", s)
	}
	// A fatal signal's report ends in a register dump; its first line says
	// what happened.
	var sig tail
	for _, l := range []string{"SIGABRT: abort", "PC=0x495de1 m=0 sigcode=0", "", "goroutine 0 gp=0x1 m=0 mp=0x2 [idle]:",
		"rax 0x0", "rbx 0x0", "rip 0x495de1", "rflags 0x286", "cs 0x33", "fs 0x0", "gs 0x0"} {
		sig.add(l)
	}
	if s := sig.String(); !strings.HasPrefix(s, "SIGABRT: abort | ... | ") {
		t.Errorf("tail of a signal crash = %q", s)
	}
	for l, want := range map[string]bool{"SIGSEGV: segmentation violation": true, "fatal error: stack overflow": true,
		"SIG: x": false, "SIGx: y": false, "SIGSEGV": false, "PC=0x495de1 m=0 sigcode=0": false} {
		if isCrashHeadline(l) != want {
			t.Errorf("isCrashHeadline(%q) = %v", l, !want)
		}
	}
	long := strings.Repeat("x", 10_000) + "\nshort\n"
	br := bufio.NewReaderSize(strings.NewReader(long), 4096)
	if l, err := readLine(br); err != nil || len(l) != lineMax {
		t.Errorf("long line: %d bytes, %v", len(l), err)
	}
	if l, err := readLine(br); err != nil || l != "short" {
		t.Errorf("line after a long one: %q, %v", l, err)
	}
	for in, want := range map[string][2]int{"65534:65534": {65534, 65534}, "0:0": {0, 0}, "1000:100": {1000, 100}} {
		if u, g, err := parseUser(in); err != nil || u != want[0] || g != want[1] {
			t.Errorf("parseUser(%q) = %d, %d, %v", in, u, g, err)
		}
	}
	for _, in := range []string{"", "65534", "-1:0", "a:b", "1:"} {
		if _, _, err := parseUser(in); err == nil {
			t.Errorf("parseUser(%q) accepted", in)
		}
	}
}
