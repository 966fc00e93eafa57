package chunkcache

import "path/filepath"

// The on-disk layout of a cache directory. Open, ReadStatus, Clear and the
// private-directory check all name these, so that they agree on what is
// s3docs's own.
const (
	// chunksDirName holds the admitted entries (chunks, pieces, blobs), each
	// named by fileName.
	chunksDirName = "chunks"
	// tmpDirName holds fetches and blobs being written; whatever is in it
	// at start is a leftover of a daemon that died.
	tmpDirName = "tmp"
	// lockFileName is the file a running daemon keeps locked (flock LOCK_EX).
	lockFileName = "lock"
)

func chunksDir(dir string) string { return filepath.Join(dir, chunksDirName) }
func tmpDir(dir string) string    { return filepath.Join(dir, tmpDirName) }

// LockPath is the file that a running daemon keeps locked.
func LockPath(dir string) string { return filepath.Join(dir, lockFileName) }
