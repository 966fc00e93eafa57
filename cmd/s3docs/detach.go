package main

// `s3docs mount --detach` is how mount(8) (through mount.fuse.s3docs) starts
// the daemon: mount(8) waits for its helper and reports the helper's exit
// status, so the helper must return once the mount answers, with 0, or with
// the reason it never will. A fork that keeps running Go is not possible, so
// the process starts itself again in the foreground, in a new session, and
// waits on a pipe:
//
//   - the child gets the write end as an extra descriptor, named in
//     $S3DOCS_READY_FD, and writes "ready\n" to it once the mount answers;
//   - the child inherits the parent's stderr, so a failure before that is
//     reported by the child's own one-line "s3docs: ..." message, and the
//     parent exits with the child's status (it adds a line only when the
//     child could not say anything: killed by a signal, or silent);
//   - the parent gives up after readyTimeout, or on SIGINT/SIGTERM/SIGHUP,
//     and stops the child then, so nothing is left half-started.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"s3docs/mountopts"
)

const (
	readyFDEnv = "S3DOCS_READY_FD"
	readyLine  = "ready"

	// readyTimeout bounds the wait for the mount; starting takes seconds
	// (credentials, one S3 request bounded at 5s, the FUSE handshake), and
	// systemd gives a mount unit 90s by default, so its own timeout, with a
	// vaguer message, should not come first.
	readyTimeout = time.Minute
	// stopGrace is how long a child that is given up on may take to unmount
	// after SIGTERM before it is killed.
	stopGrace = 10 * time.Second
)

// runDetached runs `s3docs mount` for cfg in the background and returns an
// exit code once the mount answers or cannot.
func runDetached(cfg mountopts.Config, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		return exitWith(stderr, fmt.Errorf("cannot find own executable to detach: %w", err))
	}
	child := cfg
	child.Detach = false
	// cfg.Args rather than the original arguments: they carry the defaults
	// resolved here and no --detach that could make the child start another.
	cmd := exec.Command(exe, append([]string{"mount"}, child.Args()...)...)
	return startDetached(cmd, stderr, readyTimeout)
}

// startDetached starts cmd as a daemon and waits for it to report ready.
// cmd.Env (nil: this process's environment) and cmd.Path/Args are used as
// they are; stdio, session and working directory are set here.
func startDetached(cmd *exec.Cmd, stderr io.Writer, timeout time.Duration) int {
	r, w, err := os.Pipe()
	if err != nil {
		return exitWith(stderr, fmt.Errorf("detach: %w", err))
	}
	defer r.Close()
	cmd.ExtraFiles = append(cmd.ExtraFiles, w)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, readyFDEnv+"="+strconv.Itoa(2+len(cmd.ExtraFiles)))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, stderr
	// The daemon must not pin the directory mount(8) ran in (the paths it
	// was given are absolute), nor share the caller's session: a closing
	// terminal or a Ctrl-C meant for mount(8) must not reach it.
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}

	// Signals that would kill this process before the daemon answers should
	// instead stop the daemon, so no mount appears after mount(8) gave up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if err := cmd.Start(); err != nil {
		w.Close()
		return exitWith(stderr, fmt.Errorf("detach: %w", err))
	}
	w.Close() // only the child may hold the write end, or EOF never comes

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(io.LimitReader(r, 64)).ReadString('\n')
		lines <- strings.TrimSuffix(line, "\n")
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	for {
		select {
		case line := <-lines:
			if line == readyLine {
				return exitOK
			}
			// EOF (or nonsense): the child is on its way out, or a split
			// worker it started holds the pipe; its exit or the timeout tells.
			lines = nil
		case err := <-exited:
			// A child that answered and was then unmounted at once still
			// counts as a mount that answered.
			if lines != nil {
				select {
				case line := <-lines:
					if line == readyLine {
						return exitOK
					}
				case <-time.After(100 * time.Millisecond):
				}
			}
			return exitWith(stderr, childFailed(err))
		case <-timer.C:
			stopChild(cmd, exited)
			return exitWith(stderr, fmt.Errorf("the mount did not answer within %v; stopped the daemon", timeout))
		case sig := <-sigs:
			stopChild(cmd, exited)
			return exitWith(stderr, fmt.Errorf("%v before the mount answered; stopped the daemon", sig))
		}
	}
}

// childFailed is the error of a child that exited before it reported
// ready.
func childFailed(err error) error {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return errors.New("the daemon exited before the mount answered")
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		// The child said why on the stderr it shares with us.
		return childExit{ee.ExitCode()}
	case errors.As(err, &ee):
		return fmt.Errorf("the daemon died before the mount answered: %v", ee.ProcessState)
	}
	return fmt.Errorf("the daemon failed before the mount answered: %w", err)
}

// stopChild asks the child to unmount and exit, as any stop would, and kills
// it if it does not within stopGrace.
func stopChild(cmd *exec.Cmd, exited <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopGrace):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// readyNotifier is the daemon's end of the handshake. A nil *readyNotifier,
// what a daemon in the foreground has, does nothing.
type readyNotifier struct {
	pipe     *os.File
	stderrFD int // released to /dev/null on ready when it is a terminal or a pipe
}

// readyNotifierFromEnv takes the descriptor runDetached passed, if any. Call
// it before starting any process, so that none inherits the pipe.
func readyNotifierFromEnv(getenv func(string) string) *readyNotifier {
	v := getenv(readyFDEnv)
	if v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	// A variable left in some environment must not make the daemon write
	// into whatever file happens to have that number: only a pipe will do.
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return nil
	}
	syscall.CloseOnExec(fd)
	return &readyNotifier{pipe: os.NewFile(uintptr(fd), "ready pipe"), stderrFD: 2}
}

// ready tells the waiting parent that the mount answers; call it once, when
// it does. Before that it lets go of stderr if stderr is a terminal or a
// pipe: the daemon outlives mount(8), and would otherwise write into the
// operator's terminal later, or keep `out=$(mount /mnt/s3docs 2>&1)` waiting
// until it exits. A log file or the journal's socket (under systemd) stays.
func (n *readyNotifier) ready(log *slog.Logger) {
	if n == nil {
		return
	}
	if what := interactiveStream(n.stderrFD); what != "" {
		if log != nil {
			log.Info("detached; stderr is a " + what + ", so further log lines are discarded (under systemd they go to the journal)")
		}
		if err := redirectToDevNull(n.stderrFD); err != nil && log != nil {
			log.Warn("cannot release stderr", "err", err)
		}
	}
	// A parent that is gone (killed, say) leaves nothing to tell: ignore
	// the error. SIGPIPE does not kill for descriptors other than 1 and 2.
	_, _ = io.WriteString(n.pipe, readyLine+"\n")
	_ = n.pipe.Close()
}

// interactiveStream names what fd is when holding it would bother whoever
// started the daemon, and returns "" otherwise.
func interactiveStream(fd int) string {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return ""
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFIFO:
		return "pipe"
	case syscall.S_IFCHR:
		var t syscall.Termios
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TCGETS, uintptr(unsafe.Pointer(&t))); errno == 0 {
			return "terminal"
		}
	}
	return ""
}

func redirectToDevNull(fd int) error {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	return syscall.Dup3(int(null.Fd()), fd, 0)
}
