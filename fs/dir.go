package fs

import (
	"context"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

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
	store Store
	ttl   time.Duration
	warns *warnOnce
	// hideParts drops an object or prefix named .parts from the root's
	// listing: the name is the tree of parts, which the root must not list.
	hideParts bool
	cache     *expirable.LRU[string, *listing] // nil when ttl is 0
	flights   singleflight.Group
	// generation counts invalidations: a listing fetched across one may be
	// older than what invalidated it, and is not cached.
	generation atomic.Int64
}

// maxCachedDirs bounds the memory of cached listings; a listing is on the
// order of 100 bytes per entry.
const maxCachedDirs = 4096

func newDirCache(s Store, ttl time.Duration, w *warnOnce, hideParts bool) *dirCache {
	d := &dirCache{store: s, ttl: ttl, warns: w, hideParts: hideParts}
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
		if d.hidden(prefix, name) {
			continue
		}
		d.warnOdd(prefix+name+"/", name)
		l.dirs[name] = true
	}
	for _, v := range raw.Files {
		name := strings.TrimPrefix(v.Key, prefix)
		if !validName(name) {
			d.warns.warn(v.Key, "skipping key that cannot be a file name")
			continue
		}
		if d.hidden(prefix, name) {
			continue
		}
		d.warnOdd(v.Key, name)
		if l.dirs[name] {
			// The file keeps the name; the directory's contents are not
			// reachable through this mount.
			d.warns.warn(v.Key, "a file and a directory share this name; serving the file")
			delete(l.dirs, name)
		}
		l.files[name] = v
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

// hidden says whether prefix+name is the tree of parts' name at the root.
// Listed, .parts would lead find, du and updatedb into the tree of parts,
// and make them parse every PDF; it is not listed, and whatever the bucket
// has under that name is not reachable.
func (d *dirCache) hidden(prefix, name string) bool {
	if !d.hideParts || prefix != "" || name != partsRoot {
		return false
	}
	d.warns.warn(partsRoot, "an object or prefix named .parts at the root is hidden by the tree of parts")
	return true
}

// warnOdd notes, once, a name that is a valid file name but may surprise
// the tools that print or split names: control characters (a newline
// breaks `find | xargs`) or bytes that are not UTF-8. It is served as it
// is; the log quotes it.
func (d *dirCache) warnOdd(key, name string) {
	if !utf8.ValidString(name) {
		d.warns.warn(key, "key is not valid UTF-8; served under its raw bytes")
		return
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		d.warns.warn(key, "key holds control characters; served as it is")
	}
}

// validName rejects what a POSIX directory entry cannot hold.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= 255 &&
		!strings.ContainsAny(name, "\x00/")
}

// dirNode is a directory: the root or a common prefix.
type dirNode struct {
	gofs.Inode
	readOnlyDir
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

// readOnlyDir refuses every call that would change a directory. The mount
// is "ro", so the kernel normally answers these itself; every directory
// node embeds it anyway, so that a mount made read-write (a remount by
// root, a future change of the mount options) still changes nothing, and
// answers EROFS rather than go-fuse's ENOTSUP for what a node lacks.
type readOnlyDir struct{}

var (
	_ gofs.NodeMkdirer       = readOnlyDir{}
	_ gofs.NodeMknoder       = readOnlyDir{}
	_ gofs.NodeCreater       = readOnlyDir{}
	_ gofs.NodeSymlinker     = readOnlyDir{}
	_ gofs.NodeLinker        = readOnlyDir{}
	_ gofs.NodeUnlinker      = readOnlyDir{}
	_ gofs.NodeRmdirer       = readOnlyDir{}
	_ gofs.NodeRenamer       = readOnlyDir{}
	_ gofs.NodeSetattrer     = readOnlyDir{}
	_ gofs.NodeSetxattrer    = readOnlyDir{}
	_ gofs.NodeRemovexattrer = readOnlyDir{}
)

func (readOnlyDir) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnlyDir) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnlyDir) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (readOnlyDir) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnlyDir) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnlyDir) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (readOnlyDir) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }
func (readOnlyDir) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}
func (readOnlyDir) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
func (readOnlyDir) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}
func (readOnlyDir) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }
