package worker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// pollInterval bounds how far past its limit a worker can get before
	// the RSS watch sees it: at ~1 GB/s of allocation, 50 MB.
	pollInterval = 50 * time.Millisecond
	// grace is how long a worker told to exit may take before it is killed.
	grace = 5 * time.Second
	// Stderr of a worker is logged, but a panic's goroutine dump or a chatty
	// library must not flood the daemon's log.
	logLines   = 50
	lineMax    = 1024
	tailLines  = 6
	goMemLimit = 0.75 // GOMEMLIMIT as a fraction of MemoryLimit: GC works harder before the hard limit hits
)

type kill string

const (
	killedMemory        kill = "memory limit"
	killedTimeout       kill = "timed out"
	killedSourceTimeout kill = "timed out reading the source"
	killedClosed        kill = "pool closed"
	killedProtocol      kill = "protocol violation"
)

// proc is one running worker process. Its run loop is the only goroutine
// that writes to stdin or reads stdout.
type proc struct {
	p      *Pool
	src    Source
	pid    int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	cg     *cgroup // nil: the RSS watch enforces the limit
	began  time.Time
	buf    []byte // one frame's payload at a time, at most maxData

	exited     chan struct{} // closed when the process has exited (not yet reaped)
	stderrDone chan struct{}
	watchStop  chan struct{}
	watchDone  chan struct{}
	peakRSS    atomic.Int64
	logged     atomic.Int64 // stderr lines logged
	reading    atomic.Bool  // the parent is reading the source for it

	// Run loop only: the request's first failed read of the source, and the
	// bytes of the source read for the worker.
	sourceErr   error
	sourceBytes int64

	mu     sync.Mutex
	killed kill
	detail string

	tail tail // written by the stderr reader only, read after it is done
}

// spawn starts a worker process for src under the memory limit, in a cgroup
// of its own when the pool has one, else watched.
func (p *Pool) spawn(src Source) (*proc, error) {
	mem := p.memory()
	n := p.seq.Add(1)
	var cg *cgroup
	if mem.cgroupParent != "" {
		var err error
		cg, err = newCgroup(mem.cgroupParent, fmt.Sprintf("%s%d-%s-%d", groupPrefix, os.Getpid(), p.stamp, n), p.o.MemoryLimit)
		if err != nil {
			p.log.Warn("split worker cgroup failed; watching its RSS instead", "id", src.ID, "err", err)
		}
	}
	pr := &proc{
		p:          p,
		src:        src,
		cg:         cg,
		exited:     make(chan struct{}),
		stderrDone: make(chan struct{}),
		watchStop:  make(chan struct{}),
		watchDone:  make(chan struct{}),
	}
	stderr, err := pr.start()
	if err != nil {
		if cg != nil {
			cg.remove()
		}
		return nil, err
	}
	go pr.readStderr(stderr)
	go pr.watch()
	go pr.waitExit()
	how := "rss watch"
	if pr.cg != nil {
		how = "cgroup " + pr.cg.dir
	}
	p.log.Info("split worker started", "id", src.ID, "pid", pr.pid, "memory_limit", p.o.MemoryLimit,
		"enforced_by", how, "user", p.user())
	return pr, nil
}

// user is "uid:gid" for the workers when the daemon is root, "" when they
// keep the daemon's user.
func (p *Pool) user() string {
	if os.Geteuid() != 0 || (p.o.UID == 0 && p.o.GID == 0) {
		return ""
	}
	return strconv.Itoa(p.o.UID) + ":" + strconv.Itoa(p.o.GID)
}

// env is a worker's whole environment: nothing of the daemon's (its AWS
// credentials least of all).
func (p *Pool) env() []string {
	env := []string{
		"GOMEMLIMIT=" + strconv.FormatInt(int64(float64(p.o.MemoryLimit)*goMemLimit), 10),
		// Go 1.25+ keeps cgroup files open to follow the CPU limit; a worker
		// needs no fds but its pipes, and closes what it did not expect.
		"GODEBUG=containermaxprocs=0,updatemaxprocs=0",
	}
	if u := p.user(); u != "" {
		env = append(env, envUser+"="+u)
	}
	return append(env, p.o.Env...)
}

func (pr *proc) start() (stderr io.ReadCloser, err error) {
	o := pr.p.o
	env := pr.p.env()
	build := func(intoCgroup bool) (err error) {
		var opened []io.Closer
		defer func() {
			if err != nil && pr.cmd == nil {
				// Start closes the pipes itself; this is for failures before it.
				for _, c := range opened {
					c.Close()
				}
			}
		}()
		cmd := exec.Command(o.Command[0], o.Command[1:]...)
		cmd.Env = env
		// Pdeathsig: a worker must never outlive the daemon, even one that
		// dies by SIGKILL and cannot clean up.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if intoCgroup {
			// Born in its cgroup (clone3): no moment outside the limit.
			cmd.SysProcAttr.UseCgroupFD = true
			cmd.SysProcAttr.CgroupFD = int(pr.cg.fd.Fd())
		}
		if pr.stdin, err = cmd.StdinPipe(); err != nil {
			return err
		}
		opened = append(opened, pr.stdin)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		opened = append(opened, stdout)
		if stderr, err = cmd.StderrPipe(); err != nil {
			return err
		}
		// Whatever the daemon holds (the FUSE device, sockets to S3, cache
		// files) stays out of the worker.
		markCloexec()
		if err = cmd.Start(); err != nil {
			opened = nil
			return err
		}
		pr.cmd = cmd
		pr.stdout = bufio.NewReaderSize(stdout, 64<<10)
		return nil
	}
	if pr.cg != nil {
		err = build(true)
		if err == nil {
			pr.finishStart()
			return stderr, nil
		}
		// clone3 into a cgroup needs Linux 5.7; older kernels move the
		// process in after it started.
		if err = build(false); err != nil {
			return nil, err
		}
		if merr := pr.cg.add(pr.cmd.Process.Pid); merr != nil {
			pr.p.log.Warn("split worker not moved into its cgroup; watching its RSS instead", "id", pr.src.ID, "err", merr)
			pr.cg.remove()
			pr.cg = nil
		}
		pr.finishStart()
		return stderr, nil
	}
	if err = build(false); err != nil {
		return nil, err
	}
	pr.finishStart()
	return stderr, nil
}

func (pr *proc) finishStart() {
	pr.pid = pr.cmd.Process.Pid
	pr.began = time.Now()
}

// waitExit closes exited when the process has exited, without reaping it
// (stop does), so that an idle worker's death is noticed.
func (pr *proc) waitExit() {
	defer close(pr.exited)
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pr.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// deadline bounds one request: when d has passed, the process is killed and
// ctx, under which the source is read for it, is cancelled. A worker waiting
// for the source when time runs out was not slow itself.
func (pr *proc) deadline(d time.Duration, what string) (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancel(pr.p.ctx)
	t := time.AfterFunc(d, func() {
		why := killedTimeout
		if pr.reading.Load() {
			why = killedSourceTimeout
		}
		pr.kill(why, fmt.Sprintf("after %v %s", d, what))
		cancel()
	})
	return ctx, func() {
		t.Stop()
		cancel()
	}
}

// hello waits for the worker to say it is confined and ready.
func (pr *proc) hello() error {
	typ, n, err := readHeader(pr.stdout)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("exited before it was ready")
		}
		pr.kill(killedProtocol, err.Error())
		return err
	}
	if typ != frameHello || n != 0 {
		pr.kill(killedProtocol, fmt.Sprintf("first frame %q, want %q", typ, frameHello))
		return fmt.Errorf("%w: first frame %q", errProtocol, typ)
	}
	return nil
}

// exchange serves the worker's reads of the source until it answers the
// request in flight, and passes the part's pieces to c (nil outside an
// extract). It returns the answer (P, Z or X) as it came. An error means the
// worker is gone or broke the protocol (then it is being killed).
func (pr *proc) exchange(ctx context.Context, c *call) (typ byte, payload []byte, err error) {
	limit := maxPart(pr.src.Size)
	var part int64
	violation := func(format string, args ...any) (byte, []byte, error) {
		detail := fmt.Sprintf(format, args...)
		pr.kill(killedProtocol, detail)
		return 0, nil, fmt.Errorf("%w: %s", errProtocol, detail)
	}
	for {
		typ, n, err := readHeader(pr.stdout)
		if err == nil {
			switch typ {
			case frameRead, framePrefetch, framePart, frameParsed, frameDone, frameError:
			default:
				return violation("unexpected frame %q", typ)
			}
			payload, err = readPayload(pr.stdout, &pr.buf, n)
		}
		if err != nil {
			// A frame cut short by the worker's death is its death.
			if errors.Is(err, io.EOF) || pr.exitedNow() {
				return 0, nil, errExited
			}
			if errors.Is(err, errProtocol) {
				return violation("%v", err)
			}
			return 0, nil, err
		}
		switch typ {
		case frameRead:
			off, n, err := decodeRead(payload)
			if err != nil {
				return violation("%v", err)
			}
			if err := pr.answerRead(ctx, off, n); err != nil {
				return 0, nil, err
			}
		case framePrefetch:
			offs, n, err := decodePrefetch(payload)
			if err != nil {
				return violation("%v", err)
			}
			pr.prefetch(ctx, offs, n)
			if err := writeFrame(pr.stdin, frameData, nil); err != nil {
				return 0, nil, err
			}
		case framePart:
			if c == nil {
				return violation("part data outside an extract")
			}
			if part += int64(len(payload)); part > limit {
				return violation("a part of more than %d bytes from a source of %d", limit, pr.src.Size)
			}
			c.write(payload)
		default:
			return typ, payload, nil
		}
	}
}

// errExited is a worker gone from under a request: how it went (killed for
// what, its exit status) is its story.
var errExited = errors.New("exited unexpectedly")

// exitedNow tells whether the process has exited, waiting a moment for the
// kernel to say so after its pipes closed.
func (pr *proc) exitedNow() bool {
	select {
	case <-pr.exited:
		return true
	case <-time.After(100 * time.Millisecond):
		return false
	}
}

// answerRead reads n bytes of the source at off (fewer at its end) and sends
// them, or the failure, to the worker. The error is for the pipe.
func (pr *proc) answerRead(ctx context.Context, off int64, n int) error {
	if off >= pr.src.Size {
		n = 0
	} else {
		n = int(min(int64(n), pr.src.Size-off))
	}
	if cap(pr.buf) < n {
		pr.buf = make([]byte, n)
	}
	b := pr.buf[:n]
	var k int
	var err error
	if n > 0 {
		pr.reading.Store(true)
		k, err = pr.src.Reader.ReadAt(ctx, b, off)
		pr.reading.Store(false)
	}
	if k == n {
		err = nil // io.EOF at the very end is no failure
	} else if err == nil {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		if pr.sourceErr == nil {
			pr.sourceErr = err
		}
		msg := err.Error()
		if len(msg) > maxControl {
			msg = msg[:maxControl]
		}
		return writeFrame(pr.stdin, frameFailed, []byte(msg))
	}
	pr.sourceBytes += int64(n)
	return writeFrame(pr.stdin, frameData, b)
}

// prefetch has the source fetch what the worker's announced reads need, if
// it can. A failure is the reads' to meet.
func (pr *proc) prefetch(ctx context.Context, offs []int64, n int) {
	p, ok := pr.src.Reader.(Prefetcher)
	if !ok {
		return
	}
	pr.reading.Store(true)
	_ = p.Prefetch(ctx, offs, n)
	pr.reading.Store(false)
}

// docError reads the worker's error answer.
func (pr *proc) docError(payload []byte) error {
	var m errorMsg
	if err := decodeJSON(frameError, payload, &m); err != nil {
		pr.kill(killedProtocol, err.Error())
		return err
	}
	return &DocError{Kind: m.Kind, Msg: m.Err}
}

// kill records the first reason it is called for and SIGKILLs the process.
// A process that already exited keeps its own story.
func (pr *proc) kill(why kill, detail string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.killed != "" {
		return
	}
	pr.samplePeak() // its last chance: the watch may not have looked yet
	if err := pr.cmd.Process.Kill(); err != nil {
		return
	}
	pr.killed, pr.detail = why, detail
}

func (pr *proc) killReason() (kill, string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.killed, pr.detail
}

// exit is how a worker process ended.
type exit struct {
	killed  kill
	detail  string
	asked   bool  // it was asked to exit (stdin closed) and did in time
	waitErr error // from Wait
	tail    string
	limit   int64
}

// stop ends the process and reaps it. graceful closes its stdin and gives it
// the grace period to exit; otherwise it is killed at once.
func (pr *proc) stop(graceful bool) exit {
	// The watch samples every pollInterval and may not have seen a worker
	// that lived less; one more look before it goes. (The kernel's count at
	// the reaping, rusage's Maxrss, is no good: it carries the daemon's
	// peak, whose memory the child shared until its exec.)
	pr.samplePeak()
	asked := false
	if graceful {
		pr.stdin.Close()
		t := time.AfterFunc(grace, func() { pr.cmd.Process.Kill() })
		// Until the worker closes its end (it exits); whatever it still
		// says does not matter now.
		_, _ = io.Copy(io.Discard, pr.stdout)
		asked = t.Stop()
	} else {
		pr.cmd.Process.Kill()
	}
	<-pr.stderrDone
	close(pr.watchStop)
	<-pr.watchDone
	pr.stdin.Close()
	waitErr := pr.cmd.Wait()
	<-pr.exited
	oom := false
	if pr.cg != nil {
		oom = pr.cg.oomKilled()
		pr.cg.remove()
	}
	why, detail := pr.killReason()
	if oom && why != killedMemory {
		why, detail = killedMemory, fmt.Sprintf("limit %s, killed by the kernel (cgroup)", mib(pr.p.o.MemoryLimit))
	}
	if graceful && !asked && why == "" {
		detail = "did not exit within " + grace.String()
	}
	return exit{killed: why, detail: detail, asked: asked, waitErr: waitErr, tail: pr.tail.String(), limit: pr.p.o.MemoryLimit}
}

// story is what an exit says, for the log and the error of whoever waits
// on the worker (classify says whose fault it is): nil for a worker that
// was asked to go and went. note is what the pool knows of the end
// ("idle"), said what the worker reported before it ended.
func (e exit) story(note string, said error) error {
	switch e.killed {
	case killedMemory:
		return fmt.Errorf("%w (%s)", ErrMemoryLimit, e.detail)
	case killedTimeout:
		return fmt.Errorf("%w %s", ErrTimeout, e.detail)
	case killedSourceTimeout:
		return fmt.Errorf("%w %s, waiting for the source", ErrTimeout, e.detail)
	case killedClosed:
		return ErrPoolClosed
	case killedProtocol:
		return fmt.Errorf("%w: %s", ErrProtocol, e.detail)
	}
	if e.asked && e.waitErr == nil {
		return nil
	}
	status := "exit status 0"
	if e.waitErr != nil {
		status = e.waitErr.Error()
	}
	if e.detail != "" {
		status += "; " + e.detail
	}
	var de *DocError
	if errors.As(said, &de) && de.Kind == KindPanic {
		// A panic the worker reported is its own explanation; its stack is
		// in the log already.
		return fmt.Errorf("%w: %w (%s)", ErrCrashed, said, status)
	}
	if note == "" {
		note = "exited unexpectedly"
	}
	err := fmt.Errorf("%w: %s (%s)", ErrCrashed, note, status)
	if e.tail != "" {
		err = fmt.Errorf("%w; stderr: %s", err, e.tail)
	}
	return err
}

// logEnd writes the one line that reports a worker's end.
func (pr *proc) logEnd(e exit, note string, err error) {
	attrs := []any{"id", pr.src.ID, "pid", pr.pid, "peak_rss", pr.peakRSS.Load(), "source_bytes", pr.sourceBytes,
		"seconds", time.Since(pr.began).Round(time.Millisecond).Seconds()}
	switch {
	case e.killed != "" && e.killed != killedProtocol:
		level := slog.LevelWarn
		if e.killed == killedClosed {
			level = slog.LevelInfo
		}
		pr.p.log.Log(context.Background(), level, "split worker killed", append(attrs, "reason", string(e.killed), "detail", e.detail)...)
	case err == nil:
		pr.p.log.Info("split worker exited", append(attrs, "reason", note)...)
	default:
		pr.p.log.Warn("split worker failed", append(attrs, "err", err)...)
	}
}

func (pr *proc) readStderr(r io.Reader) {
	defer close(pr.stderrDone)
	br := bufio.NewReaderSize(r, 4096)
	// After a crash's first line comes its goroutine dump: the line that
	// reports the worker's end carries the headline and the last lines,
	// so the dump is not logged line by line (one failure, not fifty
	// lines).
	crashed := false
	for {
		line, err := readLine(br)
		if line != "" {
			pr.tail.add(line)
			if !crashed {
				pr.logLine("split worker stderr", line)
			}
			crashed = crashed || isCrashHeadline(line)
		}
		if err != nil {
			if n := pr.logged.Load() - logLines; n > 0 {
				pr.p.log.Warn("split worker stderr truncated", "id", pr.src.ID, "pid", pr.pid, "lines_dropped", n)
			}
			return
		}
	}
}

func (pr *proc) logLine(msg, line string) {
	if pr.logged.Add(1) <= logLines {
		pr.p.log.Warn(msg, "id", pr.src.ID, "pid", pr.pid, "line", line)
	}
}

// readLine returns the next line, cut to lineMax.
func readLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	line := string(b[:min(len(b), lineMax)])
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = br.ReadSlice('\n')
	}
	return strings.TrimRight(line, "\r\n"), err
}

// watch kills the process when the pool closes, and past the memory limit
// unless a cgroup enforces it. It also keeps the peak RSS for the log.
func (pr *proc) watch() {
	defer close(pr.watchDone)
	limit := pr.p.o.MemoryLimit
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-pr.watchStop:
			return
		case <-pr.p.ctx.Done():
			pr.kill(killedClosed, "")
			return
		case <-t.C:
			rss, ok := pr.samplePeak()
			if !ok {
				continue
			}
			if pr.cg == nil && rss > limit {
				pr.kill(killedMemory, fmt.Sprintf("limit %s, rss %s", mib(limit), mib(rss)))
				return
			}
		}
	}
}

// samplePeak keeps the worker's peak RSS so far, and returns its RSS now.
func (pr *proc) samplePeak() (rss int64, ok bool) {
	rss, hwm, ok := readRSS(pr.pid)
	if ok {
		pr.peakRSS.Store(max(pr.peakRSS.Load(), hwm, rss))
	}
	return rss, ok
}

// readRSS reads VmRSS and VmHWM (peak) of pid in bytes. The watch runs only
// until the process is reaped, so the pid cannot be someone else's.
func readRSS(pid int) (rss, hwm int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, false
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (rss, hwm int64, ok bool) {
	for line := range bytes.Lines(b) {
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &rss
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &hwm
		default:
			continue
		}
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		*dst = kb << 10
		ok = true
	}
	// A zombie has no VmRSS line: nothing to measure.
	return rss, hwm, ok
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// tail keeps the last lines of a worker's stderr for error messages, plus
// the first line that says what went wrong in a Go crash, which a goroutine
// dump pushes far above the tail.
type tail struct {
	headline string
	lines    []string
}

func (t *tail) add(line string) {
	if t.headline == "" && isCrashHeadline(line) {
		t.headline = line
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > tailLines {
		t.lines = t.lines[1:]
	}
}

// isCrashHeadline recognizes the line with which the Go runtime begins a
// crash report: an unrecovered panic, a fatal error, or a fatal signal
// ("SIGSEGV: segmentation violation", "SIGABRT: abort"), whose register
// dump would otherwise be all the tail shows.
func isCrashHeadline(line string) bool {
	if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		return true
	}
	name, _, ok := strings.Cut(line, ": ")
	if !ok || len(name) < 4 || !strings.HasPrefix(name, "SIG") {
		return false
	}
	for _, c := range name[3:] {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func (t *tail) String() string {
	parts := t.lines
	if t.headline != "" && !slices.Contains(parts, t.headline) {
		parts = append([]string{t.headline, "..."}, parts...)
	}
	return strings.Join(parts, " | ")
}
