package fs

import (
	"context"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"

	"s3docs/internal/object"
)

// listing is one directory level, with the names that cannot be file names
// already dropped.
type listing struct {
	files map[string]object.Version
	dirs  map[string]bool
	names []string // sorted; files and dirs
}

// dirCache keeps listings for the metadata TTL. A lookup of a missing name
// is answered from the cached listing too, so negative lookups are cached.
type dirCache struct {
	store   Store
	ttl     time.Duration
	warns   *warnOnce
	cache   *expirable.LRU[string, *listing] // nil when ttl is 0
	flights singleflight.Group
	// generation counts invalidations: a listing fetched across one may be
	// older than what invalidated it, and is not cached.
	generation atomic.Int64
}

// maxCachedDirs bounds the memory of cached listings; a listing is on the
// order of 100 bytes per entry.
const maxCachedDirs = 4096

func newDirCache(s Store, ttl time.Duration, w *warnOnce) *dirCache {
	d := &dirCache{store: s, ttl: ttl, warns: w}
	if ttl > 0 {
		d.cache = expirable.NewLRU[string, *listing](maxCachedDirs, nil, ttl)
	}
	return d
}

// get returns the listing of prefix, from cache or from one List shared by
// all concurrent callers.
func (d *dirCache) get(ctx context.Context, prefix string) (*listing, error) {
	if d.cache != nil {
		if l, ok := d.cache.Get(prefix); ok {
			return l, nil
		}
	}
	ch := d.flights.DoChan(prefix, func() (any, error) {
		// Detached from the caller: others may be waiting for the same listing.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		gen := d.generation.Load()
		raw, err := d.store.List(ctx, prefix)
		if err != nil {
			return nil, err
		}
		l := d.build(prefix, raw)
		if d.cache != nil && d.generation.Load() == gen {
			d.cache.Add(prefix, l)
		}
		return l, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*listing), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// invalidate forgets prefix's listing, e.g. after an object in it changed.
func (d *dirCache) invalidate(prefix string) {
	d.generation.Add(1)
	if d.cache != nil {
		d.cache.Remove(prefix)
	}
}

func (d *dirCache) build(prefix string, raw object.Listing) *listing {
	l := &listing{files: map[string]object.Version{}, dirs: map[string]bool{}}
	for _, name := range raw.Dirs {
		if !validName(name) {
			d.warns.warn(prefix+name+"/", "skipping key that cannot be a directory name")
			continue
		}
		l.dirs[name] = true
	}
	for _, v := range raw.Files {
		name := strings.TrimPrefix(v.Key, prefix)
		if !validName(name) {
			d.warns.warn(v.Key, "skipping key that cannot be a file name")
			continue
		}
		if l.dirs[name] {
			// The file keeps the name; the directory's contents are not
			// reachable through this mount.
			d.warns.warn(v.Key, "a file and a directory share this name; serving the file")
			delete(l.dirs, name)
		}
		l.files[name] = v
	}
	if prefix == "" && (l.dirs[partsRoot] || l.files[partsRoot].Key != "") {
		d.warns.warn(partsRoot, "an object or prefix named .parts at the root is hidden by the tree of parts")
	}
	for name := range l.dirs {
		l.names = append(l.names, name)
	}
	for name := range l.files {
		l.names = append(l.names, name)
	}
	sort.Strings(l.names)
	return l
}

// validName rejects what a POSIX directory entry cannot hold.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= 255 &&
		!strings.ContainsAny(name, "\x00/")
}

// dirNode is a directory: the root or a common prefix.
type dirNode struct {
	gofs.Inode
	fsys   *FS
	prefix string // "" or "a/b/"
}

var (
	_ gofs.NodeLookuper  = (*dirNode)(nil)
	_ gofs.NodeReaddirer = (*dirNode)(nil)
	_ gofs.NodeGetattrer = (*dirNode)(nil)
)

func (n *dirNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.fillDirAttr(&out.Attr, dirIno(n.prefix))
	return 0
}

func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.prefix == "" && name == partsRoot && n.fsys.opt.Parts != nil {
		ino := partsIno("")
		n.fsys.fillDirAttr(&out.Attr, ino)
		return n.NewInode(ctx, &partsDirNode{fsys: n.fsys}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino}), 0
	}
	l, err := n.fsys.dirs.get(ctx, n.prefix)
	if err != nil {
		return nil, n.fsys.errno(err, "list", n.prefix)
	}
	if v, ok := l.files[name]; ok {
		return n.fsys.fileChild(ctx, &n.Inode, name, v, out)
	}
	if l.dirs[name] {
		child := n.prefix + name + "/"
		ino := dirIno(child)
		n.fsys.fillDirAttr(&out.Attr, ino)
		return n.NewInode(ctx, &dirNode{fsys: n.fsys, prefix: child}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino}), 0
	}
	return nil, syscall.ENOENT
}

func (n *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	l, err := n.fsys.dirs.get(ctx, n.prefix)
	if err != nil {
		return nil, n.fsys.errno(err, "list", n.prefix)
	}
	entries := make([]fuse.DirEntry, 0, len(l.names))
	for _, name := range l.names {
		if v, ok := l.files[name]; ok {
			entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG, Ino: fileIno(v.Key)})
		} else {
			entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: dirIno(n.prefix + name + "/")})
		}
	}
	return gofs.NewListDirStream(entries), 0
}

// The tree is read-only; the mount is "ro" too, so the kernel normally
// answers these itself. They are here for completeness.

func (n *dirNode) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (n *dirNode) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (n *dirNode) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (n *dirNode) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (n *dirNode) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (n *dirNode) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (n *dirNode) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }
func (n *dirNode) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}
func (n *dirNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
func (n *dirNode) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}
func (n *dirNode) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }
