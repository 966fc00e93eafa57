package chunkcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Status is what a cache directory holds, read from the directory alone so
// that an operator can look at it whether or not a daemon is running. Only
// the running daemon knows its bound, so Status does not claim one.
type Status struct {
	// Entries counts chunk and blob files with well-formed names. Their
	// names are hashes, so chunks and blobs cannot be told apart here.
	Entries int
	Bytes   int64
	// Invalid counts entries that the next start will delete: named as
	// s3docs names them, but of another size than the name says.
	Invalid      int
	InvalidBytes int64
	// TempFiles are fetches in flight (while in use) or leftovers of an
	// interrupted one (removed at the next start).
	TempFiles int
	TempBytes int64
	// Foreign counts files and directories s3docs did not make; a daemon
	// refuses such a directory, and Clear leaves it alone. ForeignExample
	// names one, relative to the directory.
	Foreign        int
	ForeignExample string
	// InUse: a daemon holds the directory's lock.
	InUse bool
}

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
	l, err := scanLayout(dir)
	if err != nil {
		return Status{}, err
	}
	st.count(l)
	return st, nil
}

// Clear removes every file of s3docs's in chunks/ and tmp/ of dir, keeping
// the directories, and returns what was there. It refuses with ErrInUse
// while a daemon holds the lock, and with ErrForeignFiles (removing
// nothing) when the directory holds files that are not s3docs's; it holds
// the lock itself meanwhile, so that no daemon can start on a half-emptied
// directory.
func Clear(dir string) (Status, error) {
	if err := checkCacheDir(dir); err != nil {
		return Status{}, err
	}
	lock, err := lockExclusive(dir)
	if err != nil {
		return Status{}, err
	}
	defer lock.Close()
	l, err := scanLayout(dir)
	if err != nil {
		return Status{}, err
	}
	var st Status
	st.count(l)
	if err := l.foreignErr(dir); err != nil {
		return st, err
	}
	for _, e := range append(l.entries, l.invalid...) {
		if err := os.Remove(filepath.Join(chunksDir(dir), e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("chunkcache: %w", err)
		}
	}
	for _, e := range l.tmps {
		if err := os.Remove(filepath.Join(tmpDir(dir), e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("chunkcache: %w", err)
		}
	}
	return st, nil
}

func (st *Status) count(l layout) {
	for _, e := range l.entries {
		st.Entries++
		st.Bytes += e.info.Size()
	}
	for _, e := range l.invalid {
		st.Invalid++
		st.InvalidBytes += e.info.Size()
	}
	for _, e := range l.tmps {
		st.TempFiles++
		st.TempBytes += e.info.Size()
	}
	st.Foreign = l.nforeign
	if len(l.foreign) > 0 {
		st.ForeignExample = l.foreign[0]
	}
}
