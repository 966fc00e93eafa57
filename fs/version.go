package fs

import (
	"context"
	"fmt"
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"

	"s3docs/internal/object"
)

// versions is what the tree knows of one object's versions: the newest it
// has seen, whether that one is known to be gone from the store, and which
// versions open handles hold. It does no I/O and takes no lock: its methods
// are the transitions, each returning what the caller must carry out
// (effects) once it has let go of the lock that guards the state. The rules
// live here, in one place, and are table-tested without FUSE
// (version_test.go); fileNode and pdfPartsNode carry them out.
//
// The rules:
//   - A handle serves the version it opened until the tree learns that the
//     version is gone: a listing or lookup shows another one, or a GET for
//     it was answered "changed" (412) or "not found" (404). From then on
//     every read of it fails, cached ranges included, so that an overwritten
//     and a deleted object behave alike, and a reader never goes on with
//     bytes it would not get again (gone).
//   - A version found gone is dropped from the chunk cache (discard), and
//     the kernel drops the inode's cached pages (dropPages): they belong to
//     the inode, not to a handle, and would otherwise be served to the old
//     handles without asking us.
//   - A listing never takes the node back in time: one that started before
//     a HEAD may carry the older version (listed).
//   - After a 412/404, the next open asks the store (a HEAD) instead of
//     trusting the listing, which may be older than the failure
//     (needsHead, headed).
//   - Two versions open at once must not share the inode's page cache: the
//     later open reads around it (FOPEN_DIRECT_IO), and the next open with
//     the page cache starts afresh. While the same version is opened again
//     and again, the kernel keeps its pages (FOPEN_KEEP_CACHE).
//   - An open may pass through to the cache's file of its version (ioModes
//     says when). Such a handle is read by the kernel alone: it keeps
//     serving its version, whole and verified, even once the tree learns
//     the version is gone (no read reaches gone). While it is open, a new
//     version of the object cannot be opened (EBUSY): the kernel would give
//     it the old version's file.
type versions struct {
	cur object.Version
	// stale: cur was found changed or deleted (a 412 or 404); the next
	// open asks the store.
	stale bool
	// lastOpened is the identity of the version last opened with the page
	// cache; "" makes the next such open drop what the kernel holds.
	lastOpened string
	// open counts open handles by version identity.
	open map[string]int
	// io is what the kernel allows the next open (passthrough or not).
	io ioModes
}

// effects is what a transition asks of the tree, to be done outside the
// node's lock.
type effects struct {
	// discard, if its Key is set, is a version gone from the store: the
	// chunk cache drops what it holds of it.
	discard object.Version
	// dropPages: the kernel must drop the inode's cached pages.
	dropPages bool
	// forgetAnswer: the metadata cache's answer for the key is out of date
	// (it led to a version found gone).
	forgetAnswer bool
}

func newVersions(v object.Version) versions { return versions{cur: v} }

// current is the newest version known.
func (s *versions) current() object.Version { return s.cur }

// listed takes v from a listing or lookup, unless the state knows better:
// this very version was found gone (the next open asks), or a newer one is
// known already.
func (s *versions) listed(v object.Version) effects {
	if s.stale && sameVersion(v, s.cur) {
		return effects{}
	}
	if v.ModTime.Before(s.cur.ModTime) {
		return effects{}
	}
	if v.Identity() != s.cur.Identity() && sameVersion(v, s.cur) {
		// The same version, with its ETag in one answer only: the handles
		// pinned to the one known stay readable.
		return effects{}
	}
	old := s.cur
	s.cur, s.stale = v, false
	return replacedEffects(old, v)
}

// sameVersion says whether a and b are one version of the object. When only
// one of them has an ETag (a gateway that drops it from HEADs or from
// listings), size and Last-Modified are all the other can say, and the
// version is taken as the same if they agree, as for objects without ETag:
// otherwise every listing would turn an unchanged object into a change
// and fail every read of its open handles.
func sameVersion(a, b object.Version) bool {
	if (a.ETag == "") == (b.ETag == "") {
		return a.Identity() == b.Identity()
	}
	return a.Size == b.Size && a.ModTime.Unix() == b.ModTime.Unix()
}

// replacedEffects: moving from old to v drops old if it was another
// version.
func replacedEffects(old, v object.Version) effects {
	if old.Key == "" || old.Identity() == v.Identity() {
		return effects{}
	}
	return effects{discard: old, dropPages: true}
}

// needsHead says whether an open must ask the store first, and for which
// version's successor.
func (s *versions) needsHead() (object.Version, bool) { return s.cur, s.stale }

// headed takes fresh, the store's answer to the HEAD that an open of the
// stale version asked sent. If the state moved on meanwhile (a listing,
// another open), its version is the newer knowledge and fresh is ignored.
func (s *versions) headed(asked, fresh object.Version) effects {
	if !s.stale || s.cur.Identity() != asked.Identity() {
		return effects{}
	}
	s.cur, s.stale = fresh, false
	return replacedEffects(asked, fresh)
}

// opening returns the version an open gets and how it may be served
// (ioModes: passthrough, if enabled, and the inode's other handles allow
// it). It fails if the version was found gone again (during the open's
// HEAD): the next open asks again. The open is recorded by opened.
func (s *versions) opening(passthrough bool) (object.Version, openMode, error) {
	if s.stale {
		return object.Version{}, openPlain, fmt.Errorf("%s changed again during the open: %w", s.cur.Key, object.ErrChanged)
	}
	return s.cur, s.io.mode(s.cur.Identity(), passthrough), nil
}

// opened records an open handle of v (as opening returned it), with
// passthrough or not, and returns the FUSE open flags a handle without
// passthrough needs. A handle with passthrough leaves the page cache alone:
// the kernel reads the backing file's.
func (s *versions) opened(v object.Version, pass bool) uint32 {
	id := v.Identity()
	if s.open == nil {
		s.open = map[string]int{}
	}
	s.open[id]++
	s.io.opened(id, pass)
	if pass {
		return 0
	}
	var flags uint32
	if s.otherVersionOpen(id) {
		// Another version is open and may be filling the page cache: this
		// handle reads around it, and the next cached open starts afresh.
		flags = fuse.FOPEN_DIRECT_IO
		s.lastOpened = ""
	} else {
		if s.lastOpened == id {
			flags = fuse.FOPEN_KEEP_CACHE
		}
		s.lastOpened = id
	}
	return flags
}

func (s *versions) otherVersionOpen(id string) bool {
	for other, count := range s.open {
		if other != id && count > 0 {
			return true
		}
	}
	return false
}

// released records that a handle of v, opened with passthrough or not, was
// closed.
func (s *versions) released(v object.Version, pass bool) {
	id := v.Identity()
	if s.open[id]--; s.open[id] <= 0 {
		delete(s.open, id)
	}
	s.io.released(pass)
}

// busy says whether a handle is open (the kernel cannot forget the inode).
func (s *versions) busy() bool { return len(s.open) > 0 }

// gone says why a handle of v can no longer read, or nil while it can.
func (s *versions) gone(v object.Version) error {
	switch {
	case s.cur.Identity() != v.Identity():
		// Serving the old version, even from cached chunks, would also make
		// the kernel shrink or grow the inode's size to the old one's at
		// the first short read.
		return fmt.Errorf("opened %s, now %s: %w", v.Identity(), s.cur.Identity(), object.ErrChanged)
	case s.stale:
		return fmt.Errorf("opened %s, which has changed or been deleted since: %w", v.Identity(), object.ErrChanged)
	}
	return nil
}

// failed records that the store answered "changed" or "not found" for v. v
// is gone for good, whatever the state holds; if it is the current version,
// the next open and the next listing ask the store again. A late answer
// about an older version leaves the state alone: handles of the newer one
// stay readable. A failure known already asks for nothing: the kernel's
// readahead fails several reads at once.
func (s *versions) failed(v object.Version) effects {
	if s.stale && s.cur.Identity() == v.Identity() {
		return effects{}
	}
	if s.cur.Identity() != v.Identity() {
		return effects{discard: v}
	}
	s.stale = true
	s.lastOpened = ""
	return effects{discard: v, dropPages: true, forgetAnswer: true}
}

// objectNode is the part of a node that stands for one object: the file
// itself (fileNode) and the directory of its parts (pdfPartsNode). mu
// guards state only and is never held while calling out (see fileNode).
type objectNode struct {
	mu    sync.Mutex
	state versions
}

func (o *objectNode) version() object.Version {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state.current()
}

func (o *objectNode) listed(v object.Version) effects {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state.listed(v)
}

func (o *objectNode) failed(v object.Version) effects {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state.failed(v)
}

// headIfStale asks the store for the current version when the state says
// the one it has was found gone (versions.needsHead); fresh is zero when it
// need not ask. The HEAD has the lookup deadline.
func (o *objectNode) headIfStale(ctx context.Context, f *FS) (fresh, asked object.Version, err error) {
	o.mu.Lock()
	asked, stale := o.state.needsHead()
	o.mu.Unlock()
	if !stale {
		return object.Version{}, asked, nil
	}
	hctx, cancel := context.WithTimeout(ctx, f.opt.LookupTimeout)
	defer cancel()
	fresh, err = f.opt.Store.Head(hctx, asked.Key)
	return fresh, asked, err
}
