package chunkcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The on-disk layout of a cache directory. Open, ReadStatus, Clear and the
// private-directory check all read it through scanLayout, so that they
// agree on what is s3docs's own: s3docs deletes only files whose names prove
// them its own, and refuses a directory holding anything else.
const (
	// chunksDirName holds the admitted entries (chunks, pieces, blobs), each
	// named by fileName.
	chunksDirName = "chunks"
	// tmpDirName holds fetches and blobs being written, named by tmpName;
	// whatever is in it at start is a leftover of a daemon that died.
	tmpDirName = "tmp"
	// legacyLockName is the lock file of earlier versions, which locked a
	// file and so lost the lock when someone deleted it. It is still known
	// as ours (and still respected, see lockDir), never made.
	legacyLockName = "lock"
	// blobTmpPrefix starts the temporary names of blobs; a chunk's start
	// with its id.
	blobTmpPrefix = "blob"
)

func chunksDir(dir string) string { return filepath.Join(dir, chunksDirName) }
func tmpDir(dir string) string    { return filepath.Join(dir, tmpDirName) }

// LockPath is what a running daemon keeps locked (flock LOCK_EX): the cache
// directory itself, so that no file deleted from it takes the lock along.
func LockPath(dir string) string { return dir }

// tmpName is the name of a temporary file: its prefix (a chunk id, or
// blobTmpPrefix) and a random decimal number, as os.CreateTemp made them in
// earlier versions, so that their leftovers are known as ours too.
func tmpName(prefix string, random uint32) string {
	return prefix + "." + strconv.FormatUint(uint64(random), 10)
}

// isTmpName says whether name is one tmpName makes.
func isTmpName(name string) bool {
	prefix, num, ok := strings.Cut(name, ".")
	if !ok || num == "" || len(num) > 10 || strings.Trim(num, "0123456789") != "" {
		return false
	}
	if prefix == blobTmpPrefix {
		return true
	}
	return len(prefix) == 40 && strings.Trim(prefix, "0123456789abcdef") == ""
}

// layout is what scanLayout found in a cache directory.
type layout struct {
	entries []foundEntry // well-formed chunk, piece and blob files
	invalid []foundEntry // ours by name, but of another size than it says
	tmps    []foundEntry // temporary files
	// foreign are paths relative to the directory that s3docs did not
	// make; nforeign counts them all, foreign keeps a few for messages.
	foreign  []string
	nforeign int
}

type foundEntry struct {
	name string
	info fs.FileInfo
}

const foreignExamples = 3

func (l *layout) addForeign(rel string) {
	l.nforeign++
	if len(l.foreign) < foreignExamples {
		l.foreign = append(l.foreign, rel)
	}
}

// scanLayout sorts what dir holds into s3docs's own files and foreign
// ones. Missing chunks/ or tmp/ are fine (a daemon makes them). It judges
// by names, types and sizes only: no file is read.
func scanLayout(dir string) (layout, error) {
	var l layout
	top, err := os.ReadDir(dir)
	if err != nil {
		return l, fmt.Errorf("chunkcache: %w", err)
	}
	for _, de := range top {
		switch name := de.Name(); {
		case (name == chunksDirName || name == tmpDirName) && de.IsDir():
		case name == legacyLockName && de.Type().IsRegular():
		default:
			if de.IsDir() {
				name += "/"
			}
			l.addForeign(name)
		}
	}
	chunks, err := readDirIfExists(chunksDir(dir))
	if err != nil {
		return l, err
	}
	for _, de := range chunks {
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // evicted by a running daemon since the listing
		}
		if err != nil {
			return l, fmt.Errorf("chunkcache: %w", err)
		}
		_, size, _, ok := parseName(de.Name())
		switch {
		case !ok || !info.Mode().IsRegular():
			l.addForeign(chunksDirName + "/" + de.Name())
		case info.Size() != size:
			l.invalid = append(l.invalid, foundEntry{de.Name(), info})
		default:
			l.entries = append(l.entries, foundEntry{de.Name(), info})
		}
	}
	tmps, err := readDirIfExists(tmpDir(dir))
	if err != nil {
		return l, err
	}
	for _, de := range tmps {
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // a fetch finished and renamed it
		}
		if err != nil {
			return l, fmt.Errorf("chunkcache: %w", err)
		}
		if !isTmpName(de.Name()) || !info.Mode().IsRegular() {
			l.addForeign(tmpDirName + "/" + de.Name())
			continue
		}
		l.tmps = append(l.tmps, foundEntry{de.Name(), info})
	}
	return l, nil
}

// ErrForeignFiles: the cache directory holds files s3docs did not make.
// s3docs neither uses nor cleans such a directory.
var ErrForeignFiles = errors.New("holds files that are not s3docs's")

type foreignError struct {
	dir   string
	n     int
	names []string
}

func (l layout) foreignErr(dir string) error {
	if l.nforeign == 0 {
		return nil
	}
	return &foreignError{dir, l.nforeign, l.foreign}
}

func (e *foreignError) Error() string {
	what := strings.Join(e.names, ", ")
	if e.n > len(e.names) {
		what += fmt.Sprintf(" and %d more", e.n-len(e.names))
	}
	return fmt.Sprintf("cache directory %s %v (%s): give s3docs a directory of its own (a new path, which it creates private)",
		e.dir, ErrForeignFiles, what)
}

func (e *foreignError) Unwrap() error { return ErrForeignFiles }

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

// isGone: the error says a directory of the cache is no longer there (it
// was deleted while in use).
func isGone(err error) bool {
	return errors.Is(err, syscall.ENOENT)
}
