package fs

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Observer is told of every FUSE request the tree answers: what the
// programs reading the mount see of it. Request runs on the request's
// goroutine, after the answer is made and before it is sent: it must be
// quick.
type Observer interface {
	// Request reports one request of op (a FUSE operation: "lookup",
	// "read", "open", "readdir", ...) answered after d with errno, 0 for
	// success.
	Request(op string, d time.Duration, errno syscall.Errno)
}

// OpenFiles is the number of files (not directories) open through the
// mount now: opens answered without error, less releases.
func (f *FS) OpenFiles() int64 { return f.openFiles.Load() }

// observedFS stands between go-fuse's server and the node tree: it times
// each request and counts open files, in one place for every node type.
// Operations not listed here go straight through: the kernel answers the
// ones that would change something itself (EROFS: the mount is read-only),
// and the rest (forget, flush, locks) cannot fail in a way a reader sees.
//
// While passthrough is on (serialize), it also serializes the opens and
// releases of each inode: go-fuse hands a passthrough open the backing file
// registered for the inode's first one, and lets it go only after the last
// one's Release has returned, so an open that ran between a Release and
// that would be given a file the tree thinks let go (see ioModes).
type observedFS struct {
	fuse.RawFileSystem
	obs       Observer
	openFiles *atomic.Int64
	serialize *atomic.Bool
	inodes    inodeLocks
}

// inodeLocks are locks by node id, made while in use.
type inodeLocks struct {
	mu sync.Mutex
	m  map[uint64]*inodeLock
}

type inodeLock struct {
	sync.Mutex
	users int
}

// lock locks node id and returns its unlock.
func (l *inodeLocks) lock(id uint64) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[uint64]*inodeLock{}
	}
	il := l.m[id]
	if il == nil {
		il = &inodeLock{}
		l.m[id] = il
	}
	il.users++
	l.mu.Unlock()
	il.Lock()
	return func() {
		il.Unlock()
		l.mu.Lock()
		if il.users--; il.users == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}

// serialized runs fn under node id's lock while passthrough is on.
func (o *observedFS) serialized(id uint64, fn func()) {
	if o.serialize == nil || !o.serialize.Load() {
		fn()
		return
	}
	unlock := o.inodes.lock(id)
	defer unlock()
	fn()
}

// noObserver is the Observer of a tree built without one.
type noObserver struct{}

func (noObserver) Request(string, time.Duration, syscall.Errno) {}

func (o *observedFS) done(op string, start time.Time, st fuse.Status) {
	o.obs.Request(op, time.Since(start), syscall.Errno(st))
}

func (o *observedFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Lookup(cancel, h, name, out)
	seen := st
	if st == fuse.OK && out.NodeId == 0 {
		// A name that is not there, answered as go-fuse does with a
		// negative timeout: an entry without a node, which the kernel
		// caches and the reader gets as ENOENT.
		seen = fuse.ENOENT
	}
	o.done("lookup", start, seen)
	return st
}

func (o *observedFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.GetAttr(cancel, in, out)
	o.done("getattr", start, st)
	return st
}

func (o *observedFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	var st fuse.Status
	o.serialized(in.NodeId, func() { st = o.RawFileSystem.Open(cancel, in, out) })
	if st == fuse.OK {
		o.openFiles.Add(1)
	}
	o.done("open", start, st)
	return st
}

func (o *observedFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	start := time.Now()
	res, st := o.RawFileSystem.Read(cancel, in, buf)
	o.done("read", start, st)
	return res, st
}

// Release comes once for every open that succeeded.
func (o *observedFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	o.serialized(in.NodeId, func() { o.RawFileSystem.Release(cancel, in) })
	o.openFiles.Add(-1)
}

func (o *observedFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.OpenDir(cancel, in, out)
	o.done("opendir", start, st)
	return st
}

func (o *observedFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.ReadDir(cancel, in, out)
	o.done("readdir", start, st)
	return st
}

// ReadDirPlus is readdir to the reader (ls, find): the kernel picks which
// of the two to send.
func (o *observedFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.ReadDirPlus(cancel, in, out)
	o.done("readdir", start, st)
	return st
}

func (o *observedFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.GetXAttr(cancel, h, attr, dest)
	o.done("getxattr", start, st)
	return n, st
}

func (o *observedFS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.ListXAttr(cancel, h, dest)
	o.done("listxattr", start, st)
	return n, st
}

func (o *observedFS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.StatFs(cancel, h, out)
	o.done("statfs", start, st)
	return st
}
