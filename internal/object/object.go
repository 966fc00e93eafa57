// Package object names one immutable version of an S3 object. It is the only
// type the store, the cache and the file system have to agree on.
package object

import (
	"strconv"
	"time"
)

// Version identifies one version of an object: what a file handle pins at open
// and what every cached byte of the object is keyed by.
type Version struct {
	Key  string
	ETag string // "" when the store has none (files put straight into versitygw's posix backend)
	Size int64
	// ModTime is Last-Modified. Without an ETag it is, with Size, the version.
	ModTime time.Time
}

// Identity is a string that changes whenever the object's content may have
// changed. It is the ETag when there is one, else size and Last-Modified.
func (v Version) Identity() string {
	if v.ETag != "" {
		return "etag:" + v.ETag
	}
	return "mtime:" + strconv.FormatInt(v.Size, 10) + ":" + strconv.FormatInt(v.ModTime.UTC().Unix(), 10)
}

// Listing is one directory level under a prefix: the names of the common
// prefixes (subdirectories, without the trailing "/") and the objects directly
// in it, whose Key is relative to the mount root.
type Listing struct {
	Dirs  []string
	Files []Version
}
