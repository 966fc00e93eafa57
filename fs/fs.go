// Package fs serves a bucket prefix as a read-only FUSE file tree. It
// answers lookups (a HEAD and a one-key listing at once, or a fresh cached
// answer), lists directories (fs/listing), reads each file through the
// chunk cache at the version fixed when it was opened, and presents the
// .parts/ tree of page ranges of each PDF (through Parts). What it learns
// is kept for the metadata TTL within a byte budget; every write answers
// EROFS. It is the only package that imports go-fuse.
package fs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sync/singleflight"

	"s3docs/fs/listing"
	"s3docs/internal/object"
)

// Store is what the tree needs of the object store.
type Store interface {
	// ListPage makes one listing request (ListObjectsV2). A truncated page
	// must carry a continuation token other than the one asked with.
	ListPage(ctx context.Context, req object.ListRequest) (object.Page, error)
	// Head returns the current version of key; object.ErrNotFound if
	// there is no such object.
	Head(ctx context.Context, key string) (object.Version, error)
}

// Reader reads one pinned object version for one open file.
type Reader interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	Close() error
}

// Backer is a Reader that can hand the kernel a file holding exactly its
// version (the chunk cache's, once it holds the version whole), for FUSE
// passthrough: the kernel then reads it without the daemon.
type Backer interface {
	// Backing returns such a file, unchanged until the Reader is closed,
	// or nil.
	Backing() *os.File
}

// Options configure the tree.
type Options struct {
	Store Store
	// OpenReader returns a reader of exactly v (the chunk cache's).
	OpenReader func(v object.Version) Reader
	// OpenBackgroundReader, if set, is OpenReader for files opened by a
	// process in the idle I/O class (ionice -c 3, s3docs warm): background
	// work, whose fetches wait behind everyone else's.
	OpenBackgroundReader func(v object.Version) Reader
	// Discard, if set, is told of a version found gone from the store
	// (replaced or deleted), so that the cache drops what it holds of it:
	// those bytes can never be served again.
	Discard     func(v object.Version)
	MetadataTTL time.Duration
	// MetadataCacheBytes bounds what is kept of listings and lookups for
	// the TTL; 0 means DefaultMetadataCacheBytes.
	MetadataCacheBytes int64
	// LookupTimeout bounds a lookup (HEAD and listing together, retries
	// included), PageTimeout each listing request; 0 means the defaults.
	LookupTimeout, PageTimeout time.Duration
	// Throttled, if set, says whether the store throttles now: then a
	// lookup's listing waits for its HEAD's answer rather than going
	// 20 ms after it (a request in two saved when the HEAD finds a file).
	Throttled func() bool
	UID, GID  uint32
	FileMode  os.FileMode
	DirMode   os.FileMode
	Logger    *slog.Logger
	// Parts, if set, serves the .parts/ tree and the page-count xattr.
	Parts Parts
	// PartPages is the number of pages of each listed part.
	PartPages int
	// Observer, if set, is told of every request the mount answers.
	Observer Observer
	// PassthroughProbe, if set, turns FUSE passthrough on: opens of files
	// that the cache holds whole (see Backer), and of parts, hand the
	// kernel the file to read. At mount it returns a file of the cache's
	// file system to try that on: if the kernel, or the daemon's
	// privileges, refuse it, passthrough stays off (one log line).
	PassthroughProbe func() (*os.File, error)
}

// FS is the file tree of one mount.
type FS struct {
	opt   Options
	log   *slog.Logger
	meta  *metaCache
	nodes *nodeTable
	// pages drops the kernel's cached pages of versions found gone.
	pages *pageDropper
	// lookups shares one remote lookup of a key among its callers.
	lookups singleflight.Group
	// lister lists directories, with one bound on the requests in flight.
	lister *listing.Lister
	warns  *warnOnce
	// ctx ends when the file system is unmounted: listings and lookups in
	// flight stop, and so do the node pruner and the page dropper.
	ctx  context.Context
	stop context.CancelFunc
	// started stands in for directory times: prefixes have none in S3.
	started  time.Time
	errLimit errorLimiter
	// openFiles counts the files open through the mount (OpenFiles).
	openFiles atomic.Int64
	// passthrough: the mount hands the kernel backing files (set at
	// mount, see probePassthrough); passthroughOpens counts the opens
	// that did.
	passthrough      atomic.Bool
	passthroughOpens atomic.Int64
}

func (f *FS) discard(v object.Version) {
	if f.opt.Discard != nil {
		f.opt.Discard(v)
	}
}

// New builds the tree; Mount serves it.
func New(o Options) (*FS, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Parts != nil && o.PartPages <= 0 {
		// Its default is mountopts's --part-pages, passed down.
		return nil, errors.New("fs: PartPages must be positive")
	}
	if o.LookupTimeout <= 0 {
		o.LookupTimeout = DefaultLookupTimeout
	}
	ctx, stop := context.WithCancel(context.Background())
	return &FS{
		opt:     o,
		log:     o.Logger,
		warns:   &warnOnce{seen: map[string]bool{}, log: o.Logger},
		meta:    newMetaCache(o.MetadataTTL, o.MetadataCacheBytes),
		nodes:   newNodeTable(),
		pages:   newPageDropper(),
		lister:  listing.New(o.Store, o.PageTimeout),
		ctx:     ctx,
		stop:    stop,
		started: time.Now(),
	}, nil
}

// inode numbers are a hash of the key, so they survive remounts; files and
// directories hash different strings so "a" and "a/" never collide.
func fileIno(key string) uint64 { return hashIno("f:" + key) }
func dirIno(prefix string) uint64 {
	if prefix == "" {
		return 1
	}
	return hashIno("d:" + prefix)
}

func hashIno(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	// 0 is invalid and 1 is the root; both are vanishingly unlikely anyway.
	return max(h.Sum64(), 2)
}

func (f *FS) fillDirAttr(a *fuse.Attr, ino uint64) {
	a.Ino = ino
	a.Mode = syscall.S_IFDIR | uint32(f.opt.DirMode.Perm())
	a.Nlink = 2
	a.Uid, a.Gid = f.opt.UID, f.opt.GID
	a.Blksize = 4096
	a.SetTimes(nil, &f.started, &f.started)
}

func (f *FS) fillFileAttr(a *fuse.Attr, v object.Version) {
	a.Ino = fileIno(v.Key)
	a.Mode = syscall.S_IFREG | uint32(f.opt.FileMode.Perm())
	a.Nlink = 1
	a.Size = uint64(v.Size)
	a.Blocks = (uint64(v.Size) + 511) / 512
	a.Blksize = 1 << 20
	a.Uid, a.Gid = f.opt.UID, f.opt.GID
	a.SetTimes(nil, &v.ModTime, &v.ModTime)
}

// warnOnce logs a complaint about a key once per daemon lifetime: listings
// are re-read every TTL and must not repeat it.
type warnOnce struct {
	mu   sync.Mutex
	seen map[string]bool
	full bool // maxWarned reached, and said so
	log  *slog.Logger
}

// maxWarned bounds what warnOnce remembers: a bucket of a million Latin-1
// names must not grow the daemon's memory or its log by a line per key.
const maxWarned = 10000

func (w *warnOnce) warn(key, msg string, args ...any) {
	w.mu.Lock()
	k := msg + "\x00" + key
	seen := w.seen[k]
	full := !seen && len(w.seen) >= maxWarned
	if !seen && !full {
		w.seen[k] = true
	}
	first := full && !w.full
	w.full = w.full || full
	w.mu.Unlock()
	switch {
	case first:
		w.log.Warn("too many keys to warn about; further warnings of this kind are suppressed", "limit", maxWarned)
	case !seen && !full:
		w.log.Warn(msg, append([]any{"key", key}, args...)...)
	}
}

// MountOptions are the mount-level settings.
type MountOptions struct {
	AllowOther bool
	// FsName appears as the source in /proc/mounts.
	FsName string
	Debug  bool
}

// Mounted is a live mount.
type Mounted struct {
	server     *fuse.Server
	mountpoint string
	fsys       *FS
	workers    sync.WaitGroup // the node pruner and the page dropper
}

// Mount serves the tree at mountpoint, read-only, and returns once the
// kernel answers requests on it. The tree serves one mount.
func (f *FS) Mount(mountpoint string, mo MountOptions) (*Mounted, error) {
	root := &dirNode{fsys: f, prefix: ""}
	server, err := f.serve(mountpoint, root, f.mountOptions(mo))
	if err != nil {
		f.stop()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	m := &Mounted{server: server, mountpoint: mountpoint, fsys: f}
	f.passthrough.Store(f.probePassthrough(server))
	m.workers.Add(2)
	go func() {
		defer m.workers.Done()
		f.nodes.pruneKernelNodes(f.ctx, root.EmbeddedInode())
	}()
	go func() {
		defer m.workers.Done()
		f.pages.run(f.ctx)
	}()
	return m, nil
}

// serve is gofs.Mount with observedFS between the server and the tree.
func (f *FS) serve(mountpoint string, root *dirNode, opts *gofs.Options) (*fuse.Server, error) {
	var obs Observer = noObserver{}
	if f.opt.Observer != nil {
		obs = f.opt.Observer
	}
	raw := &observedFS{RawFileSystem: gofs.NewNodeFS(root, opts), obs: obs, openFiles: &f.openFiles,
		serialize: &f.passthrough}
	server, err := fuse.NewServer(raw, mountpoint, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		// As gofs.Mount: the serve loop ends by itself when the mount
		// never came up.
		return nil, err
	}
	return server, nil
}

// mountOptions are go-fuse's options for a mount of the tree.
func (f *FS) mountOptions(mo MountOptions) *gofs.Options {
	ttl := f.opt.MetadataTTL
	return &gofs.Options{
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NegativeTimeout: &ttl,
		UID:             f.opt.UID,
		GID:             f.opt.GID,
		RootStableAttr:  &gofs.StableAttr{Ino: 1},
		MountOptions: fuse.MountOptions{
			FsName:      mo.FsName,
			Name:        "s3docs",
			Options:     []string{"ro", "default_permissions"},
			AllowOther:  mo.AllowOther,
			DirectMount: true,
			// 1 MiB requests: fewer round trips through the kernel per chunk.
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			Debug:        mo.Debug,
		},
	}
}

// probePassthrough says whether the kernel takes the cache's files as
// backing files (FUSE passthrough: kernel 6.9 or later, CAP_SYS_ADMIN, a
// cache on a file system that is not itself stacked), by registering one
// and letting it go, and logs it once.
func (f *FS) probePassthrough(server *fuse.Server) bool {
	if f.opt.PassthroughProbe == nil {
		return false
	}
	file, err := f.opt.PassthroughProbe()
	if err != nil {
		f.log.Warn("FUSE passthrough unavailable: every read goes through the daemon", "err", err)
		return false
	}
	defer file.Close()
	id, errno := server.RegisterBackingFd(&fuse.BackingMap{Fd: int32(file.Fd())})
	if errno != 0 {
		f.log.Warn("FUSE passthrough unavailable (kernel 6.9 or later and CAP_SYS_ADMIN needed): every read goes through the daemon",
			"err", errno)
		return false
	}
	server.UnregisterBackingFd(id)
	f.log.Info("FUSE passthrough on: files the cache holds whole, and parts, are read by the kernel without the daemon")
	return true
}

// PassthroughOpens is how many opens were handed a backing file.
func (f *FS) PassthroughOpens() int64 { return f.passthroughOpens.Load() }

// Passthrough says whether the mount hands backing files to the kernel.
func (f *FS) Passthrough() bool { return f.passthrough.Load() }

// Wait returns when the file system is unmounted (by Unmount or by umount),
// and the listings, lookups and pruning it started have stopped.
func (m *Mounted) Wait() {
	m.server.Wait()
	m.fsys.stop()
	m.workers.Wait()
}

// Unmount detaches the mount. If it is busy (a process has a file open or
// its working directory in it) it is detached lazily, and lazy is true: the
// mount point is free at once, and the file system goes away when the last
// user lets go, or when this process exits.
func (m *Mounted) Unmount() (lazy bool, err error) {
	if err := m.server.Unmount(); err == nil {
		return false, nil
	}
	err = syscall.Unmount(m.mountpoint, syscall.MNT_DETACH)
	if errors.Is(err, syscall.EPERM) {
		// Not root: a mount made through fusermount is detached by it.
		err = lazyFusermount(m.mountpoint)
	}
	if err != nil {
		return false, fmt.Errorf("unmount %s: %w", m.mountpoint, err)
	}
	return true, nil
}

func lazyFusermount(mountpoint string) error {
	var err error
	for _, tool := range []string{"fusermount3", "fusermount"} {
		out, rerr := exec.Command(tool, "-u", "-z", mountpoint).CombinedOutput()
		if rerr == nil {
			return nil
		}
		err = fmt.Errorf("%s -u -z: %v: %s", tool, rerr, strings.TrimSpace(string(out)))
	}
	return err
}
