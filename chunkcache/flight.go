package chunkcache

import (
	"context"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// flight is one download, shared by every caller that wants its entry
// while it runs. Besides its outcome it publishes its progress, the bytes
// of the entry already in its temp file, so that a reader waiting for the
// start of a chunk (a first byte, a random read) is answered when those
// bytes arrive rather than when the whole chunk has. (singleflight has no
// way to share partial results, hence this type of our own.)
type flight struct {
	done chan struct{} // closed when the download has ended
	err  error         // its outcome, set before done is closed
	// background: only readahead or background readers wait for it. A
	// foreground reader that joins it makes it foreground, for the GET
	// slots and the pacer that serve foreground requests first.
	background atomic.Bool

	mu       sync.Mutex
	file     *os.File      // the current attempt's object file, nil when none
	base     int64         // where the entry starts in file
	written  int64         // bytes of the entry written at base
	advanced chan struct{} // closed and replaced whenever file or written changes
}

func newFlight() *flight {
	return &flight{done: make(chan struct{}), advanced: make(chan struct{})}
}

// Background is the flight's priority (pacer.Priority): asked by the GET
// slots and the pacer whenever its download waits for its turn.
func (f *flight) Background() bool { return f.background.Load() }

// end publishes the download's outcome.
func (f *flight) end(err error) {
	f.err = err
	close(f.done)
}

// wait waits for the download to end and returns its outcome.
func (f *flight) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *flight) notifyLocked() {
	close(f.advanced)
	f.advanced = make(chan struct{})
}

// setFile starts an attempt on file, writing the entry at base (or ends
// one, with nil).
func (f *flight) setFile(file *os.File, base int64) {
	f.mu.Lock()
	f.file, f.base, f.written = file, base, 0
	f.notifyLocked()
	f.mu.Unlock()
}

func (f *flight) advance(n int64) {
	f.mu.Lock()
	f.written += n
	f.notifyLocked()
	f.mu.Unlock()
}

// readAt fills p with the entry's bytes at within as soon as the download
// has written them. ok is false when the download ended first: the caller
// then looks on the disk, or at the flight's error. A read that needs the
// entry's last byte (size) waits for the end, so that whoever has read a
// whole chunk finds it cached.
func (f *flight) readAt(ctx context.Context, p []byte, within, size int64) (ok bool, err error) {
	need := within + int64(len(p))
	for {
		f.mu.Lock()
		if f.file != nil && f.written >= need && need < size {
			// Under the lock: the attempt's file cannot be closed meanwhile.
			n, err := f.file.ReadAt(p, f.base+within)
			f.mu.Unlock()
			return err == nil && n == len(p), nil
		}
		advanced := f.advanced
		f.mu.Unlock()
		select {
		case <-advanced:
		case <-f.done:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// progressWriter is where an attempt writes, publishing what it wrote.
type progressWriter struct {
	f    *flight
	file io.Writer
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.file.Write(b)
	if n > 0 {
		w.f.advance(int64(n))
	}
	return n, err
}
