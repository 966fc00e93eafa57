package fs

import (
	"context"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"s3docs/fs/listing"
)

// entrySource yields the entries of one directory in order.
type entrySource interface {
	next(ctx context.Context) (entry, bool, error)
	close()
}

// cachedSource reads a listing from the metadata cache.
type cachedSource struct {
	entries []entry
}

func (s *cachedSource) next(context.Context) (entry, bool, error) {
	if len(s.entries) == 0 {
		return entry{}, false, nil
	}
	e := s.entries[0]
	s.entries = s.entries[1:]
	return e, true, nil
}

func (s *cachedSource) close() {}

// dirStream reads a directory from the store (lister) through the rules of
// a name (view). Each entry it yields is also a lookup answer for the TTL,
// and a directory that fits the cache's bound for a listing is kept whole
// when the stream reaches its end.
type dirStream struct {
	f     *FS
	dir   string
	l     *listing.Stream
	v     view
	gen   uint64
	whole []entry // nil once the listing is too big to keep
	size  int64
}

func (f *FS) openDir(dir string) entrySource {
	if l, ok := f.meta.listing(dir); ok {
		return &cachedSource{entries: l.entries}
	}
	s := &dirStream{f: f, dir: dir, gen: f.meta.generation(), whole: []entry{}}
	s.v = view{f: f, dir: dir}
	s.l = f.lister.List(f.ctx, dir)
	return s
}

func (s *dirStream) next(ctx context.Context) (entry, bool, error) {
	for {
		e, ok, err := s.l.Next(ctx)
		if err != nil {
			return entry{}, false, err
		}
		if !ok {
			if s.whole != nil {
				s.f.meta.putListing(s.dir, &dirListing{entries: s.whole}, s.size, s.gen)
				s.whole = nil
			}
			return entry{}, false, nil
		}
		if !s.v.admit(e) {
			continue
		}
		s.f.meta.putAnswer(s.dir+e.Name, answerOf(e), s.gen)
		if s.whole != nil {
			s.size += entrySize(e)
			if s.size <= s.f.meta.maxListingBytes() {
				s.whole = append(s.whole, e)
			} else {
				s.whole = nil
			}
		}
		return e, true, nil
	}
}

func (s *dirStream) close() { s.l.Close() }

// dirHandle is an open directory: the kernel reads it in batches of
// entries (READDIRPLUS), and looks up each entry as it goes, which the
// handle answers from the entry itself. Offsets count entries.
type dirHandle struct {
	fsys *FS
	dir  string
	// child makes the node of an entry, or says it is not shown (the tree
	// of parts shows PDFs only).
	child func(ctx context.Context, e entry, out *fuse.EntryOut) (*gofs.Inode, bool)
	// dirent says how an entry is listed, or that it is not.
	dirent func(e entry) (fuse.DirEntry, bool)

	mu  sync.Mutex
	src entrySource
	off uint64
	// recent is a ring of the last entries yielded (n in all, the next at
	// recent[n%len]): the kernel looks up the entry just read, or, after
	// an interrupted read, the entries of the batch it reads again.
	recent []entry
	n      int
	// lookup answers the kernel's lookup of a name the handle did not just
	// yield.
	lookup func(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno)
}

var (
	_ gofs.FileReaddirenter = (*dirHandle)(nil)
	_ gofs.FileLookuper     = (*dirHandle)(nil)
	_ gofs.FileSeekdirer    = (*dirHandle)(nil)
	_ gofs.FileReleasedirer = (*dirHandle)(nil)
)

func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.src == nil {
		h.src = h.fsys.openDir(h.dir)
	}
	for {
		e, ok, err := h.src.next(ctx)
		if err != nil {
			return nil, h.fsys.errno(err, "list", h.dir)
		}
		if !ok {
			return nil, 0
		}
		de, shown := h.dirent(e)
		if !shown {
			continue
		}
		h.off++
		h.remember(e)
		de.Off = h.off
		return &de, 0
	}
}

// Seekdir goes back to the start, or to the entry after the off-th; the
// kernel does it when a reader rewinds or seeks (telldir/seekdir). A
// stream cannot go back: the directory is read again.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.src != nil && off == h.off {
		return 0
	}
	if h.src != nil {
		h.src.close()
	}
	h.src, h.off = h.fsys.openDir(h.dir), 0
	for h.off < off {
		e, ok, err := h.src.next(ctx)
		if err != nil {
			return h.fsys.errno(err, "list", h.dir)
		}
		if !ok {
			break
		}
		if _, shown := h.dirent(e); shown {
			h.off++
			h.remember(e)
		}
	}
	return 0
}

func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.src != nil {
		h.src.close()
		h.src = nil
	}
}

// recentEntries is how many entries a handle remembers: more than one
// READDIRPLUS reply holds.
const recentEntries = 256

func (h *dirHandle) remember(e entry) {
	if h.recent == nil {
		h.recent = make([]entry, recentEntries)
	}
	h.recent[h.n%recentEntries] = e
	h.n++
}

// Lookup answers the lookup that READDIRPLUS makes of each entry it reads,
// from the entry: a listing needs no request per entry.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	h.mu.Lock()
	var e entry
	found := false
	for i := h.n - 1; i >= max(0, h.n-recentEntries) && !found; i-- {
		e = h.recent[i%recentEntries]
		found = e.Name == name
	}
	h.mu.Unlock()
	if !found {
		return h.lookup(ctx, name, out)
	}
	if ch, ok := h.child(ctx, e, out); ok {
		return ch, 0
	}
	return nil, syscall.ENOENT
}
