package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

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
	// lastOpened is the identity of the version last opened with the page
	// cache: while it stays the same the kernel may keep its page cache
	// across opens. "" forces the next such open to drop it.
	lastOpened string
	// open counts open handles by version identity. The page cache belongs
	// to the inode, not the handle, so two versions open at once must not
	// share it.
	open map[string]int
}

var (
	_ gofs.NodeOpener      = (*fileNode)(nil)
	_ gofs.NodeGetattrer   = (*fileNode)(nil)
	_ gofs.NodeOnForgetter = (*fileNode)(nil)
)

// fileChild returns the node of v, child of parent, refreshing the
// version of the node the kernel already has (the node table hands out
// that very node).
func (f *FS) fileChild(ctx context.Context, parent *gofs.Inode, v object.Version, out *fuse.EntryOut) *gofs.Inode {
	ino := fileIno(v.Key)
	ch := f.nodes.node(ino, func() *gofs.Inode {
		return parent.NewInode(ctx, &fileNode{fsys: f, v: v}, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ino})
	})
	fn := ch.Operations().(*fileNode)
	fn.refresh(v)
	f.fillFileAttr(&out.Attr, fn.version())
	return ch
}

func (n *fileNode) OnForget() { n.fsys.nodes.forgotten(&n.Inode) }

// busy says whether a handle is open: the kernel cannot forget the inode.
func (n *fileNode) busy() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.open) > 0
}

// refresh takes the version from a listing, unless the node knows better:
// a read saw this very version change (the next open will ask), or it
// already has a newer one.
func (n *fileNode) refresh(v object.Version) {
	n.mu.Lock()
	old := n.v
	if n.stale && v.Identity() == old.Identity() {
		n.mu.Unlock()
		return
	}
	// A listing that started before a HEAD may still carry the older
	// version: never go back in time.
	if v.ModTime.Before(old.ModTime) {
		n.mu.Unlock()
		return
	}
	n.v, n.stale = v, false
	n.mu.Unlock()
	if n.fsys.replaced(old, v) {
		// Open handles of the old version must not go on reading its
		// pages from the kernel's cache (see gone). Not on this thread:
		// see markStale.
		go n.NotifyContent(0, 0)
	}
}

// gone says why version v can no longer be read, or nil while it can. A
// handle serves its version, from cached chunks or from the store, until
// the daemon learns that the version is gone: a newer version was listed
// or opened, or a GET for it was answered "changed" or "not found" (stale).
// From then on every read of it fails, cached ranges included, so that an
// overwritten and a deleted object behave alike, and a reader never goes on
// with bytes it would not get again.
func (n *fileNode) gone(v object.Version) error {
	n.mu.Lock()
	cur, stale := n.v, n.stale
	n.mu.Unlock()
	switch {
	case cur.Identity() != v.Identity():
		// Serving the old version, even from cached chunks, would also make
		// the kernel shrink or grow the inode's size to the old one's at
		// the first short read.
		return fmt.Errorf("opened %s, now %s: %w", v.Identity(), cur.Identity(), object.ErrChanged)
	case stale:
		return fmt.Errorf("opened %s, which has changed or been deleted since: %w", v.Identity(), object.ErrChanged)
	}
	return nil
}

func (n *fileNode) version() object.Version {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.v
}

// Getattr answers the newest version, also through an older open handle:
// the size is the inode's, and a new open must not inherit an old size.
func (n *fileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.fillFileAttr(&out.Attr, n.version())
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
	var fresh object.Version
	if stale {
		hctx, cancel := context.WithTimeout(ctx, n.fsys.opt.LookupTimeout)
		var err error
		fresh, err = n.fsys.opt.Store.Head(hctx, v.Key)
		cancel()
		if err != nil {
			return nil, 0, n.fsys.errno(err, "head", v.Key)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if stale && n.stale && n.v.Identity() == v.Identity() {
		if n.fsys.replaced(v, fresh) {
			go n.NotifyContent(0, 0) // see refresh
		}
		n.v, n.stale = fresh, false
	}
	// Else the node moved on during the HEAD (a listing, another open): its
	// version is the newer knowledge. A node found stale again meanwhile
	// fails this open; the next one asks again.
	if n.stale {
		return nil, 0, n.fsys.errno(fmt.Errorf("%s changed again during the open: %w", v.Key, object.ErrChanged), "open", v.Key)
	}
	v = n.v
	id := v.Identity()
	var fuseFlags uint32
	if n.otherVersionOpenLocked(id) {
		// Another version is open and may be filling the page cache: this
		// handle reads around it, and the next cached open starts afresh.
		fuseFlags = fuse.FOPEN_DIRECT_IO
		n.lastOpened = ""
	} else {
		if n.lastOpened == id {
			fuseFlags = fuse.FOPEN_KEEP_CACHE
		}
		n.lastOpened = id
	}
	if n.open == nil {
		n.open = map[string]int{}
	}
	n.open[id]++
	return &handle{node: n, v: v, r: n.fsys.opt.OpenReader(v)}, fuseFlags, 0
}

func (n *fileNode) otherVersionOpenLocked(id string) bool {
	for other, count := range n.open {
		if other != id && count > 0 {
			return true
		}
	}
	return false
}

func (n *fileNode) closed(v object.Version) {
	n.mu.Lock()
	defer n.mu.Unlock()
	id := v.Identity()
	if n.open[id]--; n.open[id] <= 0 {
		delete(n.open, id)
	}
}

// markStale records that version v changed or was deleted, so that the next
// open and the next listing ask for the current version. A late answer
// about an older version than the node's does not touch the node: handles
// of the newer version stay readable.
func (n *fileNode) markStale(v object.Version) {
	n.mu.Lock()
	if n.stale && n.v.Identity() == v.Identity() {
		n.mu.Unlock()
		return // known already: the kernel's readahead fails several reads at once
	}
	n.mu.Unlock()
	n.fsys.discard(v)
	n.mu.Lock()
	if n.v.Identity() != v.Identity() {
		n.mu.Unlock()
		return
	}
	n.stale = true
	n.lastOpened = ""
	n.mu.Unlock()
	n.fsys.meta.invalidate(v.Key)
	// The kernel's page cache still holds pages of the gone version, which
	// open handles would go on reading without asking us: drop them, so
	// that cached and uncached ranges alike fail (see gone). Not from this
	// goroutine: it serves a read whose page the kernel keeps locked until
	// we answer, and the invalidation waits for that lock.
	go n.NotifyContent(0, 0)
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
	if err := h.node.gone(h.v); err != nil {
		return nil, h.node.fsys.errno(err, "read", h.v.Key)
	}
	start := time.Now()
	n, err := h.r.ReadAt(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, object.ErrChanged) || errors.Is(err, object.ErrNotFound) {
			// Changed or deleted under an open handle: this handle's
			// version is gone for good, and the next open must ask.
			h.node.markStale(h.v)
			err = fmt.Errorf("%w: %w", object.ErrChanged, err)
		}
		return nil, h.node.fsys.errno(err, "read", h.v.Key, "offset", off, "length", len(dest), "duration", time.Since(start))
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.r.Close()
	h.node.closed(h.v)
	return 0
}
