package chunkcache

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// cacheDir is a cache directory held open: the directory itself, locked
// (flock LOCK_EX) for as long as the daemon runs, and its chunks/ and tmp/.
// Every file operation goes through these descriptors, never through the
// path: if someone deletes or replaces the directory under a running
// daemon, the daemon never touches whatever is at the path now (another
// daemon's cache, say). Operations then fail (a deleted directory takes no
// new file), which is how the cache notices (see recoverDir).
type cacheDir struct {
	path string

	// mu guards the descriptors against close: a request the kernel still
	// sends after the cache was closed must not use a number that now
	// names another file.
	mu          sync.RWMutex
	closed      bool
	root        *os.File // locked
	chunks, tmp *os.File
	// ownsRoot: close closes root too. A cacheDir that only replaced a
	// deleted chunks/ or tmp/ takes the root over from the one before.
	ownsRoot bool
}

// takeDir makes dir private (or checks that it is), locks it, and checks
// that it holds nothing but s3docs's own files: a directory that holds
// anything else is refused, never cleaned.
func takeDir(dir string, log *slog.Logger) (*cacheDir, layout, error) {
	if err := ensurePrivateDir(dir, log); err != nil {
		return nil, layout{}, err
	}
	return lockDir(dir)
}

// lockDir opens dir (which exists and has passed ensurePrivateDir), locks
// it, checks that it holds nothing but s3docs's own files (before making
// anything in it), and opens (making them if needed) its chunks/ and tmp/.
// It returns what the directory held.
func lockDir(dir string) (*cacheDir, layout, error) {
	root, err := lockExclusive(dir)
	if errors.Is(err, ErrInUse) {
		err = fmt.Errorf("chunkcache: %w", err)
	}
	if err != nil {
		return nil, layout{}, err
	}
	l, err := scanLayout(dir)
	if err == nil {
		err = l.foreignErr(dir)
	}
	if err != nil {
		root.Close()
		return nil, layout{}, fmt.Errorf("chunkcache: %w", err)
	}
	d := &cacheDir{path: dir, root: root, ownsRoot: true}
	if d.chunks, err = d.openSub(chunksDirName); err == nil {
		d.tmp, err = d.openSub(tmpDirName)
	}
	if err != nil {
		d.close()
		return nil, layout{}, fmt.Errorf("chunkcache: %w", err)
	}
	return d, l, nil
}

// openSub opens the subdirectory name of the root, making it if missing.
// Called before d is shared, or with d.mu held.
func (d *cacheDir) openSub(name string) (*os.File, error) {
	rootFd := int(d.root.Fd())
	err := unix.Mkdirat(rootFd, name, 0o700)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, &os.PathError{Op: "mkdir", Path: filepath.Join(d.path, name), Err: err}
	}
	fd, err := unix.Openat(rootFd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(d.path, name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.path, name)), nil
}

// renew makes the cacheDir that replaces d after its chunks/ or tmp/ was
// deleted: the same root (still locked), new subdirectories. d keeps its
// descriptors for whoever still uses them, but no longer owns the root.
func (d *cacheDir) renew() (*cacheDir, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, os.ErrClosed
	}
	n := &cacheDir{path: d.path, root: d.root, ownsRoot: d.ownsRoot}
	var err error
	if n.chunks, err = n.openSub(chunksDirName); err != nil {
		return nil, err
	}
	if n.tmp, err = n.openSub(tmpDirName); err != nil {
		n.chunks.Close()
		return nil, err
	}
	d.ownsRoot = false
	return n, nil
}

// close releases the descriptors (and with the root, the lock).
func (d *cacheDir) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	for _, f := range []*os.File{d.tmp, d.chunks} {
		if f != nil {
			f.Close()
		}
	}
	if d.ownsRoot {
		d.root.Close()
	}
}

// fds runs fn with the descriptors of the root, chunks/ and tmp/, unless d
// is closed.
func (d *cacheDir) fds(fn func(root, chunks, tmp int) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return os.ErrClosed
	}
	return fn(int(d.root.Fd()), int(d.chunks.Fd()), int(d.tmp.Fd()))
}

// entryPath is where entry name is, for messages and for processes that
// open it by name.
func (d *cacheDir) entryPath(name string) string { return filepath.Join(d.path, chunksDirName, name) }

// tmpPath is where temporary file name is.
func (d *cacheDir) tmpPath(name string) string { return filepath.Join(d.path, tmpDirName, name) }

// open opens entry name for reading.
func (d *cacheDir) open(name string) (*os.File, error) {
	var f *os.File
	err := d.fds(func(_, chunks, _ int) error {
		fd, err := unix.Openat(chunks, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), d.entryPath(name))
		return nil
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.entryPath(name), Err: err}
	}
	return f, nil
}

// remove deletes entry name.
func (d *cacheDir) remove(name string) error {
	err := d.fds(func(_, chunks, _ int) error { return unix.Unlinkat(chunks, name, 0) })
	if err != nil {
		return &os.PathError{Op: "remove", Path: d.entryPath(name), Err: err}
	}
	return nil
}

// touch sets entry name's times: its mtime is the recency a restart sorts by.
func (d *cacheDir) touch(name string, t time.Time) {
	ts := unix.NsecToTimespec(t.UnixNano())
	d.fds(func(_, chunks, _ int) error {
		return unix.UtimesNanoAt(chunks, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// createTemp makes a new private file in tmp/, named tmpName(prefix, …).
func (d *cacheDir) createTemp(prefix string) (*os.File, error) {
	for {
		name := tmpName(prefix, rand.Uint32())
		var f *os.File
		err := d.fds(func(_, _, tmp int) error {
			fd, err := unix.Openat(tmp, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			if err != nil {
				return err
			}
			f = os.NewFile(uintptr(fd), d.tmpPath(name))
			return nil
		})
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "create", Path: d.tmpPath(name), Err: err}
		}
		return f, nil
	}
}

// openTemp opens temporary file name for reading.
func (d *cacheDir) openTemp(name string) (*os.File, error) {
	var f *os.File
	err := d.fds(func(_, _, tmp int) error {
		fd, err := unix.Openat(tmp, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), d.tmpPath(name))
		return nil
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.tmpPath(name), Err: err}
	}
	return f, nil
}

// removeTemp deletes temporary file name.
func (d *cacheDir) removeTemp(name string) {
	d.fds(func(_, _, tmp int) error { return unix.Unlinkat(tmp, name, 0) })
}

// commit moves temporary file tmp into chunks/ as entry name.
func (d *cacheDir) commit(tmp, name string) error {
	err := d.fds(func(_, chunksFd, tmpFd int) error { return unix.Renameat(tmpFd, tmp, chunksFd, name) })
	if err != nil {
		return &os.LinkError{Op: "rename", Old: d.tmpPath(tmp), New: d.entryPath(name), Err: err}
	}
	return nil
}

// gone says whether the directory, or its chunks/ or tmp/, was deleted. A
// closed one is not gone: there is nothing to recover.
func (d *cacheDir) gone() bool {
	gone := false
	d.fds(func(root, chunks, tmp int) error {
		gone = unlinked(root) || unlinked(chunks) || unlinked(tmp)
		return nil
	})
	return gone
}

// rootGone says whether the directory itself was deleted.
func (d *cacheDir) rootGone() bool {
	gone := false
	d.fds(func(root, _, _ int) error {
		gone = unlinked(root)
		return nil
	})
	return gone
}

// unlinked: a deleted directory has no links left.
func unlinked(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) != nil || st.Nlink == 0
}

// replaced says whether the path names another directory than the one
// held (or none).
func (d *cacheDir) replaced() bool {
	var held, now unix.Stat_t
	if err := unix.Stat(d.path, &now); err != nil {
		return true
	}
	if err := d.fds(func(root, _, _ int) error { return unix.Fstat(root, &held) }); err != nil {
		return false
	}
	return held.Dev != now.Dev || held.Ino != now.Ino
}

// available is how many bytes its file system has free for the cache.
func (d *cacheDir) available() (int64, error) {
	var st unix.Statfs_t
	err := d.fds(func(root, _, _ int) error { return unix.Fstatfs(root, &st) })
	return int64(st.Bavail) * int64(st.Bsize), err
}

// isTempOf says whether path is a temporary file of d, and its name.
func (d *cacheDir) isTempOf(path string) (string, bool) {
	name := filepath.Base(path)
	if filepath.Dir(path) != tmpDir(d.path) || !isTmpName(name) {
		return "", false
	}
	return name, true
}
