package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"s3docs/internal/pdfgen"
	"s3docs/internal/testenv"
)

// hostileCase is one hostile object and what its .parts directory must do.
// Outcomes, consistent per kind (docs/semantics.md, "When a PDF cannot be
// split", says the same of the failures):
//   - not a PDF at all (zero bytes, HTML named .pdf): ENOENT, like a non-PDF;
//   - a PDF that cannot be split (truncated, encrypted with a user password,
//     a page tree with a loop, nesting past pdfcpu's depth limit, a worker
//     killed for memory or time or crashing): EIO;
//   - a PDF that only lies or hides a bomb (a /Count of two billion over one
//     page, a content stream inflating to gigabytes): served, from what the
//     file really holds, within the worker's limits.
type hostileCase struct {
	key  string
	data []byte
	want syscall.Errno // 0: parts are served
	// part is the part looked up, pages-1-1.pdf if empty. With one, the
	// PDF's directory lists (its page count is sound) and only that part
	// fails with want.
	part string
}

// TestHostilePDFs puts hostile PDFs on a real mount and looks up their
// parts, while a reader keeps reading a plain object and a good PDF's part
// and checks every byte. Each lookup ends with the outcome its kind calls
// for, quickly (the split timeout is short), the same way every time, with
// one log line per broken PDF however often it is looked up; the split
// workers stay under their memory limit or are killed at it; and the
// daemon's own memory does not grow.
func TestHostilePDFs(t *testing.T) {
	requireTools(t, "qpdf", "pdfinfo", "pdftotext")
	w := newWorld(t)
	good := pdfgen.Bytes(pdfgen.Options{Pages: 10, Title: "good"})
	plain := testenv.RandomBytes(61, 20<<20) // several chunks of a plain object
	w.s3.Put(t, testBucket, "good.pdf", good)
	w.s3.Put(t, testBucket, "plain.bin", plain)

	srcDir := t.TempDir()
	goodPath := filepath.Join(srcDir, "good.pdf")
	if err := os.WriteFile(goodPath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	encPath := filepath.Join(srcDir, "encrypted.pdf")
	run1(t, "qpdf", "--encrypt", "userpw", "ownerpw", "256", "--", goodPath, encPath)
	encrypted, err := os.ReadFile(encPath)
	if err != nil {
		t.Fatal(err)
	}

	cases := []hostileCase{
		{"hostile/empty.pdf", nil, syscall.ENOENT, ""},
		{"hostile/html.pdf", []byte("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not found</body></html>\n"), syscall.ENOENT, ""},
		{"hostile/truncated.pdf", good[:len(good)/2], syscall.EIO, ""},
		{"hostile/encrypted.pdf", encrypted, syscall.EIO, ""},
		{"hostile/nested-arrays.pdf", pdfgen.Nested(100_000, false), syscall.EIO, ""},
		{"hostile/nested-dicts.pdf", pdfgen.Nested(100_000, true), syscall.EIO, ""},
		// The page tree loops back to its root: the walk that counts the
		// pages refuses it, as qpdf does ("Loop detected").
		{"hostile/page-tree-loop.pdf", pdfgen.PageTreeLoop(), syscall.EIO, ""},
		{"hostile/count-claim.pdf", pdfgen.PageCountClaim(2_000_000_000), 0, ""},
		{"hostile/flate-bomb.pdf", pdfgen.FlateBomb(4 << 30), 0, ""},
		// 29 KB that declare 4,194,304 objects (the reader's bound): indexing
		// them needs about twice the limit, so its worker is killed.
		{"hostile/heavy.pdf", pdfgen.HeavyXref(4_194_304), syscall.EIO, ""},
	}
	for _, c := range cases {
		w.s3.Put(t, testBucket, c.key, c.data)
	}
	// The smallest limit allowed; the race detector multiplies memory use.
	limit := int64(64 << 20)
	if raceEnabled {
		limit = 192 << 20 // heavy.pdf needs over 250 MiB under -race
	}
	d := w.mount(t, mountOpts{extra: []string{"--split-memory-limit", strconv.FormatInt(limit, 10), "--split-timeout", "10s"}})
	parts := d.path(".parts")

	// The good PDF's part, made before the hostile ones, is the reference
	// for the reader below.
	goodPart := filepath.Join(parts, "good.pdf", "pages-2-4.pdf")
	goodPartBytes, err := os.ReadFile(goodPart)
	if err != nil {
		t.Fatal(err)
	}
	checkPart(t, goodPart, goodPath, 2, 4)
	rssBefore := vmRSS(t, d.cmd.Process.Pid)

	// Meanwhile: plain reads and part reads, every byte checked, with the
	// page cache dropped so that they reach the daemon.
	stop := make(chan struct{})
	var reads atomic.Int64
	var wg sync.WaitGroup
	readerErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if b, err := os.ReadFile(d.path("plain.bin")); err != nil || !bytes.Equal(b, plain) {
				readerErr <- fmt.Errorf("plain.bin: %d bytes, %v", len(b), err)
				return
			}
			if b, err := os.ReadFile(goodPart); err != nil || !bytes.Equal(b, goodPartBytes) {
				readerErr <- fmt.Errorf("good.pdf part: %d bytes, %v", len(b), err)
				return
			}
			reads.Add(2)
			_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0)
		}
	}()

	type result struct {
		errs []string
		took time.Duration
	}
	results := map[string]result{}
	for _, c := range cases {
		dir := filepath.Join(parts, c.key)
		var r result
		start := time.Now()
		// Three rounds: the first parses, the others must answer alike from
		// what the first learned, without a new worker or a new log line.
		part := c.part
		if part == "" {
			part = "pages-1-1.pdf"
		}
		for round := 0; round < 3; round++ {
			_, errDir := os.ReadDir(dir)
			_, errStat := os.Stat(filepath.Join(dir, part))
			_, errOpen := os.ReadFile(filepath.Join(dir, part))
			r.errs = append(r.errs, errnoName(errDir), errnoName(errStat), errnoName(errOpen))
			if c.part != "" && errDir != nil {
				t.Errorf("%s: round %d: listing: %v, want it listed", c.key, round, errDir)
			}
			errs := []error{errStat, errOpen}
			if c.part == "" {
				errs = append(errs, errDir)
			}
			for _, err := range errs {
				if c.want == 0 && err != nil {
					t.Errorf("%s: round %d: %v, want it served", c.key, round, err)
				}
				if c.want != 0 && !errors.Is(err, c.want) {
					t.Errorf("%s: round %d: %v, want %v", c.key, round, err, c.want)
				}
			}
		}
		r.took = time.Since(start)
		// Bounded: the split timeout is 10s; far past it something hung.
		if r.took > 60*time.Second {
			t.Errorf("%s: lookups took %v", c.key, r.took)
		}
		results[c.key] = r
		// The other files are still served after each hostile one: the
		// reader gets two more files through, exact.
		waitReads(t, &reads, readerErr, reads.Load()+2)
	}

	// What is served is a real PDF made of what the file holds.
	countDir := filepath.Join(parts, "hostile/count-claim.pdf")
	if got := strings.Join(readDirNames(t, countDir), " "); got != "pages-0001-0001.pdf" {
		t.Errorf("count-claim.pdf lists %q, want its one real page", got)
	}
	if _, err := os.Stat(filepath.Join(countDir, "pages-2-2.pdf")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("count-claim.pdf page 2: %v, want ENOENT", err)
	}
	for _, key := range []string{"hostile/count-claim.pdf", "hostile/flate-bomb.pdf"} {
		part := filepath.Join(t.TempDir(), "part.pdf")
		run1(t, "sh", "-c", "cat \"$1\" > \"$2\"", "sh", filepath.Join(parts, key, "pages-1-1.pdf"), part)
		// Not qpdf --check: it would inflate the bomb's 4 GiB to check it.
		if n := strings.TrimSpace(run1(t, "qpdf", "--show-npages", part)); n != "1" {
			t.Errorf("%s: part has %s pages", key, n)
		}
		if fi, err := os.Stat(part); err != nil || fi.Size() > 1<<20 {
			t.Errorf("%s: part of %d bytes (%v); the bomb must stay compressed", key, fi.Size(), err)
		}
	}

	close(stop)
	wg.Wait()
	select {
	case err := <-readerErr:
		t.Fatalf("reader beside the hostile PDFs: %v", err)
	default:
	}
	rssAfter := vmRSS(t, d.cmd.Process.Pid)

	// One log line per broken PDF, however often it was looked up.
	d.stop()
	log := d.stderr.String()
	broken := 0
	for _, c := range cases {
		if c.want != 0 {
			broken++
		}
		n := strings.Count(log, "cannot split PDF; not trying this version again\" key="+c.key+" ")
		if c.want != 0 && n != 1 {
			t.Errorf("%s: logged %d times, want once", c.key, n)
		}
		if c.want == 0 && n != 0 {
			t.Errorf("%s: served, yet logged as broken", c.key)
		}
		if n := countMatches(log, `level=(WARN|ERROR) msg="operation failed".* key=`+regexp.QuoteMeta(c.key)+` `); n != 0 {
			t.Errorf("%s: %d failed-operation lines; the split failure is logged once, by the splitter", c.key, n)
		}
		if n := countMatches(log, `msg="split worker started" id="?`+regexp.QuoteMeta(c.key)+`@`); n > 1 {
			t.Errorf("%s: %d split workers started; a broken PDF is parsed once", c.key, n)
		}
	}
	if n := strings.Count(log, "cannot split PDF"); n != broken {
		t.Errorf("%d split failures logged for %d broken PDFs", n, broken)
	}

	// The workers: how each ended, its peak RSS, and none past its limit
	// except by being killed for it.
	for _, c := range cases {
		for _, line := range matchLines(log, `msg="split worker (exited|killed|failed)" id="?`+regexp.QuoteMeta(c.key)+`@`) {
			peak := fieldInt(line, "peak_rss")
			want := "served"
			if c.want != 0 {
				want = errnoName(c.want)
			}
			rss := fmt.Sprintf("%.1f MiB", float64(peak)/(1<<20))
			if peak == 0 {
				rss = "not sampled (gone within one 50ms poll)"
			}
			t.Logf("%s | %s | took %v | errors %s | worker peak RSS %s | %s", c.key, want, results[c.key].took.Round(time.Millisecond),
				strings.Join(results[c.key].errs[:3], ","), rss, workerEnd(line))
			// The watch polls every 50ms, so a worker may get a little past
			// the limit before it is killed, but not far.
			if peak > limit+limit/2 && !strings.Contains(line, "memory limit") {
				t.Errorf("%s: worker peak RSS %d bytes, past the %d-byte limit, and not killed for it: %s", c.key, peak, limit, line)
			}
		}
	}
	if countMatches(log, `msg="split worker killed" id="?hostile/heavy.pdf@.* reason="memory limit"`) != 1 {
		t.Errorf("heavy.pdf: no worker killed at its memory limit")
	}
	t.Logf("daemon VmRSS %.1f MiB before the hostile lookups, %.1f MiB after; %d checked reads beside them",
		float64(rssBefore)/(1<<20), float64(rssAfter)/(1<<20), reads.Load())
	// Parsing happens in workers: the daemon holds no document. Some growth
	// is the Go runtime and the FUSE buffers warming up.
	if !raceEnabled && rssAfter-rssBefore > 48<<20 {
		t.Errorf("daemon VmRSS grew from %d to %d bytes", rssBefore, rssAfter)
	}
}

// waitReads waits until the reader has made n checked reads; 30s without
// progress means the daemon stopped serving (or the reader failed).
func waitReads(t *testing.T, reads *atomic.Int64, readerErr chan error, n int64) {
	t.Helper()
	var err error
	if !testenv.Eventually(30*time.Second, func() bool {
		select {
		case err = <-readerErr:
			return true
		default:
		}
		return reads.Load() >= n
	}) {
		t.Fatalf("the reader made no progress in 30s (%d reads)", reads.Load())
	}
	if err != nil {
		t.Fatalf("reader beside the hostile PDFs: %v", err)
	}
}

func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT:
			return "ENOENT"
		case syscall.EIO:
			return "EIO"
		}
		return errno.Error()
	}
	return err.Error()
}

// vmRSS is a process's resident set size now, in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func matchLines(log, pattern string) []string {
	re := regexp.MustCompile(pattern)
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if re.MatchString(line) {
			out = append(out, line)
		}
	}
	return out
}

func countMatches(log, pattern string) int { return len(matchLines(log, pattern)) }

// fieldInt is the value of key=N in a log line, 0 if absent.
func fieldInt(line, key string) int64 {
	m := regexp.MustCompile(`\b` + key + `=(\d+)`).FindStringSubmatch(line)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// workerEnd is how a worker ended, from its log line.
func workerEnd(line string) string {
	for _, key := range []string{"reason", "err"} {
		if m := regexp.MustCompile(key + `=("(?:[^"\\]|\\.)*"|\S+)`).FindStringSubmatch(line); m != nil {
			return key + "=" + m[1]
		}
	}
	return line
}

// TestSplitWorkerStallsAndCrashes drives the real worker into the ends no
// PDF at hand reaches reliably: one that stops making progress (SIGSTOP, as
// a parser stuck in a loop), one that dies of an unrecoverable crash
// (SIGABRT, which makes a Go process dump its goroutines and exit 2, as an
// unrecovered panic does), and one killed from outside (SIGKILL, as the
// kernel's OOM killer or an operator would), each while it holds a part
// request. pdfcpu's panics are recovered inside the worker (see
// splitter.Open and Extract), and no input tried made pdfcpu v0.15.0 panic
// or hang. The stalled one must fail that part with EIO within about the
// split timeout, be logged once and remembered; a crashed or killed worker
// says nothing of its PDF, so the part is tried once more, in a new worker,
// and served. The daemon keeps serving throughout.
func TestSplitWorkerStallsAndCrashes(t *testing.T) {
	w := newWorld(t)
	good := pdfgen.Bytes(pdfgen.Options{Pages: 4, Title: "good"})
	for _, key := range []string{"good.pdf", "stalls.pdf", "crashes.pdf", "killed.pdf"} {
		w.s3.Put(t, testBucket, key, good)
	}
	d := w.mount(t, mountOpts{extra: []string{"--split-memory-limit", "64MiB", "--split-timeout", "3s"}})
	parts := d.path(".parts")

	for _, tc := range []struct {
		key    string
		signal syscall.Signal
		want   string // in the worker's log line
		served bool   // after one more try
	}{
		{"stalls.pdf", syscall.SIGSTOP, `reason="timed out"`, false},
		{"crashes.pdf", syscall.SIGABRT, "exit status 2", true},
		{"killed.pdf", syscall.SIGKILL, "signal: killed", true},
	} {
		dir := filepath.Join(parts, tc.key)
		// The parse succeeds; the worker then waits for part requests.
		if names := readDirNames(t, dir); len(names) != 1 {
			t.Fatalf("%s: %v", tc.key, names)
		}
		pid := workerPID(t, d, tc.key)
		// Stopped, it cannot answer: the request waits in its stdin pipe.
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitStopped(t, pid)
		result := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := os.Stat(filepath.Join(dir, "pages-2-3.pdf"))
			result <- err
		}()
		if tc.signal != syscall.SIGSTOP {
			waitPipeBytes(t, pid)
			syscall.Kill(pid, tc.signal)
			syscall.Kill(pid, syscall.SIGCONT)
		}
		var err error
		select {
		case err = <-result:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: the part lookup hangs", tc.key)
		}
		took := time.Since(start)
		// The daemon's output reaches the test through a pipe, a little
		// after the lookup's answer.
		end := `msg="split worker (killed|failed)" id="?` + regexp.QuoteMeta(tc.key) + `@`
		var lines []string
		testenv.Eventually(5*time.Second, func() bool {
			lines = matchLines(d.stderr.String(), end)
			return len(lines) > 0
		})
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Fatalf("%s: worker end logged as %q, want one line with %s", tc.key, lines, tc.want)
		}
		if tc.signal == syscall.SIGABRT && !strings.Contains(lines[0], "SIGABRT: abort") {
			t.Errorf("%s: the crash's log line does not say what killed it: %s", tc.key, lines[0])
		}
		t.Logf("%s | %v | %v after %v | %s", tc.key, tc.signal, errnoName(err), took.Round(time.Millisecond), workerEnd(lines[0]))
		if tc.served {
			if err != nil {
				t.Fatalf("%s: %v after one crashed worker, want the part made by the next", tc.key, err)
			}
			part := filepath.Join(t.TempDir(), "part.pdf")
			run1(t, "sh", "-c", "cat \"$1\" > \"$2\"", "sh", filepath.Join(dir, "pages-2-3.pdf"), part)
			if n := pdfPages(t, part); n != 2 {
				t.Fatalf("%s: part of %d pages", tc.key, n)
			}
			if n := d.logCount("trying once more\" key="+tc.key+" ", 1); n != 1 {
				t.Errorf("%s: %d retries logged, want 1", tc.key, n)
			}
			continue
		}
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("%s: %v, want EIO", tc.key, err)
		}
		// Remembered: the next lookups fail at once, without a worker.
		for i := 0; i < 3; i++ {
			if _, err := os.Stat(filepath.Join(dir, "pages-1-1.pdf")); !errors.Is(err, syscall.EIO) {
				t.Fatalf("%s: later lookup: %v, want EIO", tc.key, err)
			}
		}
	}

	// Everything else is served, exactly.
	b, err := os.ReadFile(filepath.Join(parts, "good.pdf", "pages-2-3.pdf"))
	if err != nil || !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Fatalf("good.pdf part after the failures: %v", err)
	}
	if b, err := os.ReadFile(d.path("crashes.pdf")); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("plain read of crashes.pdf: %v", err)
	}
	d.stop()
	log := d.stderr.String()
	// Of a crash's stderr, its first line; the goroutine dump after it is
	// in the failure's line (headline and last lines), not line by line.
	if n := countMatches(log, `msg="split worker stderr" id="?crashes.pdf@`); n != 1 {
		t.Errorf("%d lines of the crashed worker's stderr logged, want its headline only", n)
	}
	for key, want := range map[string][2]int{"stalls.pdf": {1, 1}, "crashes.pdf": {0, 2}, "killed.pdf": {0, 2}} {
		if n := strings.Count(log, "cannot split PDF; not trying this version again\" key="+key+" "); n != want[0] {
			t.Errorf("%s: logged as broken %d times, want %d", key, n, want[0])
		}
		if n := countMatches(log, `msg="split worker started" id="?`+regexp.QuoteMeta(key)+`@`); n != want[1] {
			t.Errorf("%s: %d workers started, want %d", key, n, want[1])
		}
	}
}

// workerPID is the pid of the split worker the daemon logged starting for key.
func workerPID(t *testing.T, d *daemon, key string) int {
	t.Helper()
	lines := matchLines(d.stderr.String(), `msg="split worker started" id="?`+regexp.QuoteMeta(key)+`@`)
	if len(lines) != 1 {
		t.Fatalf("%s: %d worker start lines", key, len(lines))
	}
	pid := int(fieldInt(lines[0], "pid"))
	if pid <= 0 {
		t.Fatalf("no pid in %q", lines[0])
	}
	return pid
}

// waitStopped waits until every thread of process pid is stopped: until
// then one of them may still read a request that arrives (a reader woken
// by the signal takes waiting data before it stops).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	var tasks []string
	var err error
	stopped := 0
	if !testenv.Eventually(30*time.Second, func() bool {
		tasks, err = filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			return true
		}
		stopped = 0
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			// The state follows the parenthesized command name.
			if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
				stopped++
			}
		}
		return stopped == len(tasks)
	}) {
		t.Fatalf("process %d: %d of %d threads stopped after 30s", pid, stopped, len(tasks))
	}
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
}

// waitPipeBytes waits until the stdin pipe of process pid holds unread
// bytes: the daemon has sent it a request it has not read.
func waitPipeBytes(t *testing.T, pid int) {
	t.Helper()
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/0", pid), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ioctlErr error
	if !testenv.Eventually(30*time.Second, func() bool {
		n, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCINQ) // FIONREAD: bytes waiting in the pipe
		ioctlErr = err
		return err != nil || n > 0
	}) {
		t.Fatal("no request reached the worker in 30s")
	}
	if ioctlErr != nil {
		t.Fatal(ioctlErr)
	}
}
