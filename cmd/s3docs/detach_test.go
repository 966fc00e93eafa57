package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// fakeChild is a stand-in for the re-executed daemon: a shell script that
// sees the ready descriptor's number in $S3DOCS_READY_FD, as the daemon does.
func fakeChild(script string) *exec.Cmd {
	return exec.Command("sh", "-c", script)
}

// detachStderr is a file, not a buffer: the child inherits it as it would
// inherit mount(8)'s stderr, and may outlive the call writing to it.
func detachStderr(t *testing.T) (*os.File, func() string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, func() string {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

func TestDetachHandshake(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		timeout    time.Duration
		wantCode   int
		wantStderr string // exact
		wantAlive  bool   // the child still runs after the parent returned
		eitherWay  bool   // whether it does is a race the test does not decide
	}{
		{
			name:      "ready",
			script:    `echo "s3docs: starting" >&2; eval 'echo ready >&'"$S3DOCS_READY_FD"; exec sleep 60`,
			wantCode:  exitOK,
			wantAlive: true, wantStderr: "s3docs: starting\n",
		},
		{
			name:       "failure with the child's reason",
			script:     `echo 's3docs: bucket "nope" does not exist' >&2; exit 2`,
			wantCode:   exitUsage,
			wantStderr: "s3docs: bucket \"nope\" does not exist\n",
		},
		{
			name:       "failure while running",
			script:     `echo 's3docs: mount /m: permission denied' >&2; exit 1`,
			wantCode:   exitFailure,
			wantStderr: "s3docs: mount /m: permission denied\n",
		},
		{
			name:       "killed",
			script:     `kill -9 $$`,
			wantCode:   exitFailure,
			wantStderr: "s3docs: the daemon died before the mount answered: signal: killed\n",
		},
		{
			name:       "exit 0 without ready",
			script:     `exit 0`,
			wantCode:   exitFailure,
			wantStderr: "s3docs: the daemon exited before the mount answered\n",
		},
		{
			name:       "ready then gone at once still answered",
			script:     `eval 'echo ready >&'"$S3DOCS_READY_FD"; exit 0`,
			wantCode:   exitOK,
			wantStderr: "",
			eitherWay:  true,
		},
		{
			name:       "something else on the pipe",
			script:     `eval 'echo nonsense >&'"$S3DOCS_READY_FD"; echo 's3docs: boom' >&2; exit 1`,
			wantCode:   exitFailure,
			wantStderr: "s3docs: boom\n",
		},
		{
			name:       "hangs",
			script:     `exec sleep 60`,
			timeout:    300 * time.Millisecond,
			wantCode:   exitFailure,
			wantStderr: "s3docs: the mount did not answer within 300ms; stopped the daemon\n",
		},
		{
			name:       "closes the pipe and hangs",
			script:     `eval 'exec '"$S3DOCS_READY_FD"'>&-'; exec sleep 60`,
			timeout:    300 * time.Millisecond,
			wantCode:   exitFailure,
			wantStderr: "s3docs: the mount did not answer within 300ms; stopped the daemon\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.timeout == 0 {
				tt.timeout = 10 * time.Second
			}
			stderr, read := detachStderr(t)
			cmd := fakeChild(tt.script)
			start := time.Now()
			code := startDetached(cmd, stderr, tt.timeout)
			if d := time.Since(start); d > tt.timeout+5*time.Second {
				t.Errorf("took %v", d)
			}
			alive := cmd.Process != nil && syscall.Kill(cmd.Process.Pid, 0) == nil && !isZombie(cmd.Process.Pid)
			if alive {
				t.Cleanup(func() { cmd.Process.Kill() })
			}
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if got := read(); got != tt.wantStderr {
				t.Errorf("stderr %q, want %q", got, tt.wantStderr)
			}
			if alive != tt.wantAlive && !tt.eitherWay {
				t.Errorf("child alive = %v, want %v", alive, tt.wantAlive)
			}
		})
	}
}

// TestDetachChildSetup checks what the daemon is started with: its own
// session, stdin and stdout on /dev/null, "/" as working directory, and the
// ready descriptor named in its environment.
func TestDetachChildSetup(t *testing.T) {
	stderr, read := detachStderr(t)
	// The subshell keeps the shell's own descriptors as they are while the
	// test looks at them (dash swaps fd 1 around a redirected builtin).
	cmd := fakeChild(`echo "fd=$S3DOCS_READY_FD" >&2; (eval 'echo ready >&'"$S3DOCS_READY_FD"); exec sleep 60`)
	cmd.Env = append(os.Environ(), "S3DOCS_EXTRA=kept")
	if code := startDetached(cmd, stderr, 10*time.Second); code != exitOK {
		t.Fatalf("exit code %d: %s", code, read())
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill() })
	if got := read(); got != "fd=3\n" {
		t.Errorf("child stderr %q", got)
	}
	if sid, err := getsid(pid); err != nil || sid != pid {
		t.Errorf("session of %d is %d (%v), want its own", pid, sid, err)
	}
	for fd, want := range map[int]string{0: os.DevNull, 1: os.DevNull, 2: stderr.Name()} {
		if got, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); err != nil || got != want {
			t.Errorf("fd %d is %q (%v), want %q", fd, got, err, want)
		}
	}
	if got, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || got != "/" {
		t.Errorf("cwd %q (%v)", got, err)
	}
	// The child signals ready just before it execs sleep; while the exec
	// is under way /proc may show an empty or a partial environment (a read
	// of the shell's first 512 bytes, then the end of the new image's), so
	// look until the variable shows or the deadline passes.
	const want = "\x00S3DOCS_EXTRA=kept\x00"
	var env []byte
	var readErr error
	testenv.Eventually(5*time.Second, func() bool {
		env, readErr = os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		return readErr != nil || strings.Contains("\x00"+string(env), want)
	})
	if readErr != nil {
		t.Fatal(readErr)
	}
	if !strings.Contains("\x00"+string(env), want) {
		t.Errorf("the given environment was not passed on (%d bytes of environment)", len(env))
	}
}

func getsid(pid int) (int, error) {
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, uintptr(pid), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(sid), nil
}

// TestReadyNotifier is the daemon's side: it writes "ready" to the pipe it
// was given, once, and lets go of a stderr that is a pipe or terminal.
func TestReadyNotifier(t *testing.T) {
	var nilNotifier *readyNotifier
	nilNotifier.ready(nil) // a foreground daemon's: must not panic

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// A second pipe stands in for stderr, so the test's own is left alone.
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer errR.Close()
	fd := dupFD(t, w)
	env := map[string]string{readyFDEnv: strconv.Itoa(fd)}
	n := readyNotifierFromEnv(func(k string) string { return env[k] })
	if n == nil {
		t.Fatal("no notifier for a pipe descriptor")
	}
	if flags, err := fcntlGetFD(fd); err != nil || flags&syscall.FD_CLOEXEC == 0 {
		t.Errorf("ready descriptor not close-on-exec (flags %d, %v)", flags, err)
	}
	n.stderrFD = dupFD(t, errW)
	stderrFD := n.stderrFD
	defer syscall.Close(stderrFD)
	errW.Close()

	n.ready(nil)
	w.Close()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "ready\n" {
		t.Errorf("pipe got %q (%v), want %q", got, err, "ready\n")
	}
	// The stand-in stderr now leads to /dev/null: its pipe has no writer left.
	done := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(errR); done <- b }()
	select {
	case b := <-done:
		if len(b) != 0 {
			t.Errorf("stderr pipe got %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Error("stderr pipe still held after ready")
	}
	if target, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", stderrFD)); target != os.DevNull {
		t.Errorf("stderr descriptor leads to %q, want %s", target, os.DevNull)
	}
}

func TestReadyNotifierKeepsFileStderr(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if what := interactiveStream(int(f.Fd())); what != "" {
		t.Errorf("a log file counts as %q", what)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if what := interactiveStream(int(w.Fd())); what != "pipe" {
		t.Errorf("a pipe counts as %q", what)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if what := interactiveStream(int(null.Fd())); what != "" {
		t.Errorf("/dev/null counts as %q", what)
	}
}

func TestReadyNotifierFromEnvIgnores(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, v := range []string{"", "x", "-1", "0", "2", "99999", strconv.Itoa(int(f.Fd()))} {
		env := map[string]string{readyFDEnv: v}
		if n := readyNotifierFromEnv(func(k string) string { return env[k] }); n != nil {
			t.Errorf("%s=%q gave a notifier", readyFDEnv, v)
		}
	}
}

func dupFD(t *testing.T, f *os.File) int {
	t.Helper()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func fcntlGetFD(fd int) (int, error) {
	v, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(v), nil
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// processGone waits until pid has exited (a zombie counts: reaping it is up
// to whoever adopted it).
func processGone(pid int, within time.Duration) bool {
	return testenv.Eventually(within, func() bool { return syscall.Kill(pid, 0) != nil || isZombie(pid) })
}

// daemonsOf lists the processes of `s3docs mount ... MOUNTPOINT` for mp.
func daemonsOf(mp string) []int {
	des, _ := os.ReadDir("/proc")
	var pids []int
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", de.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(args) >= 3 && args[1] == "mount" && args[len(args)-1] == mp && !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// oneDaemon returns the pid of the one daemon serving mp.
func oneDaemon(t *testing.T, mp string) int {
	t.Helper()
	pids := daemonsOf(mp)
	if len(pids) != 1 {
		t.Fatalf("want one daemon for %s, found %v", mp, pids)
	}
	return pids[0]
}

// stopDaemonsOf is a cleanup for tests whose daemon is nobody's child.
func stopDaemonsOf(t *testing.T, mp string) {
	t.Helper()
	for _, pid := range daemonsOf(mp) {
		syscall.Kill(pid, syscall.SIGTERM)
		if !processGone(pid, 15*time.Second) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("daemon %d for %s ignored SIGTERM", pid, mp)
		}
	}
	if ok, _ := isMountPoint(mp); ok {
		syscall.Unmount(mp, syscall.MNT_DETACH)
		t.Errorf("%s still mounted", mp)
	}
}

// detachedMount runs `s3docs mount --detach` the way a user would, with its
// output on a pipe, which the daemon must let go of for the call to return.
func (w *world) detachedMount(t *testing.T, source, mp string, extra ...string) (string, int) {
	t.Helper()
	args := append([]string{"mount", "--detach", "--endpoint-url", w.s3.Endpoint, "--force-path-style",
		"--region", "us-east-1", "--cache-dir", t.TempDir(), "--cache-size", "1GiB"}, extra...)
	args = append(args, source, mp)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(w.s3.Env(), runMainEnv+"=1")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil || errors.Is(err, exec.ErrWaitDelay) {
		t.Fatalf("s3docs mount --detach did not return (ctx %v, err %v):\n%s", ctx.Err(), err, out)
	}
	return string(out), exitCodeOf(err)
}

func TestMountDetach(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(7, 3*mib+11)
	w.s3.Put(t, testBucket, "cases/a.pdf", data)
	mp := t.TempDir()
	t.Cleanup(func() { stopDaemonsOf(t, mp) })

	out, code := w.detachedMount(t, "s3://"+testBucket, mp)
	t.Logf("s3docs mount --detach:\n%s", out)
	if code != exitOK {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
	if ok, _ := isMountPoint(mp); !ok {
		t.Fatalf("not mounted once --detach returned:\n%s", out)
	}
	if !strings.Contains(out, "msg=mounted") || !strings.Contains(out, "stderr is a pipe, so further log lines are discarded") {
		t.Errorf("output lacks the mounted and detached lines:\n%s", out)
	}
	pid := oneDaemon(t, mp)
	if sid, err := getsid(pid); err != nil || sid != pid {
		t.Errorf("daemon %d in session %d (%v), want its own", pid, sid, err)
	}
	if got := sha256Of(t, filepath.Join(mp, "cases/a.pdf")); got != sha256Hex(data) {
		t.Errorf("content through the detached mount differs")
	}

	if out, err := testenv.Command(testenv.Tool(t, "umount"), mp).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	if !processGone(pid, 15*time.Second) {
		t.Fatalf("daemon %d still running 15s after umount", pid)
	}
	if ok, _ := isMountPoint(mp); ok {
		t.Fatal("still mounted")
	}
}

func TestMountDetachFailure(t *testing.T) {
	w := newWorld(t)
	for _, tt := range []struct {
		name, source string
		extra        []string
		wantCode     int
		wantOut      string
	}{
		{name: "missing bucket", source: "s3://no-such-bucket", wantCode: exitUsage, wantOut: "no-such-bucket"},
		{name: "bad option", source: "s3://docs", extra: []string{"-o", "cache_size=10XB"}, wantCode: exitUsage,
			wantOut: `s3docs: mount option cache_size: invalid size "10XB" (use e.g. 64MiB, 10GiB, 10G)` + "\n"},
		{name: "mount point missing", source: "s3://docs", wantCode: exitUsage, wantOut: "does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mp := t.TempDir()
			if tt.name == "mount point missing" {
				mp = filepath.Join(mp, "nope")
			}
			t.Cleanup(func() { stopDaemonsOf(t, mp) })
			out, code := w.detachedMount(t, tt.source, mp, tt.extra...)
			t.Logf("s3docs mount --detach:\n%s", out)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d:\n%s", code, tt.wantCode, out)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out)
			}
			if n := strings.Count(out, "\n"); n != 1 || !strings.HasPrefix(out, "s3docs: ") {
				t.Errorf("want the one-line reason, got %d lines:\n%s", n, out)
			}
			if pids := daemonsOf(mp); len(pids) != 0 {
				t.Errorf("daemons left: %v", pids)
			}
		})
	}
}

// readLines is for logs a daemon wrote to a file.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}
