package fs

import (
	"context"
	"errors"
	"syscall"

	"s3docs/internal/object"
)

// errno is the one place where errors become errno values. It logs what the
// caller of read(2) cannot see: which key failed and why.
func (f *FS) errno(err error, op, key string) syscall.Errno {
	// Failures that their source has logged once already (a broken PDF)
	// are only repeated at debug level.
	var logged interface{ AlreadyLogged() bool }
	if errors.As(err, &logged) && logged.AlreadyLogged() {
		f.log.Debug("operation failed", "op", op, "key", key, "err", err)
		if errors.Is(err, object.ErrNotFound) {
			return syscall.ENOENT
		}
		return syscall.EIO
	}
	switch {
	case errors.Is(err, object.ErrChanged):
		// Before ErrNotFound: an object deleted under an open handle is a
		// change for that handle, not a missing file.
		f.log.Error("object changed while open; reopen to read the new version", "op", op, "key", key, "err", err)
		return syscall.EIO
	case errors.Is(err, object.ErrNotFound):
		f.log.Debug("not found", "op", op, "key", key, "err", err)
		return syscall.ENOENT
	case errors.Is(err, context.Canceled):
		// The kernel interrupted the request (the reader went away).
		return syscall.EINTR
	}
	// Anything else is EIO, also when an errno is wrapped inside: a
	// network error's ECONNREFUSED must not reach read(2) as if it were the
	// file's.
	f.log.Error("operation failed", "op", op, "key", key, "err", err)
	return syscall.EIO
}
