package chunkcache

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
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
	path        string
	root        *os.File // locked
	chunks, tmp *os.File
}

// ErrInUse: another s3docs process holds the cache directory.
var ErrInUse = errors.New("in use by another s3docs process")

// lockDir opens dir (which exists and has passed ensurePrivateDir), locks
// it, checks that it holds nothing but s3docs's own files (before making
// anything in it), and opens (making them if needed) its chunks/ and tmp/.
// It returns what the directory held.
func lockDir(dir string) (*cacheDir, layout, error) {
	root, err := os.Open(dir)
	if err != nil {
		return nil, layout{}, fmt.Errorf("chunkcache: %w", err)
	}
	if err := flockNB(root, syscall.LOCK_EX); err != nil {
		root.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, layout{}, fmt.Errorf("chunkcache: cache directory %s is %w", dir, ErrInUse)
		}
		return nil, layout{}, fmt.Errorf("chunkcache: lock %s: %w", dir, err)
	}
	// A daemon of an earlier version locks a file in the directory.
	if legacyLockHeld(dir) {
		root.Close()
		return nil, layout{}, fmt.Errorf("chunkcache: cache directory %s is %w", dir, ErrInUse)
	}
	l, err := scanLayout(dir)
	if err == nil {
		err = l.foreignErr(dir)
	}
	if err != nil {
		root.Close()
		return nil, layout{}, fmt.Errorf("chunkcache: %w", err)
	}
	d := &cacheDir{path: dir, root: root}
	if d.chunks, err = d.openSub(chunksDirName); err == nil {
		d.tmp, err = d.openSub(tmpDirName)
	}
	if err != nil {
		d.close()
		return nil, layout{}, fmt.Errorf("chunkcache: %w", err)
	}
	return d, l, nil
}

// flockNB takes a lock of kind how on f without waiting.
func flockNB(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// legacyLockHeld probes the lock file of earlier versions, if there is one.
func legacyLockHeld(dir string) bool {
	f, err := os.Open(filepath.Join(dir, legacyLockName))
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(flockNB(f, syscall.LOCK_SH), syscall.EWOULDBLOCK)
}

// openSub opens the subdirectory name of the root, making it if missing.
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

func (d *cacheDir) close() {
	for _, f := range []*os.File{d.tmp, d.chunks, d.root} {
		if f != nil {
			f.Close()
		}
	}
}

// entryPath is where entry name is, for messages and for processes that
// open it by name.
func (d *cacheDir) entryPath(name string) string { return filepath.Join(d.path, chunksDirName, name) }

// tmpPath is where temporary file name is.
func (d *cacheDir) tmpPath(name string) string { return filepath.Join(d.path, tmpDirName, name) }

// open opens entry name for reading.
func (d *cacheDir) open(name string) (*os.File, error) {
	fd, err := unix.Openat(int(d.chunks.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.entryPath(name), Err: err}
	}
	return os.NewFile(uintptr(fd), d.entryPath(name)), nil
}

// remove deletes entry name.
func (d *cacheDir) remove(name string) error {
	if err := unix.Unlinkat(int(d.chunks.Fd()), name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: d.entryPath(name), Err: err}
	}
	return nil
}

// touch sets entry name's times: its mtime is the recency a restart sorts by.
func (d *cacheDir) touch(name string, t time.Time) {
	ts := unix.NsecToTimespec(t.UnixNano())
	unix.UtimesNanoAt(int(d.chunks.Fd()), name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// createTemp makes a new private file in tmp/, named tmpName(prefix, …).
func (d *cacheDir) createTemp(prefix string) (*os.File, error) {
	for {
		name := tmpName(prefix, rand.Uint32())
		fd, err := unix.Openat(int(d.tmp.Fd()), name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "create", Path: d.tmpPath(name), Err: err}
		}
		return os.NewFile(uintptr(fd), d.tmpPath(name)), nil
	}
}

// openTemp opens temporary file name for reading.
func (d *cacheDir) openTemp(name string) (*os.File, error) {
	fd, err := unix.Openat(int(d.tmp.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.tmpPath(name), Err: err}
	}
	return os.NewFile(uintptr(fd), d.tmpPath(name)), nil
}

// removeTemp deletes temporary file name.
func (d *cacheDir) removeTemp(name string) {
	unix.Unlinkat(int(d.tmp.Fd()), name, 0)
}

// commit moves temporary file tmp into chunks/ as entry name.
func (d *cacheDir) commit(tmp, name string) error {
	if err := unix.Renameat(int(d.tmp.Fd()), tmp, int(d.chunks.Fd()), name); err != nil {
		return &os.LinkError{Op: "rename", Old: d.tmpPath(tmp), New: d.entryPath(name), Err: err}
	}
	return nil
}

// gone says whether the directory, or its chunks/ or tmp/, was deleted.
func (d *cacheDir) gone() bool {
	return unlinked(d.root) || unlinked(d.chunks) || unlinked(d.tmp)
}

// rootGone says whether the directory itself was deleted.
func (d *cacheDir) rootGone() bool { return unlinked(d.root) }

// unlinked: a deleted directory has no links left.
func unlinked(f *os.File) bool {
	var st unix.Stat_t
	return unix.Fstat(int(f.Fd()), &st) != nil || st.Nlink == 0
}

// replaced says whether the path names another directory than the one
// held (or none).
func (d *cacheDir) replaced() bool {
	info, err := os.Stat(d.path)
	if err != nil {
		return true
	}
	held, err := d.root.Stat()
	if err != nil {
		return true
	}
	return !os.SameFile(info, held)
}

// isTempOf says whether path is a temporary file of d, and its name.
func (d *cacheDir) isTempOf(path string) (string, bool) {
	name := filepath.Base(path)
	if filepath.Dir(path) != filepath.Join(d.path, tmpDirName) || !isTmpName(name) {
		return "", false
	}
	return name, true
}
