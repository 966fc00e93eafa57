package chunkcache

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func names(es []*entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.name)
	}
	return out
}

// blobEntry is an entry of the index that is a file of its own.
func blobEntry(id, name string, size int64) *entry {
	return &entry{id: id, name: name, key: entryKey{kind: kindBlob}, n: size}
}

// The index evicts by bytes, least recently used first, and never an entry
// someone holds; a file admitted again under another name replaces the old
// one, which is no eviction.
func TestIndexEvictsLeastRecentlyUsedSparingHeld(t *testing.T) {
	x := newIndex(30, newGeometry("test", testChunk))
	add := func(id string, size int64) []*entry {
		t.Helper()
		replaced, victims := x.addBlob(blobEntry(id, id+"-file", size))
		if replaced != nil {
			t.Fatalf("add %s replaced %v", id, replaced.name)
		}
		return victims
	}
	for _, id := range []string{"a", "b", "c"} {
		if v := add(id, 10); len(v) != 0 {
			t.Fatalf("evicted %v within the bound", names(v))
		}
	}
	if e, _ := x.getBlob("a", time.Now()); e == nil { // a is now the most recent
		t.Fatal("a not indexed")
	}
	x.hold("b", 1)
	if v := add("d", 10); !slices.Equal(names(v), []string{"c-file"}) {
		t.Fatalf("evicted %v, want c (b is held, a was used)", names(v))
	}
	x.hold("b", -1)
	// A held entry the eviction passed over counts as used: a, d, b now.
	if v := add("e", 15); !slices.Equal(names(v), []string{"a-file", "d-file"}) {
		t.Fatalf("evicted %v, want a then d", names(v))
	}
	if got := x.bytes(); got != 25 {
		t.Fatalf("holds %d bytes, want 25", got)
	}
	replaced, victims := x.addBlob(blobEntry("e", "e-newer", 5))
	if replaced == nil || replaced.name != "e-file" || len(victims) != 0 {
		t.Fatalf("readmitted e: replaced %v, evicted %v", replaced, names(victims))
	}
	if got := x.bytes(); got != 15 {
		t.Fatalf("holds %d bytes after e shrank, want 15", got)
	}
	// Everything held (f by the readers waiting for its download): the
	// bound is overshot rather than a waiter robbed.
	for _, id := range []string{"b", "e", "f"} {
		x.hold(id, 1)
	}
	if v := add("f", 20); len(v) != 0 || x.bytes() != 35 {
		t.Fatalf("evicted %v with every entry held; holds %d", names(v), x.bytes())
	}
}

// get refreshes an object file's mtime at most once per touchEvery.
func TestIndexTouchesAtMostOncePerPeriod(t *testing.T) {
	g := newGeometry("test", testChunk)
	x := newIndex(1<<30, g)
	start := time.Now()
	o := x.object("obj", testChunk, true)
	x.created(o, true)
	o.touched = start.UnixNano()
	k := entryKey{kind: kindChunk}
	x.commit(o, &entry{id: "c0", obj: o, key: k, n: testChunk}, writeRange{})
	for _, tc := range []struct {
		after time.Duration
		touch bool
	}{{time.Minute, false}, {touchEvery + time.Second, true}, {touchEvery + 2*time.Second, false}, {2*touchEvery + 2*time.Second, true}} {
		if e, touch := x.get(o, k, start.Add(tc.after)); e == nil || touch != tc.touch {
			t.Errorf("get after %v: touch %v, want %v", tc.after, touch, tc.touch)
		}
	}
}

// A full disk lowers the bound to what is held less the headroom (never
// under the floor); room coming back raises it, never past the maximum.
func TestIndexBoundShrinksAndRises(t *testing.T) {
	x := newIndex(100, newGeometry("test", testChunk))
	for i := range 8 {
		x.addBlob(blobEntry(fmt.Sprint(i), fmt.Sprint(i), 10))
	}
	victims, limit, lowered := x.shrinkTo(20, 10)
	if !lowered || limit != 60 || len(victims) != 2 || x.bytes() != 60 {
		t.Fatalf("shrink: bound %d (lowered %v), %d evicted, %d held; want 60, 2, 60", limit, lowered, len(victims), x.bytes())
	}
	if _, limit, lowered := x.shrinkTo(55, 10); lowered || limit != 60 {
		t.Fatalf("shrink below the floor: bound %d, lowered %v; want it kept", limit, lowered)
	}
	if raised, ok := x.raiseTo(50); ok || raised != 60 {
		t.Fatalf("raise to less than the bound: %d, %v", raised, ok)
	}
	if raised, ok := x.raiseTo(80); !ok || raised != 80 {
		t.Fatalf("raise to 80: %d, %v", raised, ok)
	}
	if raised, ok := x.raiseTo(500); !ok || raised != 100 || x.bound() != 100 {
		t.Fatalf("raise past the maximum: %d, %v", raised, ok)
	}
}

// reset indexes what a directory holds, oldest first, evicts down to the
// bound, keeps holds, and leaves the objects it held before dead.
func TestIndexReset(t *testing.T) {
	x := newIndex(25, newGeometry("test", testChunk))
	old := x.object("old", 10, true)
	x.created(old, true)
	x.addBlob(blobEntry("gone", "gone", 10))
	x.hold("b", 1)
	found := []*entry{blobEntry("a", "a", 10), blobEntry("b", "b", 10), blobEntry("c", "c", 10)}
	victims, n, total := x.reset(nil, found)
	// Oldest first is a (b is held, and spared).
	if !slices.Equal(names(victims), []string{"a"}) || n != 3 || total != 20 {
		t.Fatalf("evicted %v, %d entries (20 bytes left of %d); want a evicted", names(victims), n, total)
	}
	if e, _ := x.getBlob("gone", time.Now()); e != nil {
		t.Fatal("reset kept what it had before")
	}
	if e, _ := x.getBlob("b", time.Now()); e == nil {
		t.Fatal("reset lost what it found")
	}
	if !old.dead || x.object("old", 10, false) != nil {
		t.Fatal("an object of the directory before is still indexed")
	}
}

// objectWith is an object of size bytes in x, created, holding the entries
// keys (checked).
func objectWith(x *index, id string, size int64, keys ...entryKey) *objFile {
	o := x.object(id, size, true)
	x.created(o, true)
	for _, k := range keys {
		off, n := x.geo.rangeOf(size, k)
		x.commit(o, &entry{id: spanID(id, k), obj: o, key: k, off: off, n: n, verified: true}, writeRange{})
	}
	return o
}

// holes are the parts of a range that no entry of the object holds and no
// download writes: chunks, pieces and fragments each cover theirs.
func TestIndexHoles(t *testing.T) {
	const chunk = 64 << 10 // pieces of 8 KiB, 2 fragments each
	g := newGeometry("test", chunk)
	x := newIndex(1<<30, g)
	size := int64(3*chunk + 5000)
	o := objectWith(x, "obj", size,
		entryKey{kind: kindChunk, idx: 1},
		entryKey{kind: kindPiece, idx: 0, sub: 2},
		entryKey{kind: kindFragment, idx: 0, sub: 6},
		entryKey{kind: kindFragment, idx: 2, sub: 0})
	o.writing = append(o.writing, writeRange{2*chunk + 10000, 3000})
	got := x.holes(o, 0, size)
	want := []writeRange{
		{0, 16 << 10},                           // pieces 0 and 1 of chunk 0
		{28 << 10, chunk - 28<<10},              // fragment 7 of piece 3, pieces 4 to 7
		{2*chunk + 4096, 10000 - 4096},          // chunk 2 after its fragment 0, up to what is written
		{2*chunk + 13000, chunk - 13000 + 5000}, // the rest of chunk 2, and the short last chunk
	}
	if !slices.Equal(got, want) {
		t.Fatalf("holes %v, want %v", got, want)
	}
	if h := x.holes(o, chunk+100, 500); len(h) != 0 {
		t.Fatalf("holes in a chunk held: %v", h)
	}
}

// An object is pinned only whole and checked, within the share of the
// bound; pinned entries are spared; an exported object goes whole.
func TestIndexPinAndExport(t *testing.T) {
	const chunk = 64 << 10
	g := newGeometry("test", chunk)
	x := newIndex(8*chunk, g)
	size := int64(2*chunk + 100)
	o := objectWith(x, "a", size, entryKey{kind: kindChunk, idx: 0}, entryKey{kind: kindChunk, idx: 2})
	if ok, _ := x.pin(o); ok {
		t.Fatal("pinned an object missing a chunk")
	}
	// Chunk 1 as its pieces, one not checked yet (found at a restart).
	for k := range int64(8) {
		objectWith(x, "a", size, entryKey{kind: kindPiece, idx: 1, sub: k})
	}
	o.present[entryKey{kind: kindPiece, idx: 1, sub: 3}].verified = false
	if ok, _ := x.pin(o); ok {
		t.Fatal("pinned an object with an entry not checked")
	}
	o.present[entryKey{kind: kindPiece, idx: 1, sub: 3}].verified = true
	ok, exported := x.pin(o)
	if !ok || !exported || x.pinnedBytes() != size {
		t.Fatalf("pin: %v, exported %v, pinned %d", ok, exported, x.pinnedBytes())
	}
	if ok, exported := x.pin(o); !ok || exported {
		t.Fatalf("second pin: %v, exported again %v", ok, exported)
	}
	// Past half the bound, no other object is pinned.
	b := objectWith(x, "b", 2*chunk, entryKey{kind: kindChunk, idx: 0}, entryKey{kind: kindChunk, idx: 1})
	if ok, _ := x.pin(b); ok {
		t.Fatal("pinned past half the bound")
	}
	// Filling the cache evicts b, never a.
	c := objectWith(x, "c", 4*chunk)
	victims, _ := x.commit(c, &entry{id: "c0", obj: c, key: entryKey{kind: kindChunk}, n: 4 * chunk}, writeRange{})
	for _, v := range victims {
		if v.obj == o {
			t.Fatalf("evicted %s of a pinned object", v.id)
		}
	}
	x.unpin(o)
	x.unpin(o)
	if x.pinnedBytes() != 0 || !o.exported {
		t.Fatalf("unpinned: %d pinned, exported %v", x.pinnedBytes(), o.exported)
	}
	// Now a's entries are due in turn; the first one takes them all.
	for e := o.entries.front; e != nil; e = e.sib.next {
		x.lru.remove(e)
		x.lru.pushBack(e)
	}
	x.limit = x.total - 1
	victims = x.evictLocked()
	if len(victims) != 10 || o.entries.len != 0 {
		t.Fatalf("evicting an exported object took %d entries, left %d; want all 10", len(victims), o.entries.len)
	}
}
