package fs

import (
	"context"
	"errors"
	"io"
	"path"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"s3docs/internal/object"
)

// fileNode is one object. Its version is the newest the tree has seen; each
// open handle keeps the version it was opened at.
type fileNode struct {
	gofs.Inode
	fsys *FS

	mu sync.Mutex
	v  object.Version
	// stale is set when a read found the object changed under an open
	// handle; the next open asks the store instead of trusting the listing.
	stale bool
	// lastOpened is the identity of the version last opened: while it stays
	// the same the kernel may keep its page cache across opens.
	lastOpened string
}

var (
	_ gofs.NodeOpener    = (*fileNode)(nil)
	_ gofs.NodeGetattrer = (*fileNode)(nil)
)

// fileChild returns the inode for v under parent, refreshing the version of
// an inode the kernel already knows.
func (f *FS) fileChild(ctx context.Context, parent *gofs.Inode, v object.Version, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ch := parent.NewInode(ctx, &fileNode{fsys: f, v: v}, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: fileIno(v.Key)})
	fn, ok := ch.Operations().(*fileNode)
	if !ok {
		f.log.Error("inode number collision", "key", v.Key)
		return nil, syscall.EIO
	}
	fn.mu.Lock()
	if !fn.stale {
		fn.v = v
	}
	fn.mu.Unlock()
	f.fillFileAttr(&out.Attr, fn.version())
	return ch, 0
}

func (n *fileNode) version() object.Version {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.v
}

func (n *fileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	v := n.version()
	if h, ok := fh.(*handle); ok {
		v = h.v
	}
	n.fsys.fillFileAttr(&out.Attr, v)
	return 0
}

// opensForWriting is an open(2) that could change the file.
func opensForWriting(flags uint32) bool {
	return flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if opensForWriting(flags) {
		return nil, 0, syscall.EROFS
	}
	n.mu.Lock()
	v, stale := n.v, n.stale
	n.mu.Unlock()
	if stale {
		fresh, err := n.fsys.opt.Store.Head(ctx, v.Key)
		if err != nil {
			return nil, 0, n.fsys.errno(err, "head", v.Key)
		}
		v = fresh
	}
	n.mu.Lock()
	n.v, n.stale = v, false
	keep := n.lastOpened == v.Identity()
	n.lastOpened = v.Identity()
	n.mu.Unlock()
	var fuseFlags uint32
	if keep {
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	}
	return &handle{node: n, v: v, r: n.fsys.opt.OpenReader(v)}, fuseFlags, 0
}

// markStale records that the object changed, so that the next open and the
// next listing see the new version.
func (n *fileNode) markStale(key string) {
	n.mu.Lock()
	n.stale = true
	n.lastOpened = ""
	n.mu.Unlock()
	dir, _ := path.Split(key)
	n.fsys.dirs.invalidate(dir)
}

func (n *fileNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
func (n *fileNode) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}
func (n *fileNode) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }

// handle is one open file: a reader pinned to one version.
type handle struct {
	node *fileNode
	v    object.Version
	r    Reader
}

var (
	_ gofs.FileReader   = (*handle)(nil)
	_ gofs.FileReleaser = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.r.ReadAt(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, object.ErrChanged) {
			h.node.markStale(h.v.Key)
		}
		return nil, h.node.fsys.errno(err, "read", h.v.Key)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.r.Close()
	return 0
}
