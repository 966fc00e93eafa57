package fs

import (
	"errors"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"s3docs/internal/object"
)

// The transitions of versions, without FUSE: each step is one event the
// tree sees (an open, a listing, a HEAD's answer, a 412 or 404 of a read, a
// release), and what it must decide: the version a handle gets and its open
// flags, whether reads of a handle still serve, and what the tree must do
// (drop a version from the cache, drop the kernel's pages, forget the
// metadata answer).
func TestVersionTransitions(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	v1 := object.Version{Key: "a.pdf", ETag: `"1"`, Size: 10, ModTime: t0}
	v2 := object.Version{Key: "a.pdf", ETag: `"2"`, Size: 20, ModTime: t0.Add(time.Minute)}
	v3 := object.Version{Key: "a.pdf", ETag: `"3"`, Size: 30, ModTime: t0.Add(2 * time.Minute)}
	older := object.Version{Key: "a.pdf", ETag: `"0"`, Size: 5, ModTime: t0.Add(-time.Minute)}
	// v1 and v2 as a gateway that drops the ETag describes them
	noTag1 := object.Version{Key: "a.pdf", Size: 10, ModTime: t0.Add(300 * time.Millisecond)}
	noTag2 := object.Version{Key: "a.pdf", Size: 20, ModTime: t0.Add(time.Minute)}

	type step struct {
		// one event; exactly one of these is set
		open    bool
		listed  *object.Version
		failed  *object.Version // a read of this version got 412 or 404
		headed  *object.Version // the store's answer to the open's HEAD
		release *object.Version
		// an open with passthrough enabled (and whether it got a backing
		// file), or the release of such a handle
		passthrough, pass bool

		// what must follow
		wantOpen    object.Version // the version the handle gets
		wantMode    openMode
		wantFlags   uint32
		wantOpenErr bool
		wantHead    bool // needsHead before this open
		wantEffects effects
		// handles of these versions may read after the step; of these not
		readable, notReadable []object.Version
	}
	keep, direct := uint32(fuse.FOPEN_KEEP_CACHE), uint32(fuse.FOPEN_DIRECT_IO)
	tests := []struct {
		name  string
		steps []step
	}{
		{"open, reopen keeps the page cache", []step{
			{open: true, wantOpen: v1, readable: []object.Version{v1}},
			{release: &v1},
			{open: true, wantOpen: v1, wantFlags: keep},
		}},
		{"an overwrite seen by a listing", []step{
			{open: true, wantOpen: v1},
			{listed: &v2, wantEffects: effects{discard: v1, dropPages: true},
				readable: []object.Version{v2}, notReadable: []object.Version{v1}},
			{open: true, wantOpen: v2, wantFlags: direct}, // v1 is still open
			{release: &v1},
			{open: true, wantOpen: v2}, // the page cache starts afresh
			{open: true, wantOpen: v2, wantFlags: keep},
		}},
		{"the same version without its ETag changes nothing, either way", []step{
			{open: true, wantOpen: v1},
			{listed: &noTag1, readable: []object.Version{v1}},
			{open: true, wantOpen: v1, wantFlags: keep, readable: []object.Version{v1}},
		}},
		{"an overwrite seen without its ETag, then with it", []step{
			{open: true, wantOpen: v1},
			{listed: &noTag2, wantEffects: effects{discard: v1, dropPages: true},
				readable: []object.Version{noTag2}, notReadable: []object.Version{v1}},
			{open: true, wantOpen: noTag2, wantFlags: direct},
			{listed: &v2, readable: []object.Version{noTag2}},
			{listed: &v3, wantEffects: effects{discard: noTag2, dropPages: true},
				readable: []object.Version{v3}, notReadable: []object.Version{noTag2}},
		}},
		{"the same listing twice changes nothing", []step{
			{listed: &v1},
			{listed: &v1, readable: []object.Version{v1}},
		}},
		{"a listing older than what is known is ignored", []step{
			{listed: &older, readable: []object.Version{v1}, notReadable: []object.Version{older}},
		}},
		{"412: the next open asks the store and gets the new version", []step{
			{open: true, wantOpen: v1},
			{failed: &v1, wantEffects: effects{discard: v1, dropPages: true, forgetAnswer: true},
				notReadable: []object.Version{v1}},
			{failed: &v1}, // the kernel's readahead fails several reads at once: once is enough
			{listed: &v1, notReadable: []object.Version{v1}}, // a listing of the gone version does not revive it
			{headed: &v2, wantEffects: effects{discard: v1, dropPages: true}, wantHead: true},
			{open: true, wantOpen: v2, wantFlags: direct, readable: []object.Version{v2}, notReadable: []object.Version{v1}},
		}},
		{"404 then the same version again (a transient miss)", []step{
			{open: true, wantOpen: v1},
			{failed: &v1, wantEffects: effects{discard: v1, dropPages: true, forgetAnswer: true}},
			{headed: &v1, wantHead: true}, // same identity: nothing to drop
			{open: true, wantOpen: v1, readable: []object.Version{v1}},
		}},
		{"a late 412 for an older version leaves the newer one alone", []step{
			{open: true, wantOpen: v1},
			{listed: &v2, wantEffects: effects{discard: v1, dropPages: true}},
			{open: true, wantOpen: v2, wantFlags: direct},
			{failed: &v1, wantEffects: effects{discard: v1}, readable: []object.Version{v2}},
			{open: true, wantOpen: v2, wantFlags: direct},
		}},
		{"a HEAD answer that comes after a newer listing is ignored", []step{
			{failed: &v1, wantEffects: effects{discard: v1, dropPages: true, forgetAnswer: true}},
			{listed: &v3, wantEffects: effects{discard: v1, dropPages: true}},
			{headed: &v2}, // the node moved on during the HEAD
			{open: true, wantOpen: v3, readable: []object.Version{v3}},
		}},
		{"two versions open at once", []step{
			{open: true, wantOpen: v1},
			{open: true, wantOpen: v1, wantFlags: keep},
			{listed: &v2, wantEffects: effects{discard: v1, dropPages: true}},
			{open: true, wantOpen: v2, wantFlags: direct},
			{open: true, wantOpen: v2, wantFlags: direct},
			{release: &v1},
			{open: true, wantOpen: v2, wantFlags: direct}, // one v1 handle is left
			{release: &v1},
			{open: true, wantOpen: v2},
		}},
		{"passthrough: the version's handles share its file; another version waits for them", []step{
			{open: true, passthrough: true, pass: true, wantOpen: v1, wantMode: openMayPass},
			{open: true, passthrough: true, pass: true, wantOpen: v1, wantMode: openMustPass},
			// gone, yet a passthrough handle reads its version: the kernel
			// reads the file, whole and checked
			{listed: &v2, wantEffects: effects{discard: v1, dropPages: true}, notReadable: []object.Version{v1}},
			{open: true, passthrough: true, wantMode: openConflict},
			{release: &v1, pass: true},
			{open: true, passthrough: true, wantMode: openConflict},
			{release: &v1, pass: true},
			// v2 is not whole in the cache: no backing file, a plain handle
			{open: true, passthrough: true, wantOpen: v2, wantMode: openMayPass},
			// with a plain handle open, none may pass
			{open: true, passthrough: true, wantOpen: v2, wantMode: openPlain, wantFlags: keep},
			{release: &v2},
			{release: &v2},
			{open: true, passthrough: true, pass: true, wantOpen: v2, wantMode: openMayPass},
			// a passthrough open leaves the page cache alone: the next
			// plain open of the version keeps what it holds
			{release: &v2, pass: true},
			{open: true, wantOpen: v2, wantFlags: keep},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newVersions(v1)
			for i, st := range tt.steps {
				var e effects
				switch {
				case st.open:
					if _, stale := s.needsHead(); stale != st.wantHead {
						t.Fatalf("step %d: needsHead %v, want %v", i, stale, st.wantHead)
					}
					v, mode, err := s.opening(st.passthrough)
					if (err != nil) != st.wantOpenErr {
						t.Fatalf("step %d: open error %v", i, err)
					}
					if err != nil {
						break
					}
					if mode != st.wantMode {
						t.Fatalf("step %d: open mode %d, want %d", i, mode, st.wantMode)
					}
					if mode == openConflict {
						break
					}
					flags := s.opened(v, st.pass)
					if v != st.wantOpen || flags != st.wantFlags {
						t.Fatalf("step %d: opened %s with flags %#x, want %s with %#x", i, v.ETag, flags, st.wantOpen.ETag, st.wantFlags)
					}
				case st.listed != nil:
					e = s.listed(*st.listed)
				case st.failed != nil:
					e = s.failed(*st.failed)
				case st.headed != nil:
					asked, stale := s.needsHead()
					if stale != st.wantHead {
						t.Fatalf("step %d: needsHead %v, want %v", i, stale, st.wantHead)
					}
					e = s.headed(asked, *st.headed)
				case st.release != nil:
					s.released(*st.release, st.pass)
				}
				if e != st.wantEffects {
					t.Fatalf("step %d: effects %+v, want %+v", i, e, st.wantEffects)
				}
				for _, v := range st.readable {
					if err := s.gone(v); err != nil {
						t.Fatalf("step %d: %s not readable: %v", i, v.ETag, err)
					}
				}
				for _, v := range st.notReadable {
					if err := s.gone(v); !errors.Is(err, object.ErrChanged) {
						t.Fatalf("step %d: %s readable (%v), want ErrChanged", i, v.ETag, err)
					}
				}
			}
		})
	}
}

// An open while the version is known gone fails, and says so; busy follows
// the handles.
func TestVersionOpenWhileStaleAndBusy(t *testing.T) {
	v1 := object.Version{Key: "b.pdf", ETag: `"1"`, Size: 1, ModTime: time.Unix(100, 0)}
	s := newVersions(v1)
	if s.busy() {
		t.Fatal("busy before any open")
	}
	v, _, err := s.opening(false)
	if err != nil {
		t.Fatal(err)
	}
	s.opened(v, false)
	if !s.busy() {
		t.Fatal("not busy with a handle open")
	}
	s.failed(v1)
	if _, _, err := s.opening(false); !errors.Is(err, object.ErrChanged) {
		t.Fatalf("open of a gone version: %v, want ErrChanged", err)
	}
	s.released(v1, false)
	if s.busy() {
		t.Fatal("busy after the last release")
	}
}
