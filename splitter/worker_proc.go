package splitter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
)

const (
	// workerPollInterval bounds how far past its limit a worker can get
	// before the RSS watch sees it: at ~1 GB/s of allocation, 50 MB.
	workerPollInterval = 50 * time.Millisecond
	// workerGrace is how long a worker told to exit may take before it is
	// killed.
	workerGrace = 5 * time.Second
	// Stderr of a worker is logged, but a panic's goroutine dump or a chatty
	// library must not flood the daemon's log.
	workerLogLines   = 50
	workerLineMax    = 1024
	workerTailLines  = 6
	workerGoMemLimit = 0.75 // GOMEMLIMIT as a fraction of MemoryLimit: GC works harder before the hard limit hits
)

type workerKill string

const (
	workerKilledMemory  workerKill = "memory limit"
	workerKilledTimeout workerKill = "timed out"
	workerKilledClosed  workerKill = "pool closed"
)

// workerProc is one running worker process.
type workerProc struct {
	p     *Pool
	id    string
	pid   int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder
	resps chan workerResponse // closed at EOF of stdout
	quit  chan struct{}       // closed when nobody reads resps any more
	cg    *workerCgroup       // nil: the RSS watch enforces the limit
	began time.Time

	readers   sync.WaitGroup
	watchStop chan struct{}
	watchDone chan struct{}
	peakRSS   atomic.Int64
	logged    atomic.Int64 // stderr and stray stdout lines logged

	mu     sync.Mutex
	killed workerKill
	detail string

	tail workerTail // written by the stderr reader only, read after it is done
}

// spawn starts a worker process under the memory limit, in a cgroup of its
// own when the pool has one, else watched.
func (p *Pool) spawn(id string) (*workerProc, error) {
	mem := p.memory()
	n := p.seq.Add(1)
	var cg *workerCgroup
	if mem.cgroupParent != "" {
		var err error
		cg, err = newWorkerCgroup(mem.cgroupParent, fmt.Sprintf("%s%d-%s-%d", workerGroupPrefix, os.Getpid(), p.stamp, n), p.o.MemoryLimit)
		if err != nil {
			p.log.Warn("split worker cgroup failed; watching its RSS instead", "id", id, "err", err)
		}
	}
	pr := &workerProc{
		p:         p,
		id:        id,
		cg:        cg,
		resps:     make(chan workerResponse),
		quit:      make(chan struct{}),
		watchStop: make(chan struct{}),
		watchDone: make(chan struct{}),
	}
	stdout, stderr, err := pr.start()
	if err != nil {
		if cg != nil {
			cg.remove()
		}
		return nil, fmt.Errorf("starting split worker: %w", err)
	}
	pr.readers.Add(2)
	go pr.readStdout(stdout)
	go pr.readStderr(stderr)
	go pr.watch()
	how := "rss watch"
	if cg != nil {
		how = "cgroup " + cg.dir
	}
	p.log.Info("split worker started", "id", id, "pid", pr.pid, "memory_limit", p.o.MemoryLimit, "enforced_by", how)
	return pr, nil
}

func (pr *workerProc) start() (stdout, stderr io.ReadCloser, err error) {
	o := pr.p.o
	env := append(os.Environ(), "GOMEMLIMIT="+strconv.FormatInt(int64(float64(o.MemoryLimit)*workerGoMemLimit), 10))
	env = append(env, o.Env...)
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
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return err
		}
		opened = append(opened, stdout)
		if stderr, err = cmd.StderrPipe(); err != nil {
			return err
		}
		if err = cmd.Start(); err != nil {
			opened = nil
			return err
		}
		pr.cmd = cmd
		return nil
	}
	if pr.cg != nil {
		err = build(true)
		if err == nil {
			pr.finishStart()
			return stdout, stderr, nil
		}
		// clone3 into a cgroup needs Linux 5.7; older kernels move the
		// process in after it started.
		if err = build(false); err != nil {
			return nil, nil, err
		}
		if merr := pr.cg.add(pr.cmd.Process.Pid); merr != nil {
			pr.p.log.Warn("split worker not moved into its cgroup; watching its RSS instead", "id", pr.id, "err", merr)
			pr.cg.remove()
			pr.cg = nil
		}
		pr.finishStart()
		return stdout, stderr, nil
	}
	if err = build(false); err != nil {
		return nil, nil, err
	}
	pr.finishStart()
	return stdout, stderr, nil
}

func (pr *workerProc) finishStart() {
	pr.pid = pr.cmd.Process.Pid
	pr.began = time.Now()
	pr.enc = json.NewEncoder(pr.stdin)
}

func (pr *workerProc) send(req workerRequest) error {
	return pr.enc.Encode(req)
}

// receive waits for the response to the request in flight; a dead or silent
// process ends the wait through EOF, since the timeout, the watch and Close
// all kill it.
func (pr *workerProc) receive(op string) (workerResponse, error) {
	r, ok := <-pr.resps
	if !ok {
		return r, errors.New("exited unexpectedly")
	}
	if r.Op != op {
		return r, fmt.Errorf("protocol: got response %q, want %q", r.Op, op)
	}
	return r, nil
}

// kill records the first reason it is called for and SIGKILLs the process.
// A process that already exited keeps its own story.
func (pr *workerProc) kill(why workerKill, detail string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.killed != "" {
		return
	}
	if err := pr.cmd.Process.Kill(); err != nil {
		return
	}
	pr.killed, pr.detail = why, detail
}

func (pr *workerProc) killReason() (workerKill, string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.killed, pr.detail
}

// end stops the process, logs one line about its end and returns why it died,
// or nil if it was asked to go (graceful) and did. graceful closes stdin and
// gives the worker workerGrace to exit; otherwise it is killed at once. note
// is the reason the caller knows of ("idle", a panic message).
func (pr *workerProc) end(graceful bool, note string) error {
	if graceful {
		pr.stdin.Close()
		t := time.NewTimer(workerGrace)
	drain:
		for {
			select {
			case _, ok := <-pr.resps:
				if !ok {
					break drain
				}
			case <-t.C:
				pr.cmd.Process.Kill()
				note += "; did not exit within " + workerGrace.String()
				graceful = false
				break drain
			}
		}
		t.Stop()
	} else {
		pr.cmd.Process.Kill()
	}
	close(pr.quit)
	pr.readers.Wait()
	close(pr.watchStop)
	<-pr.watchDone
	pr.stdin.Close()
	waitErr := pr.cmd.Wait()
	oom := false
	if pr.cg != nil {
		oom = pr.cg.oomKilled()
		pr.cg.remove()
	}

	why, detail := pr.killReason()
	if oom && why != workerKilledMemory {
		why, detail = workerKilledMemory, fmt.Sprintf("limit %s, killed by the kernel (cgroup)", workerMiB(pr.p.o.MemoryLimit))
	}
	attrs := []any{"id", pr.id, "pid", pr.pid, "peak_rss", pr.peakRSS.Load(),
		"seconds", time.Since(pr.began).Round(time.Millisecond).Seconds()}
	var err error
	switch why {
	case workerKilledMemory:
		err = fmt.Errorf("%w (%s)", ErrWorkerMemoryLimit, detail)
	case workerKilledTimeout:
		err = fmt.Errorf("%w %s", ErrWorkerTimeout, detail)
	case workerKilledClosed:
		err = ErrPoolClosed
	}
	if err != nil {
		level := slog.LevelWarn
		if why == workerKilledClosed {
			level = slog.LevelInfo
		}
		pr.p.log.Log(context.Background(), level, "split worker killed", append(attrs, "reason", string(why), "detail", detail)...)
		return err
	}
	if graceful && waitErr == nil {
		pr.p.log.Info("split worker exited", append(attrs, "reason", note)...)
		return nil
	}
	if note == "" {
		note = "exited unexpectedly"
	}
	status := "exit status 0"
	if waitErr != nil {
		status = waitErr.Error()
	}
	err = fmt.Errorf("%w: %s (%s)", ErrWorkerCrashed, note, status)
	// A panic the worker reported is its own explanation; its stack is in
	// the log already.
	if t := pr.tail.String(); t != "" && !strings.HasPrefix(note, "panic: ") {
		err = fmt.Errorf("%w; stderr: %s", err, t)
	}
	pr.p.log.Warn("split worker failed", append(attrs, "err", err)...)
	return err
}

func (pr *workerProc) readStdout(r io.Reader) {
	defer pr.readers.Done()
	defer close(pr.resps)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var resp workerResponse
		if err := json.Unmarshal(sc.Bytes(), &resp); err != nil || resp.Op == "" {
			// ServeWorker keeps fd 1 to itself, so this is some other
			// program on the command line; say so, but carry on.
			pr.logLine("split worker stray stdout", sc.Text())
			continue
		}
		select {
		case pr.resps <- resp:
		case <-pr.quit:
			return
		}
	}
}

func (pr *workerProc) readStderr(r io.Reader) {
	defer pr.readers.Done()
	br := bufio.NewReaderSize(r, 4096)
	// After a crash's first line comes its goroutine dump: the line that
	// reports the worker's end carries the headline and the last lines,
	// so the dump is not logged line by line (one failure, not fifty
	// lines).
	crashed := false
	for {
		line, err := workerReadLine(br)
		if line != "" {
			pr.tail.add(line)
			if !crashed {
				pr.logLine("split worker stderr", line)
			}
			crashed = crashed || isCrashHeadline(line)
		}
		if err != nil {
			if n := pr.logged.Load() - workerLogLines; n > 0 {
				pr.p.log.Warn("split worker stderr truncated", "id", pr.id, "pid", pr.pid, "lines_dropped", n)
			}
			return
		}
	}
}

func (pr *workerProc) logLine(msg, line string) {
	if pr.logged.Add(1) <= workerLogLines {
		pr.p.log.Warn(msg, "id", pr.id, "pid", pr.pid, "line", line)
	}
}

// workerReadLine returns the next line, cut to workerLineMax.
func workerReadLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	line := string(b[:min(len(b), workerLineMax)])
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = br.ReadSlice('\n')
	}
	return strings.TrimRight(line, "\r\n"), err
}

// watch kills the process when the pool closes, and past the memory limit
// unless a cgroup enforces it. It also keeps the peak RSS for the log.
func (pr *workerProc) watch() {
	defer close(pr.watchDone)
	limit := pr.p.o.MemoryLimit
	t := time.NewTicker(workerPollInterval)
	defer t.Stop()
	for {
		select {
		case <-pr.watchStop:
			return
		case <-pr.p.ctx.Done():
			pr.kill(workerKilledClosed, "")
			return
		case <-t.C:
			rss, hwm, ok := workerReadRSS(pr.pid)
			if !ok {
				continue
			}
			pr.peakRSS.Store(max(pr.peakRSS.Load(), hwm, rss))
			if pr.cg == nil && rss > limit {
				pr.kill(workerKilledMemory, fmt.Sprintf("limit %s, rss %s", workerMiB(limit), workerMiB(rss)))
				return
			}
		}
	}
}

// workerReadRSS reads VmRSS and VmHWM (peak) of pid in bytes. The watch runs
// only until the process is reaped, so the pid cannot be someone else's.
func workerReadRSS(pid int) (rss, hwm int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, false
	}
	return workerParseStatus(b)
}

func workerParseStatus(b []byte) (rss, hwm int64, ok bool) {
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

func workerMiB(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// workerTail keeps the last lines of a worker's stderr for error messages,
// plus the first line that says what went wrong in a Go crash, which a
// goroutine dump pushes far above the tail.
type workerTail struct {
	headline string
	lines    []string
}

func (t *workerTail) add(line string) {
	if t.headline == "" && isCrashHeadline(line) {
		t.headline = line
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > workerTailLines {
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

func (t *workerTail) String() string {
	parts := t.lines
	if t.headline != "" && !slices.Contains(parts, t.headline) {
		parts = append([]string{t.headline, "..."}, parts...)
	}
	return strings.Join(parts, " | ")
}
