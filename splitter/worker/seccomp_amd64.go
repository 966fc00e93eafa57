package worker

import "golang.org/x/sys/unix"

func seccompArch() (arch uint32, denied []uintptr, maxNr uint32) {
	return unix.AUDIT_ARCH_X86_64, append([]uintptr{
		unix.SYS_OPEN, unix.SYS_CREAT, unix.SYS_MKNOD, unix.SYS_MKDIR, unix.SYS_RMDIR, unix.SYS_UNLINK,
		unix.SYS_RENAME, unix.SYS_LINK, unix.SYS_SYMLINK, unix.SYS_CHMOD, unix.SYS_CHOWN, unix.SYS_LCHOWN,
		unix.SYS_USELIB, unix.SYS_FORK, unix.SYS_VFORK, unix.SYS_KEXEC_FILE_LOAD,
	}, deniedCommon...), 0x3fffffff
}
