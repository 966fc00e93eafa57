package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// dirNode is a directory: the root or a common prefix.
type dirNode struct {
	gofs.Inode
	readOnlyDir
	fsys   *FS
	prefix string // "" or "a/b/"
}

var (
	_ gofs.NodeLookuper       = (*dirNode)(nil)
	_ gofs.NodeOpendirHandler = (*dirNode)(nil)
	_ gofs.NodeGetattrer      = (*dirNode)(nil)
	_ gofs.NodeOnForgetter    = (*dirNode)(nil)
)

func (n *dirNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.fillDirAttr(&out.Attr, dirIno(n.prefix))
	return 0
}

func (n *dirNode) OnForget() { n.fsys.nodes.forgotten(&n.Inode) }

func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.prefix == "" && name == partsRoot && n.fsys.opt.Parts != nil {
		return n.fsys.partsDirChild(ctx, &n.Inode, "", out), 0
	}
	a, err := n.fsys.resolve(ctx, n.prefix, name)
	if err != nil {
		return nil, n.fsys.errno(err, "lookup", n.prefix+name)
	}
	if ch, ok := n.child(ctx, entry{Name: name, Dir: a.kind == isDir, Version: a.v}, a.kind, out); ok {
		return ch, 0
	}
	return nil, syscall.ENOENT
}

func (n *dirNode) child(ctx context.Context, e entry, kind entryKind, out *fuse.EntryOut) (*gofs.Inode, bool) {
	switch kind {
	case isFile:
		return n.fsys.fileChild(ctx, &n.Inode, e.Version, out), true
	case isDir:
		return n.fsys.dirChild(ctx, &n.Inode, n.prefix+e.Name+"/", out), true
	}
	return nil, false
}

// OpendirHandle streams the directory (see dirHandle).
func (n *dirNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{
		fsys: n.fsys,
		dir:  n.prefix,
		child: func(ctx context.Context, e entry, out *fuse.EntryOut) (*gofs.Inode, bool) {
			return n.child(ctx, e, answerOf(e).kind, out)
		},
		dirent: func(e entry) (fuse.DirEntry, bool) {
			if e.Dir {
				return fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFDIR, Ino: dirIno(n.prefix + e.Name + "/")}, true
			}
			return fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFREG, Ino: fileIno(e.Version.Key)}, true
		},
		lookup: n.Lookup,
	}, 0, 0
}

// dirChild returns the node of the directory prefix, child of parent.
func (f *FS) dirChild(ctx context.Context, parent *gofs.Inode, prefix string, out *fuse.EntryOut) *gofs.Inode {
	ino := dirIno(prefix)
	f.fillDirAttr(&out.Attr, ino)
	return f.nodes.node(ino, func() *gofs.Inode {
		return parent.NewInode(ctx, &dirNode{fsys: f, prefix: prefix}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino})
	})
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
