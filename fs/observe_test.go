package fs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

// recordingObserver keeps what it is told, by (op, errno).
type recordingObserver struct {
	mu    sync.Mutex
	count map[opErrno]int
	// slowest holds the longest duration seen per op.
	slowest map[string]time.Duration
}

type opErrno struct {
	op    string
	errno syscall.Errno
}

func (r *recordingObserver) Request(op string, d time.Duration, errno syscall.Errno) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count[opErrno{op, errno}]++
	r.slowest[op] = max(r.slowest[op], d)
}

func (r *recordingObserver) get(op string, errno syscall.Errno) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[opErrno{op, errno}]
}

// The observer sees each request with its FUSE operation and errno, as the
// reader gets it, and its duration from the daemon's side; OpenFiles counts
// open files, not directories, and goes back down on close.
func TestObserverSeesRequestsAndOpenFiles(t *testing.T) {
	store := &fakeStore{Objs: map[string]object.Version{
		"doc.pdf":   version("doc.pdf", `"v1"`, 2),
		"slow.pdf":  version("slow.pdf", `"s1"`, 4),
		"dir/a.pdf": version("dir/a.pdf", `"a1"`, 1),
	}}
	content := newContents(map[string][]byte{`etag:"v1"`: []byte("v1"), `etag:"s1"`: []byte("slow"), `etag:"a1"`: []byte("a")})
	obs := &recordingObserver{count: map[opErrno]int{}, slowest: map[string]time.Duration{}}
	const readDelay = 50 * time.Millisecond
	mp, _, tree := mountFakeFS(t, store, content, time.Hour, func(o *Options) {
		o.Observer = obs
		inner := o.OpenReader
		o.OpenReader = func(v object.Version) Reader {
			if v.Key == "slow.pdf" {
				return slowReader{Reader: inner(v), delay: readDelay}
			}
			return inner(v)
		}
	})

	if _, err := os.Stat(filepath.Join(mp, "missing.pdf")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing name: %v", err)
	}
	f, err := os.Open(filepath.Join(mp, "doc.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := os.Open(filepath.Join(mp, "dir"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Readdirnames(-1); err != nil {
		t.Fatal(err)
	}
	if n := tree.OpenFiles(); n != 1 {
		t.Fatalf("OpenFiles = %d with one file (and one directory) open, want 1", n)
	}
	d.Close()
	if b, err := os.ReadFile(filepath.Join(mp, "slow.pdf")); err != nil || string(b) != "slow" {
		t.Fatalf("read slow.pdf: %q, %v", b, err)
	}
	// The open file's version goes away: its read fails with EIO.
	content.set(`etag:"v1"`, nil)
	if _, err := f.ReadAt(make([]byte, 2), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a changed object: %v, want EIO", err)
	}
	f.Close()

	// Release reaches the daemon after close(2) returns.
	testenv.WaitFor(t, 10*time.Second, "OpenFiles to come back to 0 once every file was closed", func() bool { return tree.OpenFiles() == 0 })
	for _, want := range []struct {
		op    string
		errno syscall.Errno
	}{
		{"lookup", syscall.ENOENT},
		{"lookup", 0},
		{"open", 0},
		{"opendir", 0},
		{"readdir", 0},
		{"read", 0},
		{"read", syscall.EIO},
	} {
		if obs.get(want.op, want.errno) == 0 {
			t.Errorf("observer saw no %s answered with errno %d (%v)", want.op, want.errno, want.errno)
		}
	}
	obs.mu.Lock()
	slowest := obs.slowest["read"]
	obs.mu.Unlock()
	if slowest < readDelay {
		t.Errorf("slowest read took %v to the observer, want at least the reader's %v", slowest, readDelay)
	}
}

// slowReader is a Reader that takes delay for every read.
type slowReader struct {
	Reader
	delay time.Duration
}

func (s slowReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	time.Sleep(s.delay) // not waiting for an event: a read that takes this long

	return s.Reader.ReadAt(ctx, p, off)
}
