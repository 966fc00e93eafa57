package fs

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"s3docs/internal/object"
)

// errno is the one place where errors become errno values. It logs what the
// caller of read(2) cannot see: which key failed and why.
// attrs are extra log attributes (offset, length, duration of a read).
func (f *FS) errno(err error, op, key string, attrs ...any) syscall.Errno {
	// Failures that their source has logged once already (a broken PDF)
	// are only repeated at debug level.
	var logged *object.LoggedError
	if errors.As(err, &logged) {
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
		f.logError("object changed while open; reopen to read the new version", op, key, err, attrs)
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
	f.logError("operation failed", op, key, err, attrs)
	return syscall.EIO
}

// errorLogEvery is how often the same failure (op, key, message) is logged:
// a client that retries a failing read in a loop must not flood the log.
const errorLogEvery = 10 * time.Second

type errorLogState struct {
	last       time.Time
	suppressed int
}

// errorLimiter remembers recent failures for rate limiting.
type errorLimiter struct {
	mu   sync.Mutex
	seen map[string]*errorLogState
}

// maxLimitedErrors bounds the limiter's memory; past it, it starts afresh.
const maxLimitedErrors = 10000

func (f *FS) logError(msg, op, key string, err error, attrs []any) {
	id := op + "\x00" + key + "\x00" + err.Error()
	now := time.Now()
	l := &f.errLimit
	l.mu.Lock()
	if l.seen == nil || len(l.seen) > maxLimitedErrors {
		l.seen = map[string]*errorLogState{}
	}
	st := l.seen[id]
	if st == nil {
		st = &errorLogState{}
		l.seen[id] = st
	}
	if !st.last.IsZero() && now.Sub(st.last) < errorLogEvery {
		st.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := st.suppressed
	st.last, st.suppressed = now, 0
	l.mu.Unlock()
	args := append([]any{"op", op, "key", key, "err", err}, attrs...)
	if suppressed > 0 {
		args = append(args, "repeats_suppressed", suppressed)
	}
	f.log.Error(msg, args...)
}
