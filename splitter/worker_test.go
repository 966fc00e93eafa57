package splitter

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"s3docs/internal/testenv"
)

// The test binary doubles as the worker: the pool runs os.Args[0] with
// workerTestEnv set, and this init serves the protocol with fakeOpen instead
// of running tests. An init rather than TestMain, because a package has one
// TestMain and other files of this package may want theirs.
const (
	workerTestEnv     = "S3DOCS_SPLIT_WORKER_TEST"
	workerTestMarkers = "S3DOCS_SPLIT_WORKER_MARKERS"
	// The binary can also play a daemon that holds a pool, to be killed.
	workerTestDaemon = "S3DOCS_SPLIT_DAEMON_TEST"
)

func init() {
	if path := os.Getenv(workerTestDaemon); path != "" {
		os.Exit(fakeDaemon(path))
	}
	if os.Getenv(workerTestEnv) != "1" {
		return
	}
	if err := serveWorker(context.Background(), os.Stdin, os.Stdout, os.Stderr, fakeOpen); err != nil {
		fmt.Fprintln(os.Stderr, "fake worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// fakeDaemon starts a worker for the fake PDF at path, prints the worker's pid
// and waits to be killed. The PDF keeps the worker parsing, deaf to stdin.
func fakeDaemon(path string) int {
	fi, err := os.Stat(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p := NewPool(PoolOptions{Command: []string{os.Args[0]}, Env: []string{workerTestEnv + "=1", workerTestDaemon + "="}})
	src := Source{ID: "d", Size: fi.Size(), Open: func(context.Context) ([]string, func(), error) {
		return []string{path}, nil, nil
	}}
	go p.PageCount(context.Background(), src)
	for deadline := time.Now().Add(10 * time.Second); len(workerPIDs(os.Getpid())) == 0; {
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "fake daemon: no worker started")
			return 1
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println(workerPIDs(os.Getpid()))
	time.Sleep(time.Minute)
	return 1
}

// A fake PDF is a header line of directives and filler:
//
//	%FAKE pages=12 tag=A parse-sleep=300ms extract-panic=7
//
// Directives: pages=N; tag=T (marker files are named after it);
// parse-sleep=D, extract-sleep=D; parse-panic, extract-panic=FROM;
// exit=N (os.Exit during the parse); hog=MiB (allocate and touch, then wait);
// want-gomemlimit=N (fail unless GOMEMLIMIT is N); encrypted; stdout-junk (print to fd 1 during the parse).
type fakeDoc struct {
	pages int
	sum   [32]byte
	dir   map[string]string
}

func fakeOpen(ctx context.Context, r io.ReadSeeker) (workerDocument, error) {
	br := bufio.NewReader(r)
	header, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(header, "%FAKE") {
		return nil, fmt.Errorf("%w: no %%FAKE header", ErrNotPDF)
	}
	d := &fakeDoc{dir: map[string]string{}}
	for _, f := range strings.Fields(header)[1:] {
		k, v, _ := strings.Cut(f, "=")
		d.dir[k] = v
	}
	if dir := os.Getenv(workerTestMarkers); dir != "" {
		name := fmt.Sprintf("%s-%d-%d", d.dir["tag"], os.Getpid(), time.Now().UnixNano())
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			return nil, err
		}
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
		return nil, fmt.Errorf("%w: fake", ErrEncrypted)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return nil, err
	}
	copy(d.sum[:], h.Sum(nil))
	d.pages, _ = strconv.Atoi(d.dir["pages"])
	return d, nil
}

func (d *fakeDoc) PageCount() int { return d.pages }

func (d *fakeDoc) Extract(from, thru int, w io.Writer) error {
	if from < 1 || from > thru || thru > d.pages {
		return fmt.Errorf("%w: %d-%d of %d", ErrPageRange, from, thru, d.pages)
	}
	if v, ok := d.dir["extract-sleep"]; ok {
		dur, _ := time.ParseDuration(v)
		time.Sleep(dur)
	}
	if v, ok := d.dir["extract-panic"]; ok && v == strconv.Itoa(from) {
		panic("fake extract panic")
	}
	_, err := io.WriteString(w, fakePart(d.sum, from, thru))
	return err
}

func fakePart(sum [32]byte, from, thru int) string {
	return fmt.Sprintf("fake part %d-%d of %x\n", from, thru, sum)
}

// testSource is a fake PDF cut into chunk files, as the cache would hold it.
type testSource struct {
	Source
	content  []byte
	opens    atomic.Int32
	releases atomic.Int32
	released chan struct{} // closed at the first release
	unlink   bool          // release removes the chunk files, as eviction would
}

func newTestSource(t *testing.T, id, header string) *testSource {
	t.Helper()
	content := []byte(header + "\n")
	for i := 0; len(content) < 50_000; i++ {
		content = append(content, fmt.Sprintf("filler %d of %s\n", i, id)...)
	}
	dir := t.TempDir()
	var paths []string
	for off, i := 0, 0; off < len(content); i++ {
		n := min(7_000, len(content)-off)
		p := filepath.Join(dir, fmt.Sprintf("chunk-%03d", i))
		if err := os.WriteFile(p, content[off:off+n], 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		off += n
	}
	s := &testSource{content: content, released: make(chan struct{})}
	s.Source = Source{
		ID:   id,
		Size: int64(len(content)),
		Open: func(ctx context.Context) ([]string, func(), error) {
			s.opens.Add(1)
			return paths, func() {
				if s.releases.Add(1) == 1 {
					close(s.released)
				}
				if s.unlink {
					for _, p := range paths {
						os.Remove(p)
					}
				}
			}, nil
		},
	}
	return s
}

func (s *testSource) part(from, thru int) string {
	return fakePart(sha256.Sum256(s.content), from, thru)
}

type testPool struct {
	*Pool
	markers string
	logs    *testenv.LockedBuffer
}

func newTestPool(t *testing.T, o PoolOptions) *testPool {
	t.Helper()
	markers := t.TempDir()
	logs := &testenv.LockedBuffer{}
	o.Command = []string{os.Args[0]}
	// The race runtime sleeps a second at exit by default.
	o.Env = append(o.Env, workerTestEnv+"=1", workerTestMarkers+"="+markers,
		"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := NewPool(o)
	t.Cleanup(func() {
		p.Close()
		if t.Failed() || testing.Verbose() {
			t.Logf("pool log:\n%s", logs)
		}
		if kids := workerChildren(t); len(kids) > 0 {
			t.Errorf("worker processes left after Close: %v", kids)
		}
	})
	return &testPool{Pool: p, markers: markers, logs: logs}
}

// parses counts the fake parses of documents tagged tag.
func (tp *testPool) parses(t *testing.T, tag string) int {
	t.Helper()
	entries, err := os.ReadDir(tp.markers)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tag+"-") {
			n++
		}
	}
	return n
}

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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPoolPageCountAndExtract(t *testing.T) {
	tp := newTestPool(t, PoolOptions{})
	src := newTestSource(t, "A", "%FAKE pages=12 tag=A stdout-junk")
	ctx := testCtx(t)
	n, err := tp.PageCount(ctx, src.Source)
	if err != nil || n != 12 {
		t.Fatalf("PageCount = %d, %v; want 12", n, err)
	}
	for _, r := range [][2]int{{1, 12}, {3, 5}, {12, 12}} {
		out := filepath.Join(t.TempDir(), "part")
		size, err := tp.Extract(ctx, src.Source, r[0], r[1], out)
		if err != nil {
			t.Fatalf("Extract(%d, %d): %v", r[0], r[1], err)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if want := src.part(r[0], r[1]); string(got) != want || size != int64(len(want)) {
			t.Errorf("Extract(%d, %d) = %q (size %d), want %q", r[0], r[1], got, size, want)
		}
	}
	if got := tp.parses(t, "A"); got != 1 {
		t.Errorf("%d parses, want 1", got)
	}
	if got := src.opens.Load(); got != 1 {
		t.Errorf("Source.Open called %d times, want 1", got)
	}
	if got := src.releases.Load(); got != 1 {
		t.Errorf("release called %d times, want 1", got)
	}
	// The junk has no newline, so it is logged when the worker ends.
	tp.Close()
	logs := tp.logs.String()
	if !strings.Contains(logs, "split workers' memory limit enforced by") {
		t.Errorf("no log line says how memory is limited:\n%s", logs)
	}
	if !strings.Contains(logs, "junk on stdout") {
		t.Errorf("the worker's stray stdout was not logged:\n%s", logs)
	}
}

func TestPoolSharesOneWorkerAndParse(t *testing.T) {
	tp := newTestPool(t, PoolOptions{})
	src := newTestSource(t, "A", "%FAKE pages=40 tag=A parse-sleep=300ms")
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
			out := filepath.Join(t.TempDir(), "part")
			if _, err := tp.Extract(ctx, src.Source, i, i+1, out); err != nil {
				errs <- err
				return
			}
			if got, _ := os.ReadFile(out); string(got) != src.part(i, i+1) {
				errs <- fmt.Errorf("part %d-%d = %q", i, i+1, got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := tp.parses(t, "A"); got != 1 {
		t.Errorf("%d parses, want 1", got)
	}
	if got := src.opens.Load(); got != 1 {
		t.Errorf("Source.Open called %d times, want 1", got)
	}
}

func TestPoolMaxWorkers(t *testing.T) {
	tp := newTestPool(t, PoolOptions{MaxWorkers: 2})
	ctx := testCtx(t)
	var srcs []*testSource
	for _, id := range []string{"A", "B", "C", "D"} {
		srcs = append(srcs, newTestSource(t, id, "%FAKE pages=3 parse-sleep=200ms tag="+id))
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
		if got := tp.parses(t, s.ID); got != 1 {
			t.Errorf("%s: %d parses, want 1", s.ID, got)
		}
	}
	if !strings.Contains(tp.logs.String(), "evicted to make room") {
		t.Errorf("no worker was evicted:\n%s", tp.logs)
	}
}

func TestPoolWaitRespectsContext(t *testing.T) {
	tp := newTestPool(t, PoolOptions{MaxWorkers: 1})
	a := newTestSource(t, "A", "%FAKE pages=3 tag=A extract-sleep=2s")
	b := newTestSource(t, "B", "%FAKE pages=3 tag=B")
	ctx := testCtx(t)
	aDone := make(chan error, 1)
	go func() {
		_, err := tp.Extract(ctx, a.Source, 1, 1, filepath.Join(t.TempDir(), "a"))
		aDone <- err
	}()
	waitFor(t, "A's worker", 5*time.Second, func() bool { return tp.parses(t, "A") == 1 })
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

func TestPoolAbandonedExtractLeavesNoFile(t *testing.T) {
	tp := newTestPool(t, PoolOptions{})
	src := newTestSource(t, "A", "%FAKE pages=3 tag=A extract-sleep=500ms")
	ctx := testCtx(t)
	if _, err := tp.PageCount(ctx, src.Source); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "abandoned")
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := tp.Extract(short, src.Source, 1, 1, out); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Extract = %v, want context.DeadlineExceeded", err)
	}
	// Requests to a worker are serialized: when this one is answered, the
	// abandoned one is finished and cleaned up.
	if _, err := tp.Extract(ctx, src.Source, 2, 2, filepath.Join(t.TempDir(), "next")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("abandoned part left behind: %v", err)
	}
}

func TestPoolIdleTimeout(t *testing.T) {
	tp := newTestPool(t, PoolOptions{IdleTimeout: 300 * time.Millisecond})
	src := newTestSource(t, "A", "%FAKE pages=3 tag=A")
	ctx := testCtx(t)
	if _, err := tp.PageCount(ctx, src.Source); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle worker to exit", 5*time.Second, func() bool { return len(workerChildren(t)) == 0 })
	if !strings.Contains(tp.logs.String(), "reason=idle") {
		t.Errorf("no idle exit logged:\n%s", tp.logs)
	}
	if _, err := tp.Extract(ctx, src.Source, 1, 2, filepath.Join(t.TempDir(), "p")); err != nil {
		t.Fatal(err)
	}
	if got := tp.parses(t, "A"); got != 2 {
		t.Errorf("%d parses, want 2 (one per worker)", got)
	}
}

func TestPoolWorkerFailures(t *testing.T) {
	tp := newTestPool(t, PoolOptions{})
	ctx := testCtx(t)
	good := newTestSource(t, "good", "%FAKE pages=9 tag=good extract-panic=7")
	out := filepath.Join(t.TempDir(), "p")

	_, err := tp.Extract(ctx, good.Source, 7, 7, out)
	if !errors.Is(err, ErrWorkerCrashed) || !strings.Contains(err.Error(), "fake extract panic") {
		t.Errorf("panic in Extract: %v, want ErrWorkerCrashed naming the panic", err)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("failed part left behind: %v", serr)
	}
	if _, err := tp.Extract(ctx, good.Source, 1, 2, out); err != nil {
		t.Errorf("Extract after a panic: %v", err)
	}
	if got := tp.parses(t, "good"); got != 2 {
		t.Errorf("%d parses, want 2 (the panicked worker was replaced)", got)
	}

	for _, tc := range []struct{ header, want string }{
		{"%FAKE pages=3 tag=pp parse-panic", "fake parse panic"},
		{"%FAKE pages=3 tag=ex exit=3", "exiting with status 3 on purpose"},
	} {
		src := newTestSource(t, tc.header, tc.header)
		_, err := tp.PageCount(ctx, src.Source)
		if !errors.Is(err, ErrWorkerCrashed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrWorkerCrashed mentioning %q", tc.header, err, tc.want)
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

func TestPoolSentinelErrorsCrossTheProcessBoundary(t *testing.T) {
	tp := newTestPool(t, PoolOptions{})
	ctx := testCtx(t)
	notPDF := newTestSource(t, "junk", "this is no PDF")
	if _, err := tp.PageCount(ctx, notPDF.Source); !errors.Is(err, ErrNotPDF) {
		t.Errorf("not a PDF: %v, want ErrNotPDF", err)
	}
	enc := newTestSource(t, "enc", "%FAKE pages=3 tag=enc encrypted")
	if _, err := tp.Extract(ctx, enc.Source, 1, 1, filepath.Join(t.TempDir(), "p")); !errors.Is(err, ErrEncrypted) {
		t.Errorf("encrypted: %v, want ErrEncrypted", err)
	}
	src := newTestSource(t, "A", "%FAKE pages=5 tag=A")
	for _, r := range [][2]int{{4, 6}, {0, 1}, {3, 2}} {
		if _, err := tp.Extract(ctx, src.Source, r[0], r[1], filepath.Join(t.TempDir(), "p")); !errors.Is(err, ErrPageRange) {
			t.Errorf("Extract(%d, %d): %v, want ErrPageRange", r[0], r[1], err)
		}
	}
	if _, err := tp.Extract(ctx, src.Source, 5, 5, filepath.Join(t.TempDir(), "p")); err != nil {
		t.Errorf("Extract after a range error: %v", err)
	}
	if got := tp.parses(t, "A"); got != 1 {
		t.Errorf("%d parses, want 1: a range error must not cost the worker", got)
	}
	if !strings.Contains(tp.logs.String(), "parse failed: not a PDF") {
		t.Errorf("parse failure not logged:\n%s", tp.logs)
	}
}

func TestPoolMemoryLimit(t *testing.T) {
	tp := newTestPool(t, PoolOptions{MemoryLimit: 200 << 20})
	ctx := testCtx(t)
	hog := newTestSource(t, "hog", "%FAKE pages=3 tag=hog hog=600")
	began := time.Now()
	_, err := tp.PageCount(ctx, hog.Source)
	if !errors.Is(err, ErrWorkerMemoryLimit) || !strings.Contains(err.Error(), "memory limit") {
		t.Errorf("memory hog: %v, want ErrWorkerMemoryLimit", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("the hog was stopped after %v", d)
	}
	// The soft cap is 3/4 of the limit.
	src := newTestSource(t, "A", "%FAKE pages=2 tag=A want-gomemlimit=157286400")
	if n, err := tp.PageCount(ctx, src.Source); err != nil || n != 2 {
		t.Errorf("pool after a memory kill: %d, %v", n, err)
	}
}

func TestPoolTimeout(t *testing.T) {
	// Not tighter: the Timeout covers starting a race-enabled worker too.
	tp := newTestPool(t, PoolOptions{Timeout: 2 * time.Second})
	ctx := testCtx(t)
	slowParse := newTestSource(t, "sp", "%FAKE pages=3 tag=sp parse-sleep=30s")
	_, err := tp.PageCount(ctx, slowParse.Source)
	if !errors.Is(err, ErrWorkerTimeout) || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("slow parse: %v, want ErrWorkerTimeout", err)
	}
	slowExtract := newTestSource(t, "se", "%FAKE pages=3 tag=se extract-sleep=30s")
	out := filepath.Join(t.TempDir(), "p")
	_, err = tp.Extract(ctx, slowExtract.Source, 1, 1, out)
	if !errors.Is(err, ErrWorkerTimeout) || !strings.Contains(err.Error(), "pages 1-1") {
		t.Errorf("slow extract: %v, want ErrWorkerTimeout naming the pages", err)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("timed-out part left behind: %v", serr)
	}
	if got := len(workerChildren(t)); got != 0 {
		t.Errorf("%d workers alive after timeouts", got)
	}
}

func TestPoolReleasesAfterOpened(t *testing.T) {
	tp := newTestPool(t, PoolOptions{})
	ctx := testCtx(t)
	src := newTestSource(t, "A", "%FAKE pages=4 tag=A parse-sleep=700ms")
	src.unlink = true
	done := make(chan error, 1)
	go func() {
		_, err := tp.Extract(ctx, src.Source, 2, 3, filepath.Join(t.TempDir(), "p"))
		done <- err
	}()
	select {
	case <-src.released:
	case err := <-done:
		t.Fatalf("Extract returned (%v) before release", err)
	case <-time.After(10 * time.Second):
		t.Fatal("never released")
	}
	released := time.Now()
	if err := <-done; err != nil {
		t.Fatalf("Extract with the chunk files unlinked after release: %v", err)
	}
	if d := time.Since(released); d < 300*time.Millisecond {
		t.Errorf("released only %v before the parse ended, want release right after open", d)
	}
}

func TestPoolClose(t *testing.T) {
	tp := newTestPool(t, PoolOptions{MaxWorkers: 2})
	ctx := testCtx(t)
	busy := newTestSource(t, "busy", "%FAKE pages=3 tag=busy extract-sleep=30s")
	idle := newTestSource(t, "idle", "%FAKE pages=3 tag=idle")
	parsing := newTestSource(t, "parsing", "%FAKE pages=3 tag=parsing parse-sleep=30s")
	if _, err := tp.PageCount(ctx, idle.Source); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() {
		_, err := tp.Extract(ctx, busy.Source, 1, 1, filepath.Join(t.TempDir(), "p"))
		errs <- err
	}()
	waitFor(t, "the busy worker", 5*time.Second, func() bool { return tp.parses(t, "busy") == 1 })
	go func() {
		// Evicts idle, then parses until Close.
		_, err := tp.PageCount(ctx, parsing.Source)
		errs <- err
	}()
	waitFor(t, "the parsing worker", 5*time.Second, func() bool { return tp.parses(t, "parsing") == 1 })
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

func TestPoolBadSource(t *testing.T) {
	tp := newTestPool(t, PoolOptions{})
	ctx := testCtx(t)
	src := newTestSource(t, "A", "%FAKE pages=3 tag=A")
	wrong := src.Source
	wrong.Size++
	if _, err := tp.PageCount(ctx, wrong); err == nil || !strings.Contains(err.Error(), "want") {
		t.Errorf("size mismatch: %v", err)
	}
	failing := Source{ID: "f", Size: 1, Open: func(context.Context) ([]string, func(), error) {
		return nil, nil, errors.New("bucket on fire")
	}}
	if _, err := tp.PageCount(ctx, failing); err == nil || !strings.Contains(err.Error(), "bucket on fire") {
		t.Errorf("failing Open: %v", err)
	}
	if _, err := tp.PageCount(ctx, Source{ID: "x"}); err == nil {
		t.Error("Source without Open accepted")
	}
	if _, err := NewPool(PoolOptions{}).PageCount(ctx, src.Source); err == nil {
		t.Error("pool without Command accepted")
	}
}

// In-process tests of the child side, where the race detector sees it.

func TestServeWorkerProtocol(t *testing.T) {
	dir := t.TempDir()
	content := "%FAKE pages=6\nbody of the fake document"
	var paths []string
	for i, piece := range []string{content[:5], "", content[5:20], content[20:]} {
		p := filepath.Join(dir, strconv.Itoa(i))
		os.WriteFile(p, []byte(piece), 0o644)
		paths = append(paths, p)
	}
	var reqs bytes.Buffer
	enc := json.NewEncoder(&reqs)
	enc.Encode(workerRequest{Op: workerOpOpen, Paths: paths, Size: int64(len(content))})
	enc.Encode(workerRequest{Op: workerOpExtract, From: 2, Thru: 3, Out: filepath.Join(dir, "ok")})
	enc.Encode(workerRequest{Op: workerOpExtract, From: 5, Thru: 9, Out: filepath.Join(dir, "range")})
	enc.Encode(workerRequest{Op: "dance"})
	enc.Encode(workerRequest{Op: workerOpExtract, From: 6, Thru: 6, Out: filepath.Join(dir, "no-such-dir", "x")})
	var out, errOut bytes.Buffer
	if err := serveWorker(context.Background(), &reqs, &out, &errOut, fakeOpen); err != nil {
		t.Fatalf("serveWorker: %v", err)
	}
	var got []workerResponse
	dec := json.NewDecoder(&out)
	for {
		var r workerResponse
		if err := dec.Decode(&r); err != nil {
			break
		}
		got = append(got, r)
	}
	part := fakePart(sha256.Sum256([]byte(content)), 2, 3)
	want := []workerResponse{
		{Op: workerOpOpened},
		{Op: workerOpParsed, Pages: 6},
		{Op: workerOpExtract, Size: int64(len(part))},
		{Op: workerOpExtract, Kind: workerKindPageRange},
		{Op: "dance"},
		{Op: workerOpExtract, Kind: workerKindIO}, // the output cannot be written: not the PDF's fault
	}
	if len(got) != len(want) {
		t.Fatalf("responses %+v, want %d", got, len(want))
	}
	for i := range want {
		g := got[i]
		if g.Op != want[i].Op || g.Pages != want[i].Pages || g.Size != want[i].Size || g.Kind != want[i].Kind ||
			(g.Err != "") != (i >= 3) {
			t.Errorf("response %d = %+v, want %+v", i, g, want[i])
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ok")); string(b) != part {
		t.Errorf("part = %q, want %q", b, part)
	}
	if _, err := os.Stat(filepath.Join(dir, "range")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed extract left a file: %v", err)
	}
}

func TestServeWorkerOpenFailures(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a")
	os.WriteFile(p, []byte("%FAKE pages=1\n"), 0o644)
	for _, tc := range []struct {
		name string
		req  workerRequest
		want string
	}{
		{"missing file", workerRequest{Op: workerOpOpen, Paths: []string{p, filepath.Join(dir, "gone")}, Size: 14}, "no such file"},
		{"wrong size", workerRequest{Op: workerOpOpen, Paths: []string{p}, Size: 15}, "hold 14 bytes, want 15"},
	} {
		var in, out bytes.Buffer
		json.NewEncoder(&in).Encode(tc.req)
		if err := serveWorker(context.Background(), &in, &out, io.Discard, fakeOpen); err != nil {
			t.Errorf("%s: serveWorker: %v", tc.name, err)
		}
		var r workerResponse
		json.Unmarshal(out.Bytes(), &r)
		if r.Op != workerOpOpened || !strings.Contains(r.Err, tc.want) {
			t.Errorf("%s: %+v, want an opened error with %q", tc.name, r, tc.want)
		}
	}
	var out bytes.Buffer
	if err := serveWorker(context.Background(), strings.NewReader(""), &out, io.Discard, fakeOpen); err != nil || out.Len() != 0 {
		t.Errorf("EOF at once: %v, %q", err, out.String())
	}
	panicky := func(context.Context, io.ReadSeeker) (workerDocument, error) { panic("kaboom") }
	var in, errOut bytes.Buffer
	json.NewEncoder(&in).Encode(workerRequest{Op: workerOpOpen, Paths: []string{p}, Size: 14})
	out.Reset()
	err := serveWorker(context.Background(), &in, &out, &errOut, panicky)
	if err == nil || !strings.Contains(err.Error(), "kaboom") || !strings.Contains(errOut.String(), "goroutine") {
		t.Errorf("panic in Open: err %v, stderr %q", err, errOut.String())
	}
	if !strings.Contains(out.String(), `"kind":"panic"`) {
		t.Errorf("panic not reported to the parent: %s", out.String())
	}
}

func TestWorkerFilesReadAt(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	var all []byte
	for i, n := range []int{0, 1, 4096, 0, 3, 10000, 1} {
		b := bytes.Repeat([]byte{byte('a' + i)}, n)
		p := filepath.Join(dir, strconv.Itoa(i))
		os.WriteFile(p, b, 0o644)
		paths = append(paths, p)
		all = append(all, b...)
	}
	r, closeAll, err := openWorkerSource(paths, int64(len(all)))
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if err := iotest.TestReader(r, all); err != nil {
		t.Error(err)
	}
	// A file that shrank after open is an error, not a silent short read.
	if err := os.Truncate(paths[5], 10); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(io.NewSectionReader(r, 0, int64(len(all)))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read of a shrunk file: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestWorkerParsers(t *testing.T) {
	rss, hwm, ok := workerParseStatus([]byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads: 3\n"))
	if !ok || rss != 1<<20 || hwm != 2<<20 {
		t.Errorf("workerParseStatus = %d, %d, %v", rss, hwm, ok)
	}
	if _, _, ok := workerParseStatus([]byte("Name:\tzombie\nState:\tZ\n")); ok {
		t.Error("a zombie's status gave an RSS")
	}
	if got := workerOOMKills([]byte("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")); got != 1 {
		t.Errorf("workerOOMKills = %d", got)
	}
	for in, want := range map[string]string{
		"0::/system.slice/s3docs.service\n":                          "/system.slice/s3docs.service",
		"12:memory:/x\n1:name=systemd:/init.scope\n0::/user.slice\n": "/user.slice",
		"0::/\n": "/",
	} {
		if got, err := workerOwnCgroup([]byte(in)); err != nil || got != want {
			t.Errorf("workerOwnCgroup(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"4:memory:/process_api/x\n", "0::relative\n", "0::/a/../b\n"} {
		if got, err := workerOwnCgroup([]byte(in)); err == nil {
			t.Errorf("workerOwnCgroup(%q) = %q, want an error", in, got)
		}
	}
	var tail workerTail
	tail.add("panic: boom")
	for i := range 20 {
		tail.add("frame " + strconv.Itoa(i))
	}
	if s := tail.String(); !strings.HasPrefix(s, "panic: boom | ... | frame 14") || !strings.HasSuffix(s, "frame 19") {
		t.Errorf("tail = %q", s)
	}
	// A fatal signal's report ends in a register dump; its first line says
	// what happened.
	var sig workerTail
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
	if l, err := workerReadLine(br); err != nil || len(l) != workerLineMax {
		t.Errorf("long line: %d bytes, %v", len(l), err)
	}
	if l, err := workerReadLine(br); err != nil || l != "short" {
		t.Errorf("line after a long one: %q, %v", l, err)
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
	// SIGKILL: the daemon gets no chance to clean up, and the worker, busy
	// parsing, does not notice its stdin closing: only Pdeathsig ends it.
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
