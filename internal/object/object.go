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

// ListRequest asks for one page of a listing (ListObjectsV2).
type ListRequest struct {
	// Prefix is relative to the mount root: a directory ("" or "a/b/") or
	// any key prefix ("a/b/name/").
	Prefix string
	// Delimiter rolls keys up at the next "/" after Prefix into Page.Dirs:
	// one directory level. Without it every key under Prefix is listed.
	Delimiter bool
	// StartAfter, relative to the mount root, starts the page after this
	// key (it need not exist). Ignored when Token is set.
	StartAfter string
	// Token continues a listing: the NextToken of the page before.
	Token string
	// MaxKeys bounds the entries of the page; 0 means the server's maximum
	// (1,000 for S3).
	MaxKeys int
}

// Page is one page of a listing, as the server sent it: names are not
// checked, and a "folder marker" (an object whose key is Prefix itself)
// is in Files.
type Page struct {
	// Dirs are the common prefixes, relative to Prefix, without the
	// trailing "/".
	Dirs []string
	// Files are the objects; Key is relative to the mount root.
	Files []Version
	// Truncated says that more entries follow; NextToken continues.
	Truncated bool
	NextToken string
}
