package chunkcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Status is what a cache directory holds, read from the directory alone so
// that an operator can look at it whether or not a daemon is running. Only
// the running daemon knows its bound, so Status does not claim one.
type Status struct {
	// Entries counts chunk and blob files with well-formed names. Their
	// names are hashes, so chunks and blobs cannot be told apart here.
	Entries int
	Bytes   int64
	// Invalid counts files in chunks/ that the next start will delete (a
	// malformed name, or a size other than the name says).
	Invalid      int
	InvalidBytes int64
	// TempFiles are fetches in flight (while in use) or leftovers of an
	// interrupted one (removed at the next start).
	TempFiles int
	TempBytes int64
	// InUse: a daemon holds the directory's lock.
	InUse bool
}

// ErrInUse is returned by Clear while a daemon holds the cache directory.
var ErrInUse = errors.New("in use by a running s3docs daemon")

// ErrNotCacheDir is returned for a directory that has neither the lock file
// nor chunks/ of a cache: an operator's typo must not empty someone's files.
var ErrNotCacheDir = errors.New("not an s3docs cache directory (no lock file, no chunks/)")

// ReadStatus counts the files of the cache directory dir. It takes no lock
// that could stop a daemon from starting, beyond a non-blocking probe.
func ReadStatus(dir string) (Status, error) {
	if err := checkCacheDir(dir); err != nil {
		return Status{}, err
	}
	var st Status
	inUse, err := lockedByOther(dir)
	if err != nil {
		return Status{}, err
	}
	st.InUse = inUse
	if err := st.scan(dir); err != nil {
		return Status{}, err
	}
	return st, nil
}

// Clear removes every file in chunks/ and tmp/ of dir, keeping the
// directories, and returns what was there. It refuses with ErrInUse while a
// daemon holds the lock, and holds the lock itself meanwhile, so that no
// daemon can start on a half-emptied directory.
func Clear(dir string) (Status, error) {
	if err := checkCacheDir(dir); err != nil {
		return Status{}, err
	}
	lock, err := os.OpenFile(LockPath(dir), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return Status{}, fmt.Errorf("chunkcache: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return Status{}, fmt.Errorf("cache directory %s is %w", dir, ErrInUse)
		}
		return Status{}, fmt.Errorf("chunkcache: lock %s: %w", LockPath(dir), err)
	}
	var st Status
	if err := st.scan(dir); err != nil {
		return Status{}, err
	}
	for _, sub := range []string{chunksDir(dir), tmpDir(dir)} {
		if err := emptyDir(sub); err != nil {
			return st, fmt.Errorf("chunkcache: %w", err)
		}
	}
	return st, nil
}

func checkCacheDir(dir string) error {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return missingDirError(dir)
	}
	if err != nil {
		return fmt.Errorf("cache directory: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("cache directory %s is not a directory", dir)
	}
	_, lockErr := os.Lstat(LockPath(dir))
	_, chunksErr := os.Lstat(chunksDir(dir))
	if lockErr != nil && chunksErr != nil {
		return fmt.Errorf("%s is %w", dir, ErrNotCacheDir)
	}
	return nil
}

// missingDirError reads as one plain sentence yet still matches
// fs.ErrNotExist, for callers that tell bad input from failures.
type missingDirError string

func (e missingDirError) Error() string { return "cache directory " + string(e) + " does not exist" }
func (e missingDirError) Unwrap() error { return fs.ErrNotExist }

// lockedByOther probes the daemon's lock without creating the file (status
// is read-only) and without blocking. The shared lock is dropped at once: it
// would make a daemon starting at this very moment refuse the directory.
func lockedByOther(dir string) (bool, error) {
	f, err := os.Open(LockPath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // a daemon creates it before anything else
	}
	if err != nil {
		return false, fmt.Errorf("chunkcache: %w", err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("chunkcache: lock %s: %w", LockPath(dir), err)
	}
	return false, nil
}

// scan judges chunk files as Open's rebuild does: by name and size only.
func (st *Status) scan(dir string) error {
	des, err := readDirIfExists(chunksDir(dir))
	if err != nil {
		return err
	}
	for _, de := range des {
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // evicted by a running daemon since the listing
		}
		if err != nil {
			return fmt.Errorf("chunkcache: %w", err)
		}
		_, size, _, ok := parseName(de.Name())
		if !ok || !info.Mode().IsRegular() || info.Size() != size {
			st.Invalid++
			st.InvalidBytes += info.Size()
			continue
		}
		st.Entries++
		st.Bytes += size
	}
	tmps, err := readDirIfExists(tmpDir(dir))
	if err != nil {
		return err
	}
	for _, de := range tmps {
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // a fetch finished and renamed it
		}
		if err != nil {
			return fmt.Errorf("chunkcache: %w", err)
		}
		st.TempFiles++
		st.TempBytes += info.Size()
	}
	return nil
}

// readDirIfExists treats a missing subdirectory as empty: a daemon makes
// them at start, so a cache dir that never saw one may lack them.
func readDirIfExists(dir string) ([]os.DirEntry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("chunkcache: %w", err)
	}
	return des, nil
}

func emptyDir(dir string) error {
	des, err := readDirIfExists(dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		if err := os.RemoveAll(filepath.Join(dir, de.Name())); err != nil {
			return err
		}
	}
	return nil
}
