package worker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// The test binary doubles as the worker: the pool runs os.Args[0] with
// workerTestEnv set, and this init serves the protocol with fakeOpen instead
// of running tests (or, with "hostile", breaks it on purpose). An init
// rather than TestMain, because a package has one TestMain and other files
// of this package may want theirs.
const (
	workerTestEnv = "S3DOCS_SPLIT_WORKER_TEST"
	// The binary can also play a daemon that holds a pool, to be killed.
	workerTestDaemon = "S3DOCS_SPLIT_DAEMON_TEST"
	hostileModeEnv   = "S3DOCS_SPLIT_WORKER_HOSTILE"
)

func init() {
	if path := os.Getenv(workerTestDaemon); path != "" {
		os.Exit(fakeDaemon(path))
	}
	switch os.Getenv(workerTestEnv) {
	case "1":
		if err := Main(ServeOptions{Open: fakeOpen, Classify: fakeClassify}); err != nil {
			fmt.Fprintln(os.Stderr, "fake worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "hostile":
		hostileWorker(os.Getenv(hostileModeEnv))
		os.Exit(0)
	}
}

// fakeDaemon starts a worker for the fake document at path, prints the
// worker's pid and waits to be killed. The document keeps the worker
// opening it, deaf to stdin.
func fakeDaemon(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, err := NewPool(Options{Command: []string{os.Args[0]}, Env: []string{workerTestEnv + "=1"},
		MemoryLimit: 1 << 30, Timeout: time.Minute, IdleTimeout: time.Minute, MaxWorkers: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go p.PageCount(context.Background(), Source{ID: "d", Size: int64(len(b)), Reader: memReader(b)})
	// The pids found are the pids printed: asking again could find none,
	// if the worker is between its start and its re-execution.
	var pids []int
	for deadline := time.Now().Add(10 * time.Second); len(pids) == 0; pids = workerPIDs(os.Getpid()) {
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "fake daemon: no worker started")
			return 1
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println(pids)
	time.Sleep(time.Minute)
	return 1
}

var (
	errFakeNotDoc    = errors.New("not a fake document")
	errFakeEncrypted = errors.New("fake document is encrypted")
	errFakeRange     = errors.New("page range out of bounds")
)

func fakeClassify(err error) string {
	switch {
	case errors.Is(err, errFakeNotDoc):
		return "notpdf"
	case errors.Is(err, errFakeEncrypted):
		return "encrypted"
	case errors.Is(err, errFakeRange):
		return "pagerange"
	}
	return ""
}

// A fake document is a header line of directives and filler:
//
//	%FAKE pages=12 parse-sleep=300ms extract-panic=7
//
// Directives: pages=N; read-all (the part names the hash of every byte,
// read through the parent); parse-sleep=D, extract-sleep=D; parse-panic,
// extract-panic=FROM; prefetch=N (announce reads at N offsets); exit=N (os.Exit during the open); hog=MiB (allocate and
// touch, then wait); want-gomemlimit=N (fail unless GOMEMLIMIT is N);
// encrypted; stdout-junk (print to fd 1 during the open); part-mib=N (parts
// of N MiB); probe (fail the open if the sandbox lets it open a file, make
// a socket or run a program); read-at=OFF (read a byte there when
// extracting).
type fakeDoc struct {
	r     io.ReaderAt
	pages int
	sum   [32]byte
	dir   map[string]string
}

func fakeOpen(ctx context.Context, r io.ReaderAt, size int64) (Document, error) {
	head := make([]byte, min(size, 1024))
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	line, _, ok := bytes.Cut(head[:n], []byte("\n"))
	if !ok || !bytes.HasPrefix(line, []byte("%FAKE")) {
		return nil, fmt.Errorf("%w: no %%FAKE header", errFakeNotDoc)
	}
	d := &fakeDoc{r: r, dir: map[string]string{}}
	for _, f := range strings.Fields(string(line))[1:] {
		k, v, _ := strings.Cut(f, "=")
		d.dir[k] = v
	}
	if v, ok := d.dir["parse-sleep"]; ok {
		dur, _ := time.ParseDuration(v)
		time.Sleep(dur)
	}
	if _, ok := d.dir["stdout-junk"]; ok {
		fmt.Print("junk on stdout, no newline ")
	}
	if _, ok := d.dir["parse-panic"]; ok {
		panic("fake parse panic")
	}
	if v, ok := d.dir["exit"]; ok {
		code, _ := strconv.Atoi(v)
		fmt.Fprintf(os.Stderr, "fake: exiting with status %d on purpose\n", code)
		os.Exit(code)
	}
	if v, ok := d.dir["hog"]; ok {
		mib, _ := strconv.Atoi(v)
		b := make([]byte, mib<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		time.Sleep(30 * time.Second)
		b[0] = 2
	}
	if v, ok := d.dir["want-gomemlimit"]; ok && os.Getenv("GOMEMLIMIT") != v {
		return nil, fmt.Errorf("GOMEMLIMIT=%q, want %q", os.Getenv("GOMEMLIMIT"), v)
	}
	if _, ok := d.dir["encrypted"]; ok {
		return nil, fmt.Errorf("%w: fake", errFakeEncrypted)
	}
	if _, ok := d.dir["probe"]; ok {
		if err := probeSandbox(); err != nil {
			return nil, err
		}
	}
	if v, ok := d.dir["prefetch"]; ok {
		n, _ := strconv.Atoi(v)
		offs := make([]int64, n)
		for i := range offs {
			offs[i] = int64(i) * 10 % size
		}
		p, ok := r.(interface{ Prefetch([]int64, int) error })
		if !ok {
			return nil, errors.New("the worker's reader cannot prefetch")
		}
		if err := p.Prefetch(offs, 512); err != nil {
			return nil, err
		}
	}
	if _, ok := d.dir["read-all"]; ok {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
			return nil, err
		}
		copy(d.sum[:], h.Sum(nil))
	}
	d.pages, _ = strconv.Atoi(d.dir["pages"])
	return d, nil
}

// probeSandbox tries what a hijacked worker would.
func probeSandbox() error {
	var got []string
	if f, err := os.Open("/etc/passwd"); err == nil {
		f.Close()
		got = append(got, "opened /etc/passwd")
	} else if !errors.Is(err, syscall.EPERM) {
		got = append(got, "open: "+err.Error()+" (want EPERM)")
	}
	if c, err := net.Dial("tcp", "127.0.0.1:9"); err == nil {
		c.Close()
		got = append(got, "connected")
	} else if !errors.Is(err, syscall.EPERM) {
		got = append(got, "dial: "+err.Error()+" (want EPERM)")
	}
	if err := syscall.Exec("/bin/true", []string{"true"}, nil); !errors.Is(err, syscall.EPERM) {
		got = append(got, fmt.Sprintf("exec: %v (want EPERM)", err))
	}
	if err := syscall.Unshare(syscall.CLONE_NEWUSER); !errors.Is(err, syscall.EPERM) {
		got = append(got, fmt.Sprintf("unshare: %v (want EPERM)", err))
	}
	if len(got) > 0 {
		return fmt.Errorf("sandbox let through: %s", strings.Join(got, "; "))
	}
	return nil
}

func (d *fakeDoc) PageCount() int { return d.pages }

func (d *fakeDoc) Extract(ctx context.Context, from, thru int, w io.Writer) error {
	if from < 1 || from > thru || thru > d.pages {
		return fmt.Errorf("%w: %d-%d of %d", errFakeRange, from, thru, d.pages)
	}
	if v, ok := d.dir["extract-sleep"]; ok {
		dur, _ := time.ParseDuration(v)
		time.Sleep(dur)
	}
	if v, ok := d.dir["extract-panic"]; ok && v == strconv.Itoa(from) {
		panic("fake extract panic")
	}
	if v, ok := d.dir["read-at"]; ok {
		off, _ := strconv.ParseInt(v, 10, 64)
		if _, err := d.r.ReadAt(make([]byte, 1), off); err != nil {
			return err
		}
	}
	if v, ok := d.dir["part-mib"]; ok {
		n, _ := strconv.Atoi(v)
		block := bytes.Repeat([]byte{'p'}, 64<<10)
		for i := 0; i < n*16; i++ {
			if _, err := w.Write(block); err != nil {
				return err
			}
		}
		return nil
	}
	_, err := io.WriteString(w, fakePart(d.sum, from, thru))
	return err
}

func fakePart(sum [32]byte, from, thru int) string {
	return fmt.Sprintf("fake part %d-%d of %x\n", from, thru, sum)
}

// hostileWorker breaks the protocol in one way, as a hijacked worker would.
func hostileWorker(mode string) {
	out := os.Stdout
	in := bufio.NewReader(os.Stdin)
	send := func(typ byte, payload []byte) { writeFrame(out, typ, payload) }
	header := func(typ byte, n uint32) {
		b := make([]byte, frameHdrSize)
		putHeader(b, typ, int(n))
		out.Write(b)
	}
	awaitRequest := func() {
		typ, n, err := readHeader(in)
		if err != nil {
			os.Exit(3)
		}
		io.CopyN(io.Discard, in, int64(n))
		_ = typ
	}
	send(frameHello, nil)
	awaitRequest() // the open
	switch mode {
	case "garbage":
		out.Write([]byte("this is not a frame at all, but a lot of text\n"))
	case "oversize":
		// A part frame that claims 4 GiB: the parent must not allocate it.
		header(framePart, 1<<32-1)
	case "big-read":
		// A read of 2 GiB.
		b := make([]byte, readReqSize)
		copy(b, encodeRead(0, 1))
		b[8], b[9], b[10], b[11] = 0x80, 0, 0, 0
		send(frameRead, b)
	case "big-prefetch":
		// Reads of 1 MiB announced at 4,096 offsets.
		offs := make([]int64, maxPrefetch)
		for i := range offs {
			offs[i] = int64(i) << 20
		}
		send(framePrefetch, encodePrefetch(offs, maxData))
	case "parent-frame":
		// A type only the parent sends.
		send(frameOpen, []byte(`{"size":1}`))
	case "endless-part":
		writeJSON(out, frameParsed, parsedMsg{Pages: 3})
		awaitRequest() // the extract
		piece := bytes.Repeat([]byte{'x'}, maxData)
		for {
			if err := writeFrame(out, framePart, piece); err != nil {
				return
			}
		}
	case "lying-size":
		writeJSON(out, frameParsed, parsedMsg{Pages: 3})
		awaitRequest()
		send(framePart, []byte("short"))
		writeJSON(out, frameDone, doneMsg{Size: 1 << 40})
	}
	// Then wait for the parent to act.
	time.Sleep(time.Minute)
}

// memReader is a source held in memory.
type memReader []byte

func (m memReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// testSource is a fake document in memory that counts what is read of it
// and can fail or stall.
type testSource struct {
	Source
	content []byte
	reads   atomic.Int64
	bytes   atomic.Int64
	// failFrom: reads reaching past it fail (0: never); stall: reads wait
	// this long first.
	failFrom int64
	stall    time.Duration
	// prefetched counts the offsets announced to Prefetch.
	prefetched atomic.Int64
}

func (s *testSource) Prefetch(ctx context.Context, offs []int64, n int) error {
	s.prefetched.Add(int64(len(offs)))
	return nil
}

func newTestSource(t *testing.T, id, header string, size int) *testSource {
	t.Helper()
	content := append([]byte(header+"\n"), bytes.Repeat([]byte("filler of "+id+"\n"), size/8)...)
	s := &testSource{content: content[:max(size, len(header)+1)]}
	s.Source = Source{ID: id, Size: int64(len(s.content)), Reader: s}
	return s
}

func (s *testSource) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	s.reads.Add(1)
	if s.stall > 0 {
		select {
		case <-time.After(s.stall):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if s.failFrom > 0 && off+int64(len(p)) > s.failFrom {
		return 0, errors.New("bucket on fire")
	}
	n, err := memReader(s.content).ReadAt(ctx, p, off)
	s.bytes.Add(int64(n))
	return n, err
}

func (s *testSource) part(from, thru int) string {
	return fakePart(sha256.Sum256(s.content), from, thru)
}

type testPool struct {
	*Pool
	logs *testenv.LockedBuffer
}

// testOptions are the pool options of the tests, o's non-zero fields kept.
func testOptions(o Options) Options {
	if o.MemoryLimit == 0 {
		o.MemoryLimit = 1 << 30
	}
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 30 * time.Second
	}
	if o.MaxWorkers == 0 {
		o.MaxWorkers = 2
	}
	if len(o.Command) == 0 {
		o.Command = []string{os.Args[0]}
	}
	mode := "1"
	if len(o.Env) > 0 && strings.HasPrefix(o.Env[0], hostileModeEnv+"=") {
		mode = "hostile"
	}
	// The race runtime sleeps a second at exit by default.
	o.Env = append(o.Env, workerTestEnv+"="+mode, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	return o
}

func newTestPool(t *testing.T, o Options) *testPool {
	t.Helper()
	logs := &testenv.LockedBuffer{}
	o = testOptions(o)
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := NewPool(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if t.Failed() || testing.Verbose() {
			t.Logf("pool log:\n%s", logs)
		}
		if kids := workerChildren(t); len(kids) > 0 {
			t.Errorf("worker processes left after Close: %v", kids)
		}
	})
	return &testPool{Pool: p, logs: logs}
}

// count is how many log lines with msg name the worker of id.
func (tp *testPool) count(msg, id string) int {
	re := regexp.MustCompile(`msg="` + regexp.QuoteMeta(msg) + `" id="?` + regexp.QuoteMeta(id) + `"? `)
	return len(re.FindAllString(tp.logs.String(), -1))
}

// parses counts the opens of documents with id that succeeded; starts the
// worker processes started for it.
func (tp *testPool) parses(id string) int { return tp.count("split worker parsed", id) }
func (tp *testPool) starts(id string) int { return tp.count("split worker started", id) }

// workerChildren lists this process's children running this binary (or
// zombies): the workers, whatever else the tests of the package run.
func workerChildren(t *testing.T) []int {
	t.Helper()
	return workerPIDs(os.Getpid())
}

func workerPIDs(parent int) []int {
	self, _ := os.Readlink("/proc/self/exe")
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(parent) {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if exe == self || f[0] == "Z" {
			kids = append(kids, pid)
		}
	}
	return kids
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func extract(ctx context.Context, p *testPool, src Source, from, thru int) (string, int64, error) {
	var b bytes.Buffer
	n, err := p.Extract(ctx, src, from, thru, &b)
	return b.String(), n, err
}

func TestPoolPageCountAndExtract(t *testing.T) {
	tp := newTestPool(t, Options{})
	src := newTestSource(t, "A", "%FAKE pages=12 read-all stdout-junk", 300_000)
	ctx := testCtx(t)
	n, err := tp.PageCount(ctx, src.Source)
	if err != nil || n != 12 {
		t.Fatalf("PageCount = %d, %v; want 12", n, err)
	}
	for _, r := range [][2]int{{1, 12}, {3, 5}, {12, 12}} {
		got, size, err := extract(ctx, tp, src.Source, r[0], r[1])
		if err != nil {
			t.Fatalf("Extract(%d, %d): %v", r[0], r[1], err)
		}
		if want := src.part(r[0], r[1]); got != want || size != int64(len(want)) {
			t.Errorf("Extract(%d, %d) = %q (size %d), want %q", r[0], r[1], got, size, want)
		}
	}
	if got := tp.parses("A"); got != 1 {
		t.Errorf("%d parses, want 1", got)
	}
	// read-all read every byte once, in reads of a block or more that go
	// straight through, after the header's read of a block.
	if got := src.bytes.Load(); got != src.Size+remoteBlockSize {
		t.Errorf("%d bytes of the source read, want %d", got, src.Size+remoteBlockSize)
	}
	tp.Close()
	logs := tp.logs.String()
	if !strings.Contains(logs, "split workers' memory limit enforced by") {
		t.Errorf("no log line says how memory is limited:\n%s", logs)
	}
	if !strings.Contains(logs, "junk on stdout") {
		t.Errorf("the worker's stray stdout was not logged:\n%s", logs)
	}
}

// A worker reads what its document asks for, not the whole source.
func TestPoolReadsOnlyWhatTheDocumentNeeds(t *testing.T) {
	tp := newTestPool(t, Options{})
	const size = 64 << 20
	src := newTestSource(t, "A", "%FAKE pages=3 read-at=40000000", size)
	ctx := testCtx(t)
	if n, err := tp.PageCount(ctx, src.Source); err != nil || n != 3 {
		t.Fatalf("PageCount = %d, %v", n, err)
	}
	opened := src.bytes.Load()
	if _, _, err := extract(ctx, tp, src.Source, 1, 1); err != nil {
		t.Fatal(err)
	}
	// The header needs one block; the read at 40000000 another.
	if opened > remoteBlockSize || src.bytes.Load()-opened > remoteBlockSize {
		t.Errorf("read %d bytes to open and %d to extract, of %d; want a block each", opened, src.bytes.Load()-opened, size)
	}
}

func TestPoolSharesOneWorkerAndParse(t *testing.T) {
	tp := newTestPool(t, Options{})
	src := newTestSource(t, "A", "%FAKE pages=40 parse-sleep=300ms", 50_000)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			if i%2 == 0 {
				if n, err := tp.PageCount(ctx, src.Source); err != nil || n != 40 {
					errs <- fmt.Errorf("PageCount = %d, %v", n, err)
				}
				return
			}
			got, _, err := extract(ctx, tp, src.Source, i, i+1)
			if err != nil {
				errs <- err
				return
			}
			if want := fakePart([32]byte{}, i, i+1); got != want {
				errs <- fmt.Errorf("part %d-%d = %q", i, i+1, got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := tp.parses("A"); got != 1 {
		t.Errorf("%d parses, want 1", got)
	}
	if got := tp.starts("A"); got != 1 {
		t.Errorf("%d workers started, want 1", got)
	}
}

func TestPoolMaxWorkers(t *testing.T) {
	tp := newTestPool(t, Options{MaxWorkers: 2})
	ctx := testCtx(t)
	var srcs []*testSource
	for _, id := range []string{"A", "B", "C", "D"} {
		srcs = append(srcs, newTestSource(t, id, "%FAKE pages=3 parse-sleep=200ms", 10_000))
	}
	stop := make(chan struct{})
	var most atomic.Int32
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			most.Store(max(most.Load(), int32(len(workerChildren(t)))))
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	var wg sync.WaitGroup
	for _, s := range srcs {
		wg.Go(func() {
			if n, err := tp.PageCount(ctx, s.Source); err != nil || n != 3 {
				t.Errorf("%s: PageCount = %d, %v", s.ID, n, err)
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if got := most.Load(); got > 2 || got < 1 {
		t.Errorf("at most %d worker processes at once, want 1..2", got)
	}
	for _, s := range srcs {
		if got := tp.parses(s.ID); got != 1 {
			t.Errorf("%s: %d parses, want 1", s.ID, got)
		}
	}
	if !strings.Contains(tp.logs.String(), "evicted to make room") {
		t.Errorf("no worker was evicted:\n%s", tp.logs)
	}
}

func TestPoolWaitRespectsContext(t *testing.T) {
	tp := newTestPool(t, Options{MaxWorkers: 1})
	a := newTestSource(t, "A", "%FAKE pages=3 extract-sleep=2s", 1000)
	b := newTestSource(t, "B", "%FAKE pages=3", 1000)
	ctx := testCtx(t)
	aDone := make(chan error, 1)
	go func() {
		_, _, err := extract(ctx, tp, a.Source, 1, 1)
		aDone <- err
	}()
	waitFor(t, "A's worker", 10*time.Second, func() bool { return tp.parses("A") == 1 })
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := tp.PageCount(short, b.Source)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("PageCount while the only slot is busy = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("PageCount gave up after %v", d)
	}
	if err := <-aDone; err != nil {
		t.Errorf("A: %v", err)
	}
	// The slot is free now, or freed by eviction.
	if n, err := tp.PageCount(ctx, b.Source); err != nil || n != 3 {
		t.Errorf("B after A: %d, %v", n, err)
	}
}

// lateWriter fails the test if it is written to after closed.
type lateWriter struct {
	mu     sync.Mutex
	closed bool
	late   int
}

func (w *lateWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		w.late += len(p)
	}
	return len(p), nil
}

func TestPoolAbandonedExtractWritesNoMore(t *testing.T) {
	tp := newTestPool(t, Options{})
	src := newTestSource(t, "A", "%FAKE pages=3 extract-sleep=500ms part-mib=4", 1000)
	ctx := testCtx(t)
	if _, err := tp.PageCount(ctx, src.Source); err != nil {
		t.Fatal(err)
	}
	w := &lateWriter{}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := tp.Extract(short, src.Source, 1, 1, w); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Extract = %v, want context.DeadlineExceeded", err)
	}
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	// Requests to a worker are serialized: when this one is answered, the
	// abandoned one is finished.
	if got, _, err := extract(ctx, tp, src.Source, 2, 2); err != nil || len(got) != 4<<20 {
		t.Fatalf("next Extract: %d bytes, %v", len(got), err)
	}
	if w.late != 0 {
		t.Errorf("%d bytes written to an abandoned Extract's writer", w.late)
	}
}

func TestPoolIdleTimeout(t *testing.T) {
	tp := newTestPool(t, Options{IdleTimeout: 300 * time.Millisecond})
	src := newTestSource(t, "A", "%FAKE pages=3", 1000)
	ctx := testCtx(t)
	if _, err := tp.PageCount(ctx, src.Source); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle worker to exit", 5*time.Second, func() bool { return len(workerChildren(t)) == 0 })
	if !strings.Contains(tp.logs.String(), "reason=idle") {
		t.Errorf("no idle exit logged:\n%s", tp.logs)
	}
	if _, _, err := extract(ctx, tp, src.Source, 1, 2); err != nil {
		t.Fatal(err)
	}
	if got := tp.parses("A"); got != 2 {
		t.Errorf("%d parses, want 2 (one per worker)", got)
	}
}

// A worker killed while idle is replaced at the next request, which does
// not fail.
func TestPoolIdleWorkerKilled(t *testing.T) {
	tp := newTestPool(t, Options{})
	src := newTestSource(t, "A", "%FAKE pages=3", 1000)
	ctx := testCtx(t)
	if _, err := tp.PageCount(ctx, src.Source); err != nil {
		t.Fatal(err)
	}
	kids := workerChildren(t)
	if len(kids) != 1 {
		t.Fatalf("workers %v", kids)
	}
	syscall.Kill(kids[0], syscall.SIGKILL)
	waitFor(t, "the killed worker to be noticed", 5*time.Second, func() bool {
		return strings.Contains(tp.logs.String(), "exited while idle")
	})
	if _, _, err := extract(ctx, tp, src.Source, 1, 2); err != nil {
		t.Fatalf("Extract after the idle worker was killed: %v", err)
	}
}

func TestPoolWorkerFailures(t *testing.T) {
	tp := newTestPool(t, Options{})
	ctx := testCtx(t)
	good := newTestSource(t, "good", "%FAKE pages=9 extract-panic=7", 1000)

	_, _, err := extract(ctx, tp, good.Source, 7, 7)
	var de *DocError
	if !errors.Is(err, ErrCrashed) || !strings.Contains(err.Error(), "fake extract panic") ||
		!errors.As(err, &de) || de.Kind != KindPanic {
		t.Errorf("panic in Extract: %v, want ErrCrashed with a DocError of kind panic naming it", err)
	}
	if _, _, err := extract(ctx, tp, good.Source, 1, 2); err != nil {
		t.Errorf("Extract after a panic: %v", err)
	}
	if got := tp.parses("good"); got != 2 {
		t.Errorf("%d parses, want 2 (the panicked worker was replaced)", got)
	}

	for _, tc := range []struct{ header, want string }{
		{"%FAKE pages=3 parse-panic", "fake parse panic"},
		{"%FAKE pages=3 exit=3", "exiting with status 3 on purpose"},
	} {
		src := newTestSource(t, tc.header, tc.header, 1000)
		_, err := tp.PageCount(ctx, src.Source)
		if !errors.Is(err, ErrCrashed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrCrashed mentioning %q", tc.header, err, tc.want)
		}
		if strings.Contains(tc.header, "exit=3") && !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("%s: %v does not give the exit status", tc.header, err)
		}
	}
	if n, err := tp.PageCount(ctx, good.Source); err != nil || n != 9 {
		t.Errorf("pool after crashes: %d, %v", n, err)
	}
	// A panic's stack reaches the log in the line that reports the crash,
	// not line by line.
	tp.Close()
	logs := tp.logs.String()
	// Two panic headlines and the exit=3 worker's one line.
	if n := strings.Count(logs, `msg="split worker stderr"`); n != 3 || strings.Contains(logs, `line="goroutine `) {
		t.Errorf("%d stderr lines logged; crash dumps must not be logged line by line:\n%s", n, logs)
	}
}

func TestPoolErrorKindsCrossTheProcessBoundary(t *testing.T) {
	tp := newTestPool(t, Options{})
	ctx := testCtx(t)
	kind := func(err error) string {
		var de *DocError
		if errors.As(err, &de) {
			return de.Kind
		}
		return fmt.Sprintf("no DocError in %v", err)
	}
	notDoc := newTestSource(t, "junk", "this is no document", 1000)
	if _, err := tp.PageCount(ctx, notDoc.Source); kind(err) != "notpdf" {
		t.Errorf("not a document: %v, want kind notpdf", err)
	}
	enc := newTestSource(t, "enc", "%FAKE pages=3 encrypted", 1000)
	if _, _, err := extract(ctx, tp, enc.Source, 1, 1); kind(err) != "encrypted" {
		t.Errorf("encrypted: %v, want kind encrypted", err)
	}
	src := newTestSource(t, "A", "%FAKE pages=5", 1000)
	if _, _, err := extract(ctx, tp, src.Source, 4, 6); kind(err) != "pagerange" {
		t.Errorf("Extract(4, 6): %v, want kind pagerange", err)
	}
	for _, r := range [][2]int{{0, 1}, {3, 2}} {
		if _, _, err := extract(ctx, tp, src.Source, r[0], r[1]); err == nil {
			t.Errorf("Extract(%d, %d) accepted", r[0], r[1])
		}
	}
	if _, _, err := extract(ctx, tp, src.Source, 5, 5); err != nil {
		t.Errorf("Extract after a range error: %v", err)
	}
	if got := tp.parses("A"); got != 1 {
		t.Errorf("%d parses, want 1: a range error must not cost the worker", got)
	}
	if !strings.Contains(tp.logs.String(), "open failed: not a fake document") {
		t.Errorf("open failure not logged:\n%s", tp.logs)
	}
}

func TestPoolMemoryLimit(t *testing.T) {
	tp := newTestPool(t, Options{MemoryLimit: 200 << 20})
	ctx := testCtx(t)
	hog := newTestSource(t, "hog", "%FAKE pages=3 hog=600", 1000)
	began := time.Now()
	_, err := tp.PageCount(ctx, hog.Source)
	if !errors.Is(err, ErrMemoryLimit) || !strings.Contains(err.Error(), "memory limit") {
		t.Errorf("memory hog: %v, want ErrMemoryLimit", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("the hog was stopped after %v", d)
	}
	// The soft cap is 3/4 of the limit.
	src := newTestSource(t, "A", "%FAKE pages=2 want-gomemlimit=157286400", 1000)
	if n, err := tp.PageCount(ctx, src.Source); err != nil || n != 2 {
		t.Errorf("pool after a memory kill: %d, %v", n, err)
	}
}

func TestPoolTimeout(t *testing.T) {
	// The Timeout starts once the worker is up (see startTimeout).
	tp := newTestPool(t, Options{Timeout: 3 * time.Second})
	ctx := testCtx(t)
	slowParse := newTestSource(t, "sp", "%FAKE pages=3 parse-sleep=30s", 1000)
	_, err := tp.PageCount(ctx, slowParse.Source)
	var se *SourceError
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "timed out") || errors.As(err, &se) {
		t.Errorf("slow parse: %v, want ErrTimeout, not a SourceError", err)
	}
	slowExtract := newTestSource(t, "se", "%FAKE pages=3 extract-sleep=30s", 1000)
	_, _, err = extract(ctx, tp, slowExtract.Source, 1, 1)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "pages 1-1") {
		t.Errorf("slow extract: %v, want ErrTimeout naming the pages", err)
	}
	if got := len(workerChildren(t)); got != 0 {
		t.Errorf("%d workers alive after timeouts", got)
	}
}

// A source that fails or is too slow is not the document's fault, and the
// worker that saw it is not kept.
func TestPoolSourceFailures(t *testing.T) {
	tp := newTestPool(t, Options{Timeout: 3 * time.Second})
	ctx := testCtx(t)
	src := newTestSource(t, "A", "%FAKE pages=3 read-at=500000", 1_000_000)
	src.failFrom = 400_000
	if n, err := tp.PageCount(ctx, src.Source); err != nil || n != 3 {
		t.Fatalf("PageCount = %d, %v", n, err)
	}
	_, _, err := extract(ctx, tp, src.Source, 1, 1)
	var se *SourceError
	var de *DocError
	if !errors.As(err, &se) || errors.As(err, &de) || !strings.Contains(err.Error(), "bucket on fire") {
		t.Errorf("failing source: %v, want a SourceError naming the cause", err)
	}
	src.failFrom = 0
	if _, _, err := extract(ctx, tp, src.Source, 1, 1); err != nil {
		t.Errorf("Extract once the source works: %v", err)
	}
	if got := tp.starts("A"); got != 2 {
		t.Errorf("%d workers started, want 2 (the one that saw the failure is not kept)", got)
	}

	failOpen := newTestSource(t, "B", "%FAKE pages=3 read-all", 1_000_000)
	failOpen.failFrom = 600_000
	if _, err := tp.PageCount(ctx, failOpen.Source); !errors.As(err, &se) {
		t.Errorf("source failing during the open: %v, want a SourceError", err)
	}

	slow := newTestSource(t, "C", "%FAKE pages=3", 1000)
	slow.stall = time.Minute
	began := time.Now()
	_, err = tp.PageCount(ctx, slow.Source)
	if !errors.As(err, &se) || !errors.Is(err, ErrTimeout) {
		t.Errorf("stalled source: %v, want a SourceError with ErrTimeout", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("a stalled source held the open for %v", d)
	}
}

// A part streams through both processes: its size is in neither's memory.
func TestPoolStreamsParts(t *testing.T) {
	tp := newTestPool(t, Options{})
	// maxPart lets a source of 48 MiB have a part of 256.
	src := newTestSource(t, "A", "%FAKE pages=3 part-mib=256", 48<<20)
	ctx := testCtx(t)
	var before, after runtimeMem
	before.read()
	var n countingWriter
	size, err := tp.Extract(ctx, src.Source, 1, 3, &n)
	after.read()
	if err != nil || size != 256<<20 || int64(n) != size {
		t.Fatalf("Extract = %d (%d written), %v", size, n, err)
	}
	tp.Close()
	if grew := after.totalAlloc - before.totalAlloc; grew > 16<<20 {
		t.Errorf("the parent allocated %d MiB to pass on a 256 MiB part", grew>>20)
	}
	ends := regexp.MustCompile(`msg="split worker (exited|killed)".*`).FindAllString(tp.logs.String(), -1)
	if len(ends) != 1 {
		t.Fatalf("worker ends logged: %q", ends)
	}
	// Sampled every 50ms, while 256 MiB went through the pipe.
	if peak := logInt(ends[0], "peak_rss"); peak == 0 || peak > 128<<20 {
		t.Errorf("worker peak RSS %d MiB for a 256 MiB part: %s", peak>>20, ends[0])
	}
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

func logInt(line, key string) int64 {
	m := regexp.MustCompile(`\b` + key + `=(\d+)`).FindStringSubmatch(line)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// The parent trusts none of a worker's frames: a hijacked worker gets
// itself killed, without making the daemon allocate or write more than
// one frame's worth.
func TestPoolDistrustsWorkers(t *testing.T) {
	for _, mode := range []string{"garbage", "oversize", "big-read", "big-prefetch", "parent-frame", "endless-part", "lying-size"} {
		t.Run(mode, func(t *testing.T) {
			tp := newTestPool(t, Options{Env: []string{hostileModeEnv + "=" + mode}})
			src := newTestSource(t, "A", "%FAKE pages=3", 1000)
			ctx := testCtx(t)
			var before, after runtimeMem
			before.read()
			var written countingWriter
			var err error
			if mode == "endless-part" || mode == "lying-size" {
				if _, err := tp.PageCount(ctx, src.Source); err != nil {
					t.Fatal(err)
				}
				_, err = tp.Extract(ctx, src.Source, 1, 1, &written)
			} else {
				_, err = tp.PageCount(ctx, src.Source)
			}
			after.read()
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("%v, want ErrProtocol", err)
			}
			if limit := maxPart(src.Size); int64(written) > limit {
				t.Errorf("%d bytes of part written, past the limit %d", written, limit)
			}
			if grew := after.totalAlloc - before.totalAlloc; grew > 8<<20 {
				t.Errorf("the parent allocated %d MiB", grew>>20)
			}
			waitFor(t, "the worker to be gone", 10*time.Second, func() bool { return len(workerChildren(t)) == 0 })
		})
	}
}

type runtimeMem struct{ totalAlloc uint64 }

func (m *runtimeMem) read() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.totalAlloc = ms.TotalAlloc
}

func TestPoolClose(t *testing.T) {
	tp := newTestPool(t, Options{MaxWorkers: 2})
	ctx := testCtx(t)
	busy := newTestSource(t, "busy", "%FAKE pages=3 extract-sleep=30s", 1000)
	idle := newTestSource(t, "idle", "%FAKE pages=3", 1000)
	opening := newTestSource(t, "opening", "%FAKE pages=3 parse-sleep=30s", 1000)
	if _, err := tp.PageCount(ctx, idle.Source); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() {
		_, _, err := extract(ctx, tp, busy.Source, 1, 1)
		errs <- err
	}()
	waitFor(t, "the busy worker", 10*time.Second, func() bool { return tp.parses("busy") == 1 })
	go func() {
		// Evicts idle, then opens until Close.
		_, err := tp.PageCount(ctx, opening.Source)
		errs <- err
	}()
	waitFor(t, "the opening worker", 10*time.Second, func() bool { return opening.reads.Load() > 0 })
	began := time.Now()
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrPoolClosed) {
			t.Errorf("call in flight at Close: %v, want ErrPoolClosed", err)
		}
	}
	if kids := workerChildren(t); len(kids) != 0 {
		t.Errorf("workers left after Close: %v", kids)
	}
	if _, err := tp.PageCount(ctx, idle.Source); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("PageCount after Close: %v, want ErrPoolClosed", err)
	}
}

func TestPoolBadInput(t *testing.T) {
	tp := newTestPool(t, Options{})
	ctx := testCtx(t)
	if _, err := tp.PageCount(ctx, Source{ID: "x", Size: 1}); err == nil {
		t.Error("Source without a Reader accepted")
	}
	if _, err := tp.PageCount(ctx, Source{Size: 1, Reader: memReader("x")}); err == nil {
		t.Error("Source without an ID accepted")
	}
	for _, o := range []Options{{}, {Command: []string{"x"}}, {Command: []string{"x"}, MemoryLimit: 1, Timeout: 1, IdleTimeout: 1}} {
		if _, err := NewPool(o); err == nil {
			t.Errorf("NewPool(%+v) accepted", o)
		}
	}
	// A worker that cannot start is no document's fault.
	p, err := NewPool(testOptions(Options{Command: []string{"/nonexistent/worker"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var se *StartError
	if _, err := p.PageCount(ctx, Source{ID: "x", Size: 1, Reader: memReader("x")}); !errors.As(err, &se) {
		t.Errorf("unstartable worker: %v, want a StartError", err)
	}
}

// A worker's announced reads reach the source, in as many frames as they
// take.
func TestPoolPassesPrefetches(t *testing.T) {
	tp := newTestPool(t, Options{})
	src := newTestSource(t, "A", "%FAKE pages=2 prefetch=9000", 100_000)
	if n, err := tp.PageCount(testCtx(t), src.Source); err != nil || n != 2 {
		t.Fatalf("PageCount = %d, %v", n, err)
	}
	if got := src.prefetched.Load(); got != 9000 {
		t.Errorf("the source was told of %d reads, want 9000", got)
	}
}

func TestWorkerDiesWithTheDaemon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc")
	if err := os.WriteFile(path, []byte("%FAKE pages=2 parse-sleep=60s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(os.Args[0])
	daemon.Env = append(os.Environ(), workerTestDaemon+"="+path, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	daemon.Stderr = os.Stderr
	stdout, err := daemon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		daemon.Process.Kill()
		daemon.Wait()
		t.Fatalf("reading the worker pid: %v", err)
	}
	var worker int
	if _, err := fmt.Sscanf(line, "[%d]", &worker); err != nil {
		daemon.Process.Kill()
		daemon.Wait()
		t.Fatalf("daemon said %q: %v", line, err)
	}
	// Wait until the worker has confined itself (it re-executes itself, and
	// a change of user clears the parent-death signal it must set again).
	waitFor(t, "the worker to be confined", 10*time.Second, func() bool {
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", worker))
		return bytes.Contains(env, []byte(envConfined+"=1"))
	})
	// SIGKILL: the daemon gets no chance to clean up, and the worker, busy
	// opening, does not notice its stdin closing: only Pdeathsig ends it.
	daemon.Process.Kill()
	daemon.Wait()
	waitFor(t, "the orphaned worker to die", 5*time.Second, func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", worker))
		if err != nil {
			return true
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		return len(f) > 0 && f[0] == "Z"
	})
}

// A worker that lives less than the watch's poll interval still has its
// peak RSS logged: it is the kernel's count, taken when the worker is
// reaped (it was 0, and a test's bound on it failed).
func TestPeakRSSOfAShortLivedWorker(t *testing.T) {
	tp := newTestPool(t, Options{})
	src := newTestSource(t, "A", "%FAKE pages=3", 1000)
	if _, err := tp.PageCount(testCtx(t), src.Source); err != nil {
		t.Fatal(err)
	}
	tp.Close() // at once: the watch has had no tick
	ends := regexp.MustCompile(`msg="split worker (exited|killed)".*`).FindAllString(tp.logs.String(), -1)
	if len(ends) != 1 {
		t.Fatalf("worker ends logged: %q", ends)
	}
	if peak := logInt(ends[0], "peak_rss"); peak < 1<<20 {
		t.Errorf("a short-lived worker's peak RSS logged as %d bytes: %s", peak, ends[0])
	}
}
