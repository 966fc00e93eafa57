package fs

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"s3docs/internal/object"
)

// Parts is what the tree needs of the splitter.
type Parts interface {
	PageCount(ctx context.Context, v object.Version) (int, error)
	// Part returns an open file holding pages from..thru of v as a PDF.
	Part(ctx context.Context, v object.Version, from, thru int) (*os.File, error)
}

// partsRoot is the name of the tree of parts at the mount root. The root
// does not list it, so find, du and updatedb never make a PDF be parsed.
const partsRoot = ".parts"

// pagesXattr offers the page count of a PDF on the PDF itself.
const pagesXattr = "user.s3docs.pages"

func partsIno(prefix string) uint64 { return hashIno("p:" + prefix) }

// partsDirNode mirrors the directory prefix under .parts/: it lists the
// subdirectories and one directory per PDF.
type partsDirNode struct {
	gofs.Inode
	readOnlyDir
	fsys   *FS
	prefix string
}

var (
	_ gofs.NodeLookuper       = (*partsDirNode)(nil)
	_ gofs.NodeOpendirHandler = (*partsDirNode)(nil)
	_ gofs.NodeOnForgetter    = (*partsDirNode)(nil)
)

func (n *partsDirNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.fillDirAttr(&out.Attr, partsIno(n.prefix))
	return 0
}

func (n *partsDirNode) OnForget() { n.fsys.nodes.forgotten(&n.Inode) }

// Lookup answers names as the directory it mirrors does (see resolve):
// a PDF is a directory of parts, a directory is mirrored, anything else
// is not there.
func (n *partsDirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	a, err := n.fsys.resolve(ctx, n.prefix, name)
	if err != nil {
		return nil, n.fsys.errno(err, "lookup", n.prefix+name)
	}
	if ch, ok := n.child(ctx, entry{Name: name, Dir: a.kind == isDir, Version: a.v}, a.kind, out); ok {
		return ch, 0
	}
	return nil, syscall.ENOENT
}

func (n *partsDirNode) child(ctx context.Context, e entry, kind entryKind, out *fuse.EntryOut) (*gofs.Inode, bool) {
	switch {
	case kind == isFile && isPDFKey(e.Name):
		return n.fsys.pdfPartsChild(ctx, &n.Inode, e.Version, out), true
	case kind == isDir:
		return n.fsys.partsDirChild(ctx, &n.Inode, n.prefix+e.Name+"/", out), true
	}
	return nil, false
}

// OpendirHandle lists the subdirectories and the PDFs of the directory it
// mirrors, streamed like the directory itself.
func (n *partsDirNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{
		fsys: n.fsys,
		dir:  n.prefix,
		child: func(ctx context.Context, e entry, out *fuse.EntryOut) (*gofs.Inode, bool) {
			return n.child(ctx, e, answerOf(e).kind, out)
		},
		dirent: func(e entry) (fuse.DirEntry, bool) {
			switch {
			case e.Dir:
				return fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFDIR, Ino: partsIno(n.prefix + e.Name + "/")}, true
			case isPDFKey(e.Name):
				return fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFDIR, Ino: partsIno(e.Version.Key)}, true
			}
			return fuse.DirEntry{}, false
		},
		lookup: n.Lookup,
	}, 0, 0
}

// partsDirChild returns the node mirroring the directory prefix.
func (f *FS) partsDirChild(ctx context.Context, parent *gofs.Inode, prefix string, out *fuse.EntryOut) *gofs.Inode {
	ino := partsIno(prefix)
	f.fillDirAttr(&out.Attr, ino)
	return f.nodes.node(ino, func() *gofs.Inode {
		return parent.NewInode(ctx, &partsDirNode{fsys: f, prefix: prefix}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino})
	})
}

// pdfPartsChild returns the directory of v's parts; an existing node
// learns the new version (see fileChild).
func (f *FS) pdfPartsChild(ctx context.Context, parent *gofs.Inode, v object.Version, out *fuse.EntryOut) *gofs.Inode {
	ino := partsIno(v.Key)
	f.fillDirAttr(&out.Attr, ino)
	ch := f.nodes.node(ino, func() *gofs.Inode {
		return parent.NewInode(ctx, &pdfPartsNode{fsys: f, objectNode: objectNode{state: newVersions(v)}}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino})
	})
	pn := ch.Operations().(*pdfPartsNode)
	pn.apply(pn.listed(v))
	return ch
}

// pdfPartsNode is the directory of one PDF's parts. Listing it needs only
// the page count; a part is made when it is looked up. Its version follows
// the same rules as the file's (versions): a part of a version found gone
// is not made; the next lookup asks the store.
type pdfPartsNode struct {
	gofs.Inode
	readOnlyDir
	objectNode
	fsys *FS
}

var (
	_ gofs.NodeLookuper       = (*pdfPartsNode)(nil)
	_ gofs.NodeOpendirHandler = (*pdfPartsNode)(nil)
	_ gofs.NodeOnForgetter    = (*pdfPartsNode)(nil)
)

func (n *pdfPartsNode) OnForget() { n.fsys.nodes.forgotten(&n.Inode) }

// apply carries out a transition's effects. The directory has no pages of
// its own to drop: a part of another version is another inode (partIno).
func (n *pdfPartsNode) apply(e effects) {
	if e.discard.Key != "" {
		n.fsys.discard(e.discard)
	}
	if e.forgetAnswer {
		n.fsys.meta.invalidate(n.version().Key)
	}
}

// currentVersion is the version to split: the newest known, asked of the
// store first if that one was found gone.
func (n *pdfPartsNode) currentVersion(ctx context.Context) (object.Version, error) {
	fresh, asked, err := n.headIfStale(ctx, n.fsys)
	if err != nil {
		return asked, err
	}
	n.mu.Lock()
	var e effects
	if fresh.Key != "" {
		e = n.state.headed(asked, fresh)
	}
	v := n.state.current()
	n.mu.Unlock()
	n.apply(e)
	return v, nil
}

// splitFailed notes a version the splitter found changed under it (its
// GETs were answered 412): the next lookup asks the store.
func (n *pdfPartsNode) splitFailed(v object.Version, err error) {
	if errors.Is(err, object.ErrChanged) {
		n.apply(n.failed(v))
	}
}

func (n *pdfPartsNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.fillDirAttr(&out.Attr, partsIno(n.version().Key))
	return 0
}

// OpendirHandle lists the parts from the page count alone. Its handle
// answers the kernel's READDIRPLUS lookups with "no attributes" (not
// ENOENT): a lookup makes the part, and listing must not make every part.
func (n *pdfPartsNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	v, err := n.currentVersion(ctx)
	if err != nil {
		return nil, 0, n.fsys.errno(err, "head", v.Key)
	}
	count, err := n.fsys.opt.Parts.PageCount(ctx, v)
	if err != nil {
		n.splitFailed(v, err)
		return nil, 0, n.fsys.errno(err, "page count", v.Key)
	}
	h := &partsListing{}
	for _, name := range listedParts(count, n.fsys.opt.PartPages) {
		from, thru, _ := parsePartName(name)
		h.entries = append(h.entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG, Ino: partIno(v, from, thru)})
	}
	return h, 0, 0
}

// partsListing is an open PDF parts directory.
type partsListing struct {
	entries []fuse.DirEntry
	next    int
}

var (
	_ gofs.FileReaddirenter = (*partsListing)(nil)
	_ gofs.FileLookuper     = (*partsListing)(nil)
	_ gofs.FileSeekdirer    = (*partsListing)(nil)
)

func (h *partsListing) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if h.next >= len(h.entries) {
		return nil, 0
	}
	e := h.entries[h.next]
	h.next++
	e.Off = uint64(h.next)
	return &e, 0
}

// Seekdir takes the offset of the last entry read: entry k has offset k+1.
func (h *partsListing) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.next = int(min(off, uint64(len(h.entries))))
	return 0
}

func (h *partsListing) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.ENOENT
}

// partIno includes the version: a part of a changed PDF is another file,
// and the kernel must not serve it from the old one's page cache (parts are
// opened with FOPEN_KEEP_CACHE).
func partIno(v object.Version, from, thru int) uint64 {
	return hashIno("part:" + v.Key + "\x00" + v.Identity() + "\x00" + strconv.Itoa(from) + "-" + strconv.Itoa(thru))
}

func (n *pdfPartsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	from, thru, ok := parsePartName(name)
	if !ok || from < 1 || thru < from {
		return nil, syscall.ENOENT
	}
	v, err := n.currentVersion(ctx)
	if err != nil {
		return nil, n.fsys.errno(err, "head", v.Key)
	}
	count, err := n.fsys.opt.Parts.PageCount(ctx, v)
	if err != nil {
		n.splitFailed(v, err)
		return nil, n.fsys.errno(err, "page count", v.Key)
	}
	if thru > count {
		return nil, syscall.ENOENT
	}
	// Made now, so that stat gives the exact size.
	f, err := n.fsys.opt.Parts.Part(ctx, v, from, thru)
	if err != nil {
		n.splitFailed(v, err)
		return nil, n.fsys.errno(err, "split "+name, v.Key)
	}
	info, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, n.fsys.errno(err, "split "+name, v.Key)
	}
	p := partFile{v: v, from: from, thru: thru, size: info.Size()}
	ino := partIno(v, from, thru)
	n.fsys.fillPartAttr(&out.Attr, ino, p)
	// A part of another version is another inode; the same one only needs
	// the size of the file just made.
	ch := n.fsys.nodes.node(ino, func() *gofs.Inode {
		return n.NewInode(ctx, &partNode{fsys: n.fsys, part: p}, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ino})
	})
	ch.Operations().(*partNode).set(p)
	return ch, 0
}

type partFile struct {
	v          object.Version
	from, thru int
	size       int64
}

// partNode is one part: a small PDF file kept in the cache.
type partNode struct {
	gofs.Inode
	fsys *FS
	mu   sync.Mutex
	part partFile
	// io is what the kernel allows the next open (see ioModes): a part is
	// one whole file, so it passes through whenever passthrough is on.
	io ioModes
}

var (
	_ gofs.NodeOpener      = (*partNode)(nil)
	_ gofs.NodeGetattrer   = (*partNode)(nil)
	_ gofs.NodeOnForgetter = (*partNode)(nil)
)

func (n *partNode) OnForget() { n.fsys.nodes.forgotten(&n.Inode) }

func (n *partNode) set(p partFile) {
	n.mu.Lock()
	n.part = p
	n.mu.Unlock()
}

func (n *partNode) get() partFile {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.part
}

func (f *FS) fillPartAttr(a *fuse.Attr, ino uint64, p partFile) {
	f.fillFileAttr(a, object.Version{Key: p.v.Key, Size: p.size, ModTime: p.v.ModTime})
	a.Ino = ino
}

func (n *partNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.fillPartAttr(&out.Attr, n.StableAttr().Ino, n.get())
	return 0
}

func (n *partNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if opensForWriting(flags) {
		return nil, 0, syscall.EROFS
	}
	p := n.get()
	id := p.identity()
	n.mu.Lock()
	mode := n.io.mode(id, n.fsys.passthrough.Load())
	n.mu.Unlock()
	if mode == openConflict {
		n.fsys.log.Warn("a part of an older version is open with passthrough; the new one opens once it is closed",
			"key", p.v.Key, "version", p.v.Identity(), "from", p.from, "thru", p.thru)
		return nil, 0, syscall.EBUSY
	}
	// Made again if it was evicted since the lookup; the pages are the
	// same (a handle that must pass through reads the inode's backing
	// file, the part as first opened).
	f, err := n.fsys.opt.Parts.Part(ctx, p.v, p.from, p.thru)
	if err != nil {
		return nil, 0, n.fsys.errno(err, "open part", p.v.Key)
	}
	pass := mode == openMayPass || mode == openMustPass
	n.mu.Lock()
	n.io.opened(id, pass)
	n.mu.Unlock()
	h := partHandle{node: n, fsys: n.fsys, part: p, f: f}
	if pass {
		n.fsys.passthroughOpens.Add(1)
		return &partPassHandle{h}, 0, 0
	}
	return &h, fuse.FOPEN_KEEP_CACHE, 0
}

// identity names what a part holds: its pages of one version.
func (p partFile) identity() string {
	return p.v.Identity() + "\x00" + strconv.Itoa(p.from) + "-" + strconv.Itoa(p.thru)
}

func (n *partNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
func (n *partNode) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}
func (n *partNode) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }

// Getxattr of a part: parts have no attributes.
func (n *partNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return readOnlyDir{}.Getxattr(ctx, attr, dest)
}

// partHandle reads an open part file; the file stays readable even if the
// cache evicts it meanwhile (it is unlinked, never changed).
type partHandle struct {
	node *partNode
	fsys *FS
	part partFile
	f    *os.File
}

func (h *partHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.f.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, h.fsys.errno(err, "read part", h.part.v.Key, "offset", off, "length", len(dest))
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *partHandle) Release(ctx context.Context) syscall.Errno {
	h.f.Close()
	h.node.closed(false)
	return 0
}

// partPassHandle is a part the kernel reads from its file (FUSE
// passthrough).
type partPassHandle struct{ partHandle }

var _ gofs.FilePassthroughFder = (*partPassHandle)(nil)

func (h *partPassHandle) PassthroughFd() (int, bool) { return int(h.f.Fd()), true }

func (h *partPassHandle) Release(ctx context.Context) syscall.Errno {
	h.f.Close()
	h.node.closed(true)
	return 0
}

func (n *partNode) closed(pass bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.io.released(pass)
}

// Getxattr offers the page count of a PDF; it is computed on first ask.
func (n *fileNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if errno := noXattrNamespace(attr); errno != 0 {
		return 0, errno
	}
	v := n.version()
	if attr != pagesXattr || n.fsys.opt.Parts == nil || !isPDFKey(v.Key) {
		return 0, syscall.ENODATA
	}
	count, err := n.fsys.opt.Parts.PageCount(ctx, v)
	if errors.Is(err, object.ErrNotFound) {
		return 0, syscall.ENODATA // a .pdf that is not a PDF has no page count
	}
	if err != nil {
		return 0, n.fsys.errno(err, "page count", v.Key)
	}
	val := strconv.Itoa(count)
	if len(dest) == 0 {
		return uint32(len(val)), 0 // the caller asks for the size first
	}
	if len(dest) < len(val) {
		return uint32(len(val)), syscall.ERANGE
	}
	return uint32(copy(dest, val)), 0
}

// noXattrNamespace answers ENOTSUP for the attributes of namespaces that
// the tree has none of (security.*, system.*, trusted.*): `ls -l` asks
// for security.selinux of every file, and stops asking for the rest of
// the mount after one ENOTSUP, where ENODATA costs a request per file.
func noXattrNamespace(attr string) syscall.Errno {
	if strings.HasPrefix(attr, "user.") {
		return 0
	}
	return syscall.ENOTSUP
}

// Getxattr of a directory: directories have no attributes.
func (readOnlyDir) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if errno := noXattrNamespace(attr); errno != 0 {
		return 0, errno
	}
	return 0, syscall.ENODATA
}

func (n *fileNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if n.fsys.opt.Parts == nil || !isPDFKey(n.version().Key) {
		return 0, 0
	}
	names := pagesXattr + "\x00"
	if len(dest) == 0 {
		return uint32(len(names)), 0
	}
	if len(dest) < len(names) {
		return uint32(len(names)), syscall.ERANGE
	}
	return uint32(copy(dest, names)), 0
}
