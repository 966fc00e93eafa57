package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A worker parses untrusted documents, so it runs with the least the machine
// allows (docs/security.md, "What a split worker can see"):
//   - the pool starts it with a minimal environment and only fds 0, 1, 2
//     (markCloexec in the parent, closeInherited in the child);
//   - it confines itself before it reads a byte of the document: empty
//     capability bounding set, another user when the daemon is root,
//     no_new_privs, killed with its parent; then it executes itself again,
//     so that every thread of the process that reads the document carries
//     these (no_new_privs and the bounding set are per thread, and the Go
//     runtime has started threads before main);
//   - the re-executed worker installs a seccomp filter (seccomp.go) and
//     only then serves.
const (
	// envUser ("uid:gid") is set by the pool when the daemon is root.
	envUser = "S3DOCS_WORKER_USER"
	// envConfined marks the re-executed, confined worker.
	envConfined = "S3DOCS_WORKER_CONFINED"
)

// Main is the body of a worker process (a hidden subcommand): it confines the
// process, then serves the parent on stdin and stdout until stdin closes.
// It does not return in the first, unconfined, stage: it executes the
// binary again.
func Main(o ServeOptions) error {
	if err := confine(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	out, closeOut, err := protocolOut()
	if err != nil {
		return err
	}
	defer closeOut()
	return Serve(ctx, os.Stdin, out, o)
}

func confine() error {
	closeInherited()
	if os.Getenv(envConfined) == "1" {
		return restrictSyscalls()
	}
	// The credentials below are set for this thread only, which then
	// executes the binary again; it must not run other goroutines meanwhile.
	runtime.LockOSThread()
	// The kernel's OOM killer, should the machine or the unit run out,
	// takes a worker before the daemon.
	_ = os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0)
	ppid := os.Getppid()
	if os.Geteuid() == 0 {
		if err := dropBoundingSet(); err != nil {
			return err
		}
		if v := os.Getenv(envUser); v != "" {
			uid, gid, err := parseUser(v)
			if err != nil {
				return err
			}
			if err := setThreadUser(uid, gid); err != nil {
				return err
			}
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	// A change of user clears the parent-death signal the pool asked for.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("setting the parent-death signal: %w", err)
	}
	if os.Getppid() != ppid {
		return errors.New("the parent is gone")
	}
	env := []string{envConfined + "=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envUser+"=") && !strings.HasPrefix(kv, envConfined+"=") {
			env = append(env, kv)
		}
	}
	// /proc/self/exe reaches the binary without walking its path, which the
	// new user may not be allowed to (a test binary in a 0700 directory).
	err := syscall.Exec("/proc/self/exe", os.Args, env)
	return fmt.Errorf("executing the confined worker: %w", err)
}

func parseUser(v string) (uid, gid int, err error) {
	u, g, ok := strings.Cut(v, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return 0, 0, fmt.Errorf("bad %s %q", envUser, v)
	}
	return uid, gid, nil
}

// setThreadUser switches the calling thread (not the process: see confine)
// to uid and gid with no supplementary groups. The kernel clears the
// thread's capabilities when it leaves uid 0.
func setThreadUser(uid, gid int) error {
	if uid == 0 {
		return nil
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("dropping supplementary groups: %w", e)
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("switching to gid %d: %w", gid, e)
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("switching to uid %d: %w", uid, e)
	}
	return nil
}

// dropBoundingSet empties the calling thread's capability bounding set, so
// that the re-executed worker has no capabilities even as root.
func dropBoundingSet() error {
	last := unix.CAP_LAST_CAP
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// closeInherited closes every fd above 2 that the process inherited, in
// case a parent did not mark its fds close-on-exec (go-fuse opens /dev/fuse
// without O_CLOEXEC). It reads /proc/self/fd by raw system calls: os.Open
// would set up the runtime's poller, whose fds must not be closed. It keeps
// what the runtime itself may have opened before main: its poller, and the
// cgroup files of its CPU limit (which the pool turns off by GODEBUG).
func closeInherited() {
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	var fds []int
	buf := make([]byte, 4096)
	for {
		n, err := unix.ReadDirent(dir, buf)
		if err != nil || n <= 0 {
			break
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		for _, name := range names {
			if fd, err := strconv.Atoi(name); err == nil && fd > 2 && fd != dir {
				fds = append(fds, fd)
			}
		}
	}
	unix.Close(dir)
	link := make([]byte, 256)
	for _, fd := range fds {
		n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), link)
		if err != nil {
			continue
		}
		if runtimeFile(link[:n]) {
			continue
		}
		unix.Close(fd)
	}
}

func runtimeFile(target []byte) bool {
	return bytes.HasPrefix(target, []byte("/sys/fs/cgroup/")) ||
		bytes.Equal(target, []byte("anon_inode:[eventpoll]")) ||
		bytes.Equal(target, []byte("anon_inode:[eventfd]"))
}

// markCloexec marks every fd of this process above 2 close-on-exec, so that
// no child inherits one by accident (os/exec passes the files it is given by
// dup2 in the child, which clears the flag on the copy only).
func markCloexec() {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return
	}
	// Before Linux 5.11.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// protocolOut keeps the protocol apart from anything else in the process
// that prints to standard output (one stray fmt.Print in a library would
// corrupt a frame): the protocol gets a private copy of fd 1, and fd 1 is
// pointed at stderr, which the parent logs.
func protocolOut() (*os.File, func(), error) {
	fd, err := syscall.Dup(1)
	if err != nil {
		return nil, nil, fmt.Errorf("duplicating stdout: %w", err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.Dup3(2, 1, 0); err != nil {
		syscall.Close(fd)
		return nil, nil, fmt.Errorf("pointing stdout at stderr: %w", err)
	}
	f := os.NewFile(uintptr(fd), "worker-protocol")
	return f, func() { f.Close() }, nil
}
