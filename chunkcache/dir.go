package chunkcache

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// cacheDir is a cache directory held open: the directory itself, locked
// (flock LOCK_EX) for as long as the daemon runs, and its objects/, blobs/
// and tmp/. Every file operation goes through these descriptors, never
// through the path: if someone deletes or replaces the directory under a
// running daemon, the daemon never touches whatever is at the path now
// (another daemon's cache, say). Operations then fail (a deleted directory
// takes no new file), which is how the cache notices (see recoverDir).
type cacheDir struct {
	path string

	// mu guards the descriptors against close: a request the kernel still
	// sends after the cache was closed must not use a number that now
	// names another file.
	mu                  sync.RWMutex
	closed              bool
	root                *os.File // locked
	objects, blobs, tmp *os.File
	// ownsRoot: close closes root too. A cacheDir that only replaced a
	// deleted subdirectory takes the root over from the one before.
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
// anything in it), and opens (making them if needed) its objects/, blobs/
// and tmp/. It returns what the directory held.
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
	if err := d.openSubs(); err != nil {
		d.close()
		return nil, layout{}, fmt.Errorf("chunkcache: %w", err)
	}
	return d, l, nil
}

// openSubs opens (making them if needed) objects/, blobs/ and tmp/.
func (d *cacheDir) openSubs() error {
	var err error
	if d.objects, err = d.openSub(objectsDirName); err != nil {
		return err
	}
	if d.blobs, err = d.openSub(blobsDirName); err != nil {
		return err
	}
	d.tmp, err = d.openSub(tmpDirName)
	return err
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

// renew makes the cacheDir that replaces d after one of its subdirectories
// was deleted: the same root (still locked), new subdirectories. d keeps
// its descriptors for whoever still uses them, but no longer owns the root.
func (d *cacheDir) renew() (*cacheDir, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, os.ErrClosed
	}
	n := &cacheDir{path: d.path, root: d.root, ownsRoot: d.ownsRoot}
	if err := n.openSubs(); err != nil {
		n.closeSubs()
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
	d.closeSubs()
	if d.ownsRoot {
		d.root.Close()
	}
}

func (d *cacheDir) closeSubs() {
	for _, f := range []*os.File{d.tmp, d.blobs, d.objects} {
		if f != nil {
			f.Close()
		}
	}
}

// dirFds are the descriptors of a cacheDir, for one operation.
type dirFds struct{ root, objects, blobs, tmp int }

// fds runs fn with the descriptors of the root and its subdirectories,
// unless d is closed.
func (d *cacheDir) fds(fn func(dirFds) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return os.ErrClosed
	}
	return fn(dirFds{int(d.root.Fd()), int(d.objects.Fd()), int(d.blobs.Fd()), int(d.tmp.Fd())})
}

func (d *cacheDir) objectPath(name string) string { return filepath.Join(d.path, objectsDirName, name) }
func (d *cacheDir) blobPath(name string) string   { return filepath.Join(d.path, blobsDirName, name) }
func (d *cacheDir) tmpPath(name string) string    { return filepath.Join(d.path, tmpDirName, name) }

// openAt opens name in the directory sub picks, with flags (and mode, when
// it creates).
func (d *cacheDir) openAt(sub func(dirFds) int, path func(string) string, name string, flags int) (*os.File, error) {
	var f *os.File
	err := d.fds(func(fds dirFds) error {
		fd, err := unix.Openat(sub(fds), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), path(name))
		return nil
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path(name), Err: err}
	}
	return f, nil
}

func objectsFd(fds dirFds) int { return fds.objects }
func blobsFd(fds dirFds) int   { return fds.blobs }
func tmpFd(fds dirFds) int     { return fds.tmp }

// Objects' files.

// createObject makes the file of object id (sparse, size bytes) and its
// map, holding header and no entry, replacing any that were there.
func (d *cacheDir) createObject(id string, size int64, header []byte) error {
	m, err := d.openAt(objectsFd, d.objectPath, id+mapSuffix, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC)
	if err != nil {
		return err
	}
	_, err = m.Write(header)
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	f, err := d.openAt(objectsFd, d.objectPath, id, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return nil
}

// openObject opens the file of object id for reading (write: and writing).
func (d *cacheDir) openObject(id string, write bool) (*os.File, error) {
	flags := unix.O_RDONLY
	if write {
		flags = unix.O_RDWR
	}
	return d.openAt(objectsFd, d.objectPath, id, flags)
}

// appendMap appends records to the map of object id.
func (d *cacheDir) appendMap(id string, records []byte) error {
	m, err := d.openAt(objectsFd, d.objectPath, id+mapSuffix, unix.O_WRONLY|unix.O_APPEND)
	if err != nil {
		return err
	}
	_, err = m.Write(records)
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}

// readMap reads the map of object id.
func (d *cacheDir) readMap(id string) ([]byte, error) {
	m, err := d.openAt(objectsFd, d.objectPath, id+mapSuffix, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return io.ReadAll(m)
}

// rewriteMap replaces the map of object id with b, at once: written to
// tmp/ and renamed over it.
func (d *cacheDir) rewriteMap(id string, b []byte) error {
	tmp, err := d.createTemp(id)
	if err != nil {
		return err
	}
	name := filepath.Base(tmp.Name())
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.fds(func(fds dirFds) error { return unix.Renameat(fds.tmp, name, fds.objects, id+mapSuffix) })
	}
	if err != nil {
		d.removeTemp(name)
		return &os.PathError{Op: "rewrite", Path: d.objectPath(id + mapSuffix), Err: err}
	}
	return nil
}

// removeObject deletes the file of object id and its map. A reader (or
// the kernel, for a file handed to it) holding the file open keeps
// reading it.
func (d *cacheDir) removeObject(id string) {
	d.fds(func(fds dirFds) error {
		unix.Unlinkat(fds.objects, id, 0)
		unix.Unlinkat(fds.objects, id+mapSuffix, 0)
		return nil
	})
}

// removeObjectFile deletes name in objects/ (an orphan).
func (d *cacheDir) removeObjectFile(name string) {
	d.fds(func(fds dirFds) error { return unix.Unlinkat(fds.objects, name, 0) })
}

// punch frees bytes [off, off+n) of an object's file f, of size bytes: they
// read as zeros from now on, and take no room. A range that ends the file
// takes the rest of its last block along (past the end of the file, nothing
// to keep), or that block would stay.
func punch(f *os.File, off, n, size int64) error {
	if off+n == size {
		n = (size+blockSize-1)/blockSize*blockSize - off
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err != nil {
		return &os.PathError{Op: "punch", Path: f.Name(), Err: err}
	}
	return nil
}

// blockSize is the unit a file system allocates (ext4, xfs: 4 KiB).
const blockSize = 4096

// touchObject sets the times of object id's file: its mtime is the recency
// a restart sorts by.
func (d *cacheDir) touchObject(id string, t time.Time) {
	ts := unix.NsecToTimespec(t.UnixNano())
	d.fds(func(fds dirFds) error {
		return unix.UtimesNanoAt(fds.objects, id, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// Blobs.

// openBlob opens blob file name for reading.
func (d *cacheDir) openBlob(name string) (*os.File, error) {
	return d.openAt(blobsFd, d.blobPath, name, unix.O_RDONLY)
}

// removeBlob deletes blob file name.
func (d *cacheDir) removeBlob(name string) error {
	err := d.fds(func(fds dirFds) error { return unix.Unlinkat(fds.blobs, name, 0) })
	if err != nil {
		return &os.PathError{Op: "remove", Path: d.blobPath(name), Err: err}
	}
	return nil
}

// touchBlob sets blob file name's times (see touchObject).
func (d *cacheDir) touchBlob(name string, t time.Time) {
	ts := unix.NsecToTimespec(t.UnixNano())
	d.fds(func(fds dirFds) error {
		return unix.UtimesNanoAt(fds.blobs, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// commitBlob moves temporary file tmp into blobs/ as name.
func (d *cacheDir) commitBlob(tmp, name string) error {
	err := d.fds(func(fds dirFds) error { return unix.Renameat(fds.tmp, tmp, fds.blobs, name) })
	if err != nil {
		return &os.LinkError{Op: "rename", Old: d.tmpPath(tmp), New: d.blobPath(name), Err: err}
	}
	return nil
}

// Temporary files.

// createTemp makes a new private file in tmp/, named tmpName(prefix, …).
func (d *cacheDir) createTemp(prefix string) (*os.File, error) {
	for {
		f, err := d.openAt(tmpFd, d.tmpPath, tmpName(prefix, rand.Uint32()), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		return f, err
	}
}

// openTemp opens temporary file name for reading.
func (d *cacheDir) openTemp(name string) (*os.File, error) {
	return d.openAt(tmpFd, d.tmpPath, name, unix.O_RDONLY)
}

// removeTemp deletes temporary file name.
func (d *cacheDir) removeTemp(name string) {
	d.fds(func(fds dirFds) error { return unix.Unlinkat(fds.tmp, name, 0) })
}

// removeLegacy deletes the files of the per-chunk layout, names in chunks/
// (all named as s3docs named them: scanLayout refused anything else), and
// then chunks/ itself if it is empty. It works through a descriptor of
// chunks/ opened without following links.
func (d *cacheDir) removeLegacy(names []string) (removed int) {
	d.fds(func(fds dirFds) error {
		fd, err := unix.Openat(fds.root, legacyChunksDirName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for _, name := range names {
			if unix.Unlinkat(fd, name, 0) == nil {
				removed++
			}
		}
		return unix.Unlinkat(fds.root, legacyChunksDirName, unix.AT_REMOVEDIR)
	})
	return removed
}

// gone says whether the directory, or one of its subdirectories, was
// deleted. A closed one is not gone: there is nothing to recover.
func (d *cacheDir) gone() bool {
	gone := false
	d.fds(func(fds dirFds) error {
		gone = unlinked(fds.root) || unlinked(fds.objects) || unlinked(fds.blobs) || unlinked(fds.tmp)
		return nil
	})
	return gone
}

// rootGone says whether the directory itself was deleted.
func (d *cacheDir) rootGone() bool {
	gone := false
	d.fds(func(fds dirFds) error {
		gone = unlinked(fds.root)
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
	if err := d.fds(func(fds dirFds) error { return unix.Fstat(fds.root, &held) }); err != nil {
		return false
	}
	return held.Dev != now.Dev || held.Ino != now.Ino
}

// available is how many bytes its file system has free for the cache.
func (d *cacheDir) available() (int64, error) {
	var st unix.Statfs_t
	err := d.fds(func(fds dirFds) error { return unix.Fstatfs(fds.root, &st) })
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
