package chunkcache

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The on-disk layout of a cache directory, all of it: the lock, objects/,
// blobs/ and tmp/, how files there are named, and what makes a file valid.
// Open (see dir.go), ReadStatus and Clear (status.go) and the private-directory
// check (dirperm.go) know the layout only through this file, so that they
// agree on what is s3docs's own: s3docs deletes only files whose names prove
// them its own, and refuses a directory holding anything else.
//
//	<dir>/                          locked (flock LOCK_EX) by the daemon using it
//	<dir>/objects/<id>              the file of one object version: sparse, the
//	                                object's size, its cached ranges at their offsets
//	<dir>/objects/<id>.map          which ranges it holds, with their crc32c (objmap.go)
//	<dir>/blobs/<id>-<size>-<crc32c> a blob (a part, a page count)
//	<dir>/tmp/<prefix>.<random>     a blob being made, a map being rewritten
//	<dir>/chunks/<id>-<size>-<crc32c> the per-chunk layout of earlier versions:
//	                                its files are deleted at start (they cannot be
//	                                moved into objects/: their names are one-way hashes)
//	<dir>/lock                      the lock file of earlier versions, never made now
const (
	// objectsDirName holds the objects' files and their maps.
	objectsDirName = "objects"
	// blobsDirName holds the blobs, each named by fileName.
	blobsDirName = "blobs"
	// tmpDirName holds blobs being written and maps being rewritten, named
	// by tmpName; whatever is in it at start is a leftover of a daemon
	// that died.
	tmpDirName = "tmp"
	// legacyChunksDirName held the entries of earlier versions, one file
	// per chunk, piece, fragment or blob.
	legacyChunksDirName = "chunks"
	// legacyLockName is the lock file of earlier versions, which locked a
	// file and so lost the lock when someone deleted it. It is still known
	// as ours (and still respected, see lockExclusive), never made.
	legacyLockName = "lock"
	// blobTmpPrefix starts the temporary names of blobs; a map's start
	// with its object's id.
	blobTmpPrefix = "blob"
	// mapSuffix ends the name of an object's map.
	mapSuffix = ".map"
)

func objectsDir(dir string) string      { return filepath.Join(dir, objectsDirName) }
func blobsDir(dir string) string        { return filepath.Join(dir, blobsDirName) }
func tmpDir(dir string) string          { return filepath.Join(dir, tmpDirName) }
func legacyChunksDir(dir string) string { return filepath.Join(dir, legacyChunksDirName) }

// The lock.

// LockPath is what a running daemon keeps locked (flock LOCK_EX): the cache
// directory itself, so that no file deleted from it takes the lock along.
func LockPath(dir string) string { return dir }

// ErrInUse: another s3docs process holds the cache directory.
var ErrInUse = errors.New("in use by another s3docs process")

// lockExclusive opens dir and locks it, without waiting, as the one user of
// the directory (a daemon, or Clear while it empties it). Closing the file
// releases the lock.
func lockExclusive(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("chunkcache: %w", err)
	}
	if err := flockNB(f, syscall.LOCK_EX); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, inUseError(dir)
		}
		return nil, fmt.Errorf("chunkcache: lock %s: %w", dir, err)
	}
	// A daemon of an earlier version locks a file in the directory.
	if legacyLockHeld(dir) {
		f.Close()
		return nil, inUseError(dir)
	}
	return f, nil
}

func inUseError(dir string) error { return refused("cache directory %s is %w", dir, ErrInUse) }

// lockedByOther probes the daemon's lock without blocking. The shared lock
// is dropped at once: it would make a daemon starting at this very moment
// refuse the directory.
func lockedByOther(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, fmt.Errorf("chunkcache: %w", err)
	}
	defer f.Close()
	err = flockNB(f, syscall.LOCK_SH)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("chunkcache: lock %s: %w", dir, err)
	}
	return legacyLockHeld(dir), nil
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

// Entry names, and what makes an entry valid.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileName keeps the length and checksum with the entry: a restart can check
// the size from a directory listing and the content on first read. The id
// is a hash of the version (see chunkID and BlobID), never a key, so no key
// can reach outside the directory.
func fileName(id string, size int64, crc uint32) string {
	return fmt.Sprintf("%s-%d-%08x", id, size, crc)
}

func parseName(name string) (id string, size int64, crc uint32, ok bool) {
	parts := strings.Split(name, "-")
	if len(parts) != 3 || len(parts[0]) != 40 || len(parts[2]) != 8 {
		return "", 0, 0, false
	}
	if raw, err := hex.DecodeString(parts[0]); err != nil || hex.EncodeToString(raw) != parts[0] {
		return "", 0, 0, false
	}
	size, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || size <= 0 {
		return "", 0, 0, false
	}
	c, err := strconv.ParseUint(parts[2], 16, 32)
	if err != nil {
		return "", 0, 0, false
	}
	// Only the exact spelling fileName writes: no sign, padding or upper
	// case, so one entry has one name and a restart keeps one file per id.
	if fileName(parts[0], size, uint32(c)) != name {
		return "", 0, 0, false
	}
	return parts[0], size, uint32(c), true
}

// verify checks a blob's file against the length and checksum in its name.
// A listing checks names and sizes only (so that a large cache starts in
// seconds); this is the rest of what makes a blob valid, checked when it is
// first read.
func verify(f *os.File, size int64, crc uint32) error {
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, io.NewSectionReader(f, 0, size+1))
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if n != size || h.Sum32() != crc {
		return fmt.Errorf("verify: %d bytes with crc32c %08x, want %d bytes with %08x", n, h.Sum32(), size, crc)
	}
	return nil
}

// verifyRange checks bytes [off, off+n) of an object's file against the
// checksum its map recorded for them, as verify does for a blob.
func verifyRange(f *os.File, off, n int64, crc uint32) error {
	h := crc32.New(castagnoli)
	got, err := io.Copy(h, io.NewSectionReader(f, off, n))
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if got != n || h.Sum32() != crc {
		return fmt.Errorf("verify: %d bytes at %d with crc32c %08x, want %d bytes with %08x", got, off, h.Sum32(), n, crc)
	}
	return nil
}

// isHexID says whether s is an id as s3docs writes them: 40 lower-case hex
// digits.
func isHexID(s string) bool {
	return len(s) == 40 && strings.Trim(s, "0123456789abcdef") == ""
}

// parseObjectName says whether name is an object's file (<id>) or its map
// (<id>.map), and its id.
func parseObjectName(name string) (id string, isMap, ok bool) {
	id, isMap = strings.CutSuffix(name, mapSuffix)
	return id, isMap, isHexID(id)
}

// Temporary names.

// tmpName is the name of a temporary file: its prefix (an object's id, or
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
	return prefix == blobTmpPrefix || isHexID(prefix)
}

// What a directory holds.

// ErrNotCacheDir is returned for a directory that has none of a cache's
// layout: an operator's typo must not empty someone's files.
var ErrNotCacheDir = errors.New("not an s3docs cache directory (no objects/, blobs/ or tmp/)")

// checkCacheDir says whether dir exists and has something of a cache's
// layout, for the commands that look at a cache without making one.
func checkCacheDir(dir string) error {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return missingDirError(dir)
	}
	if err != nil {
		return fmt.Errorf("cache directory: %w", err)
	}
	if !info.IsDir() {
		return notDirError(dir)
	}
	for _, name := range []string{objectsDirName, blobsDirName, tmpDirName, legacyChunksDirName, legacyLockName} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s is %w", dir, ErrNotCacheDir)
}

// missingDirError reads as one plain sentence yet still matches
// fs.ErrNotExist, for callers that tell bad input from failures.
type missingDirError string

func (e missingDirError) Error() string { return "cache directory " + string(e) + " does not exist" }
func (e missingDirError) Unwrap() error { return fs.ErrNotExist }

// notDirError, likewise, matches syscall.ENOTDIR: a path naming a file is
// the operator's to fix, as a missing one is.
type notDirError string

func (e notDirError) Error() string { return "cache directory " + string(e) + " is not a directory" }
func (e notDirError) Unwrap() error { return syscall.ENOTDIR }

// layout is what scanLayout found in a cache directory.
type layout struct {
	objects []foundObject // objects' files with their maps
	// orphans are names in objects/ that are ours but lack their other
	// half (a file without its map, or a map without its file): what a
	// daemon killed while it made or removed an object leaves.
	orphans []foundEntry
	blobs   []foundEntry // well-formed blob files
	invalid []foundEntry // blobs by name, but of another size than it says
	legacy  []foundEntry // files of the per-chunk layout, in chunks/
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

// foundObject is an object's file and its map.
type foundObject struct {
	id        string
	data, idx fs.FileInfo
}

const foreignExamples = 3

func (l *layout) addForeign(rel string) {
	l.nforeign++
	if len(l.foreign) < foreignExamples {
		l.foreign = append(l.foreign, rel)
	}
}

// scanLayout sorts what dir holds into s3docs's own files and foreign
// ones. Missing subdirectories are fine (a daemon makes them). It judges
// by names, types and sizes only: no file is read.
func scanLayout(dir string) (layout, error) {
	var l layout
	top, err := os.ReadDir(dir)
	if err != nil {
		return l, fmt.Errorf("chunkcache: %w", err)
	}
	for _, de := range top {
		switch name := de.Name(); {
		case (name == objectsDirName || name == blobsDirName || name == tmpDirName || name == legacyChunksDirName) && de.IsDir():
		case name == legacyLockName && de.Type().IsRegular():
		default:
			if de.IsDir() {
				name += "/"
			}
			l.addForeign(name)
		}
	}
	if err := l.scanObjects(dir); err != nil {
		return l, err
	}
	err = scanSub(dir, blobsDirName, func(name string, info fs.FileInfo) {
		_, size, _, ok := parseName(name)
		switch {
		case !ok || !info.Mode().IsRegular():
			l.addForeign(blobsDirName + "/" + name)
		case info.Size() != size:
			l.invalid = append(l.invalid, foundEntry{name, info})
		default:
			l.blobs = append(l.blobs, foundEntry{name, info})
		}
	})
	if err != nil {
		return l, err
	}
	err = scanSub(dir, legacyChunksDirName, func(name string, info fs.FileInfo) {
		if _, _, _, ok := parseName(name); !ok || !info.Mode().IsRegular() {
			l.addForeign(legacyChunksDirName + "/" + name)
			return
		}
		l.legacy = append(l.legacy, foundEntry{name, info})
	})
	if err != nil {
		return l, err
	}
	err = scanSub(dir, tmpDirName, func(name string, info fs.FileInfo) {
		if !isTmpName(name) || !info.Mode().IsRegular() {
			l.addForeign(tmpDirName + "/" + name)
			return
		}
		l.tmps = append(l.tmps, foundEntry{name, info})
	})
	return l, err
}

// scanObjects pairs the objects' files in objects/ with their maps.
func (l *layout) scanObjects(dir string) error {
	datas, maps := map[string]fs.FileInfo{}, map[string]fs.FileInfo{}
	err := scanSub(dir, objectsDirName, func(name string, info fs.FileInfo) {
		id, isMap, ok := parseObjectName(name)
		switch {
		case !ok || !info.Mode().IsRegular():
			l.addForeign(objectsDirName + "/" + name)
		case isMap:
			maps[id] = info
		default:
			datas[id] = info
		}
	})
	if err != nil {
		return err
	}
	for id, data := range datas {
		if idx, ok := maps[id]; ok {
			l.objects = append(l.objects, foundObject{id: id, data: data, idx: idx})
			delete(maps, id)
			continue
		}
		l.orphans = append(l.orphans, foundEntry{id, data})
	}
	for id, idx := range maps {
		l.orphans = append(l.orphans, foundEntry{id + mapSuffix, idx})
	}
	return nil
}

// scanSub calls found for every file in the subdirectory sub of dir (none
// if it is missing).
func scanSub(dir, sub string, found func(name string, info fs.FileInfo)) error {
	des, err := readDirIfExists(filepath.Join(dir, sub))
	if err != nil {
		return err
	}
	for _, de := range des {
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // evicted or renamed by a running daemon since the listing
		}
		if err != nil {
			return fmt.Errorf("chunkcache: %w", err)
		}
		found(de.Name(), info)
	}
	return nil
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

// Is makes a directory holding foreign files a refusal (ErrRefused).
func (e *foreignError) Is(target error) bool { return target == ErrRefused }

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
