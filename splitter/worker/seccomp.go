//go:build amd64 || arm64

package worker

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// restrictSyscalls installs, on every thread of the confined worker, a
// seccomp filter that refuses (EPERM) what a parser never needs and an
// attacker would: opening or changing files, executing programs, sockets,
// other processes' memory, namespaces, mounts, kernel interfaces with a
// history of exploits. A deny list rather than an allow list: the Go
// runtime's own needs vary by version, and a worker the filter killed would
// look like a broken document. It is written with golang.org/x/sys/unix
// alone; github.com/elastic/go-seccomp-bpf would build the same program
// with one more dependency.
func restrictSyscalls() error {
	prog := seccompProgram()
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		if errors.Is(e, unix.ENOSYS) || errors.Is(e, unix.EINVAL) {
			// A kernel without seccomp filters: the other confinement stands.
			fmt.Fprintf(os.Stderr, "worker: seccomp filter not installed: %v\n", e)
			return nil
		}
		return fmt.Errorf("installing the seccomp filter: %w", e)
	}
	return nil
}

// cloneNamespaces are the clone flags that make new namespaces; the Go
// runtime's clone of a thread sets none.
const cloneNamespaces = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWPID |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// seccompProgram is the filter for this architecture:
// a foreign system call ABI kills the process, a denied call fails with
// EPERM (clone3, whose flags it cannot inspect, with ENOSYS, so that callers
// fall back to clone), a clone that makes namespaces fails, anything else
// passes.
func seccompProgram() []unix.SockFilter {
	arch, denied, maxNr := seccompArch()
	stmt := func(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
	jump := func(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
	}
	const (
		ldAbs   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq     = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jgt     = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
		jset    = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret     = unix.BPF_RET | unix.BPF_K
		offNr   = 0
		offArch = 4
		offArg0 = 16 // low 32 bits on a little-endian machine
	)
	eperm := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
	var p []unix.SockFilter
	p = append(p,
		stmt(ldAbs, offArch),
		jump(jeq, arch, 1, 0),
		stmt(ret, unix.SECCOMP_RET_KILL_PROCESS),
		stmt(ldAbs, offNr),
		// Numbers past the native table (x32 calls on amd64) are another ABI.
		jump(jgt, maxNr, 0, 1),
		stmt(ret, unix.SECCOMP_RET_KILL_PROCESS),
		jump(jeq, unix.SYS_CLONE3, 0, 1),
		stmt(ret, uint32(unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS))),
		jump(jeq, unix.SYS_CLONE, 0, 3),
		stmt(ldAbs, offArg0),
		jump(jset, cloneNamespaces, 0, 1),
		stmt(ret, eperm),
	)
	// After the clone check the accumulator may hold clone's flags; reload.
	p = append(p, stmt(ldAbs, offNr))
	for _, nr := range denied {
		p = append(p, jump(jeq, uint32(nr), 0, 1), stmt(ret, eperm))
	}
	return append(p, stmt(ret, unix.SECCOMP_RET_ALLOW))
}

// deniedCommon are the denied system calls every supported architecture has.
var deniedCommon = []uintptr{
	unix.SYS_EXECVE, unix.SYS_EXECVEAT,
	unix.SYS_OPENAT, unix.SYS_OPENAT2, unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT,
	unix.SYS_MKNODAT, unix.SYS_MKDIRAT, unix.SYS_UNLINKAT, unix.SYS_RENAMEAT, unix.SYS_RENAMEAT2,
	unix.SYS_LINKAT, unix.SYS_SYMLINKAT, unix.SYS_FCHMODAT, unix.SYS_FCHOWNAT, unix.SYS_TRUNCATE,
	unix.SYS_SOCKET, unix.SYS_SOCKETPAIR, unix.SYS_CONNECT, unix.SYS_BIND, unix.SYS_LISTEN,
	unix.SYS_ACCEPT, unix.SYS_ACCEPT4,
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PIDFD_GETFD,
	unix.SYS_UNSHARE, unix.SYS_SETNS, unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_FSCONFIG, unix.SYS_MOUNT_SETATTR,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD, unix.SYS_FANOTIFY_INIT,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE, unix.SYS_KEXEC_LOAD,
	unix.SYS_SETUID, unix.SYS_SETGID, unix.SYS_SETREUID, unix.SYS_SETREGID, unix.SYS_SETRESUID,
	unix.SYS_SETRESGID, unix.SYS_SETGROUPS, unix.SYS_SETFSUID, unix.SYS_SETFSGID,
}
