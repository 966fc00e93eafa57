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
	// Entries counts the cached files: Objects, the files of object
	// versions (each with its map), and Blobs, parts and page counts.
	// Bytes is what they take on disk: objects' files are sparse, and
	// count by their blocks, not their sizes.
	Entries, Objects, Blobs int
	Bytes                   int64
	// Invalid counts files that the next start will delete: named as
	// s3docs names them, but of another size than the name says, an
	// object's file without its map (or a map without its file), or a
	// file of the per-chunk layout of earlier versions (Legacy of them).
	Invalid, Legacy int
	InvalidBytes    int64
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

// Clear removes every file of s3docs's in objects/, blobs/, tmp/ (and the
// chunks/ of earlier versions) of dir, keeping
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
	for _, o := range l.objects {
		for _, name := range []string{o.id, o.id + mapSuffix} {
			if err := removeIfExists(filepath.Join(objectsDir(dir), name)); err != nil {
				return st, err
			}
		}
	}
	for _, e := range l.orphans {
		if err := removeIfExists(filepath.Join(objectsDir(dir), e.name)); err != nil {
			return st, err
		}
	}
	for _, e := range append(l.blobs, l.invalid...) {
		if err := removeIfExists(filepath.Join(blobsDir(dir), e.name)); err != nil {
			return st, err
		}
	}
	for _, e := range l.legacy {
		if err := removeIfExists(filepath.Join(legacyChunksDir(dir), e.name)); err != nil {
			return st, err
		}
	}
	for _, e := range l.tmps {
		if err := os.Remove(filepath.Join(tmpDir(dir), e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("chunkcache: %w", err)
		}
	}
	return st, nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("chunkcache: %w", err)
	}
	return nil
}

func (st *Status) count(l layout) {
	for _, o := range l.objects {
		st.Objects++
		st.Bytes += diskBytes(o.data) + diskBytes(o.idx)
	}
	for _, e := range l.blobs {
		st.Blobs++
		st.Bytes += diskBytes(e.info)
	}
	st.Entries = st.Objects + st.Blobs
	for _, es := range [][]foundEntry{l.invalid, l.orphans, l.legacy} {
		for _, e := range es {
			st.Invalid++
			st.InvalidBytes += diskBytes(e.info)
		}
	}
	st.Legacy = len(l.legacy)
	for _, e := range l.tmps {
		st.TempFiles++
		st.TempBytes += diskBytes(e.info)
	}
	st.Foreign = l.nforeign
	if len(l.foreign) > 0 {
		st.ForeignExample = l.foreign[0]
	}
}

// diskBytes is what a file takes on disk, as du counts it: a sparse file
// takes its blocks, not its size.
func diskBytes(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}

// CachedRange is one entry of an object's file, as its map records it.
type CachedRange struct {
	// File is the object's file, relative to the cache directory
	// ("objects/<id>").
	File string
	// Kind is "chunk", "piece" or "fragment".
	Kind           string
	Offset, Length int64
	// CRC32C is the checksum of the range's bytes as they were fetched.
	CRC32C uint32
}

// ReadRanges lists the entries of every object's file in the cache
// directory dir, from their maps, without reading the files' bytes and
// without taking the lock: for `s3docs cache` and for tests that check what
// a cache holds against its source.
func ReadRanges(dir string) ([]CachedRange, error) {
	if err := checkCacheDir(dir); err != nil {
		return nil, err
	}
	l, err := scanLayout(dir)
	if err != nil {
		return nil, err
	}
	var out []CachedRange
	for _, o := range l.objects {
		b, err := os.ReadFile(filepath.Join(objectsDir(dir), o.id+mapSuffix))
		if err != nil {
			return nil, fmt.Errorf("chunkcache: %w", err)
		}
		h, err := decodeMapHeader(b)
		if err != nil {
			return nil, fmt.Errorf("chunkcache: map of %s: %w", o.id, err)
		}
		g := newGeometry("", h.chunkSize)
		m, err := replayMap(b, g)
		if err != nil {
			return nil, fmt.Errorf("chunkcache: map of %s: %w", o.id, err)
		}
		for _, e := range m.live {
			off, n := g.rangeOf(h.size, e.key)
			out = append(out, CachedRange{File: objectsDirName + "/" + o.id, Kind: e.key.kind.String(),
				Offset: off, Length: n, CRC32C: e.crc})
		}
	}
	return out, nil
}
