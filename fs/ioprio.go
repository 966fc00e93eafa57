package fs

import (
	"context"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Linux's I/O priority classes (linux/ioprio.h); x/sys/unix has the
// system calls, not these.
const (
	ioprioWhoProcess = 1
	ioprioClassShift = 13
	ioprioClassIdle  = 3
)

// backgroundCaller says whether the process (the thread) that made a FUSE
// request runs in the idle I/O scheduling class (`ionice -c 3`, and `s3docs
// warm`, which puts its reading threads there): its reads are background
// work, served after everyone else's when the store throttles. A caller
// that cannot be asked (gone, another PID namespace) is foreground.
func backgroundCaller(ctx context.Context) bool {
	caller, ok := fuse.FromContext(ctx)
	if !ok || caller.Pid == 0 {
		return false
	}
	prio, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(caller.Pid), 0)
	return errno == 0 && prio>>ioprioClassShift == ioprioClassIdle
}
