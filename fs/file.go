package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"s3docs/internal/object"
)

// fileNode is one object. Its state (versions) holds the newest version the
// tree has seen and the versions its open handles hold; each handle keeps
// the version it was opened at.
//
// Lock order: a node's mu guards its state only. It is never held while
// calling out: the store (HEAD), the chunk cache (discard), the metadata
// cache or the kernel (notifications) are called after it is released,
// with the effects the transition returned (apply).
type fileNode struct {
	gofs.Inode
	objectNode
	fsys *FS
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
		return parent.NewInode(ctx, &fileNode{fsys: f, objectNode: objectNode{state: newVersions(v)}}, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ino})
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
	return n.state.busy()
}

// apply carries out what a transition of the state asked for.
func (n *fileNode) apply(e effects) {
	if e.discard.Key != "" {
		n.fsys.discard(e.discard)
	}
	if e.forgetAnswer {
		n.fsys.meta.invalidate(n.version().Key)
	}
	if e.dropPages {
		n.fsys.dropPages(&n.Inode)
	}
}

// refresh takes the version from a listing or lookup (versions.listed).
func (n *fileNode) refresh(v object.Version) { n.apply(n.listed(v)) }

// gone says why version v can no longer be read, or nil while it can
// (versions.gone).
func (n *fileNode) gone(v object.Version) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state.gone(v)
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
	fresh, asked, err := n.headIfStale(ctx, n.fsys)
	if err != nil {
		return nil, 0, n.fsys.errno(err, "head", asked.Key)
	}
	n.mu.Lock()
	var e effects
	if fresh.Key != "" {
		e = n.state.headed(asked, fresh)
	}
	v, mode, err := n.state.opening(n.fsys.passthrough.Load())
	n.mu.Unlock()
	n.apply(e)
	if err != nil {
		return nil, 0, n.fsys.errno(err, "open", asked.Key)
	}
	if mode == openConflict {
		n.fsys.log.Warn("an older version of the file is open with passthrough; the new one opens once it is closed",
			"key", v.Key, "version", v.Identity())
		return nil, 0, syscall.EBUSY
	}
	open := n.fsys.opt.OpenReader
	if n.fsys.opt.OpenBackgroundReader != nil && backgroundCaller(ctx) {
		open = n.fsys.opt.OpenBackgroundReader
	}
	r := open(v)
	h := handle{node: n, v: v, r: r}
	if mode == openMayPass || mode == openMustPass {
		var backing *os.File
		if b, ok := r.(Backer); ok {
			backing = b.Backing()
		}
		// A handle that must pass through gets the inode's backing file
		// from go-fuse, which registered it for the first such handle,
		// even if the cache could not pin the version again for this one.
		if backing != nil || mode == openMustPass {
			n.mu.Lock()
			n.state.opened(v, true)
			n.mu.Unlock()
			n.fsys.passthroughOpens.Add(1)
			return &passHandle{handle: h, backing: backing}, 0, 0
		}
	}
	n.mu.Lock()
	fuseFlags := n.state.opened(v, false)
	n.mu.Unlock()
	return &h, fuseFlags, 0
}

func (n *fileNode) closed(v object.Version, pass bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.state.released(v, pass)
}

// markStale records that the store answered "changed" or "not found" for
// version v (versions.failed).
func (n *fileNode) markStale(v object.Version) { n.apply(n.failed(v)) }

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
	// io.EOF itself is the end of the version; wrapped in an error, it is
	// a connection the store closed (Go's HTTP client says EOF), and a
	// read answered short without an error would make the kernel take the
	// file for that much shorter.
	if err != nil && err != io.EOF {
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
	h.node.closed(h.v, false)
	return 0
}

// passHandle is an open file the kernel reads from the cache's file of its
// version (FUSE passthrough). Its reads reach the daemon only if the
// kernel did not take the backing file after all: then it reads as a
// handle does.
type passHandle struct {
	handle
	// backing is the cache's file of the version, pinned until Release;
	// nil when the inode's backing file (of the same version) serves.
	backing *os.File
}

var _ gofs.FilePassthroughFder = (*passHandle)(nil)

// PassthroughFd is asked by go-fuse for the inode's first passthrough
// handle; it registers the file with the kernel, which keeps its own
// reference.
func (h *passHandle) PassthroughFd() (int, bool) {
	if h.backing == nil {
		return 0, false
	}
	return int(h.backing.Fd()), true
}

func (h *passHandle) Release(ctx context.Context) syscall.Errno {
	h.r.Close() // closes and unpins the backing file
	h.node.closed(h.v, true)
	return 0
}
