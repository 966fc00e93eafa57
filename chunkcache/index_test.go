package chunkcache

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func names(es []entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.name)
	}
	return out
}

// The index evicts by bytes, least recently used first, and never an entry
// someone holds; a file admitted again under another name replaces the old
// one, which is no eviction.
func TestIndexEvictsLeastRecentlyUsedSparingHeld(t *testing.T) {
	x := newIndex(30)
	add := func(id string, size int64) []entry {
		t.Helper()
		replaced, victims := x.add(id, entry{name: id + "-file", size: size})
		if len(replaced) != 0 {
			t.Fatalf("add %s replaced %v", id, names(replaced))
		}
		return victims
	}
	for _, id := range []string{"a", "b", "c"} {
		if v := add(id, 10); len(v) != 0 {
			t.Fatalf("evicted %v within the bound", names(v))
		}
	}
	if _, _, ok := x.get("a", time.Now()); !ok { // a is now the most recent
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
	replaced, victims := x.add("e", entry{name: "e-newer", size: 5})
	if !slices.Equal(names(replaced), []string{"e-file"}) || len(victims) != 0 {
		t.Fatalf("readmitted e: replaced %v, evicted %v", names(replaced), names(victims))
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

// get refreshes an entry's mtime at most once per touchEvery.
func TestIndexTouchesAtMostOncePerPeriod(t *testing.T) {
	x := newIndex(100)
	start := time.Now()
	x.add("a", entry{name: "a", size: 1, touched: start})
	for _, tc := range []struct {
		after time.Duration
		touch bool
	}{{time.Minute, false}, {touchEvery + time.Second, true}, {touchEvery + 2*time.Second, false}, {2*touchEvery + 2*time.Second, true}} {
		if _, touch, _ := x.get("a", start.Add(tc.after)); touch != tc.touch {
			t.Errorf("get after %v: touch %v, want %v", tc.after, touch, tc.touch)
		}
	}
}

// A full disk lowers the bound to what is held less the headroom (never
// under the floor); room coming back raises it, never past the maximum.
func TestIndexBoundShrinksAndRises(t *testing.T) {
	x := newIndex(100)
	for i := range 8 {
		x.add(fmt.Sprint(i), entry{name: fmt.Sprint(i), size: 10})
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

// reset indexes what a directory holds, oldest first, keeps the newer of
// two files for one id, evicts down to the bound and keeps holds.
func TestIndexReset(t *testing.T) {
	x := newIndex(25)
	x.add("gone", entry{name: "gone", size: 10})
	x.hold("b", 1)
	found := []indexed{
		{"a", entry{name: "a-old", size: 10}},
		{"b", entry{name: "b", size: 10}},
		{"a", entry{name: "a-new", size: 10}},
		{"c", entry{name: "c", size: 10}},
	}
	dups, victims, n, total := x.reset(found)
	if !slices.Equal(names(dups), []string{"a-old"}) {
		t.Fatalf("dups %v, want a-old", names(dups))
	}
	// Oldest first is b (held, spared), then a.
	if !slices.Equal(names(victims), []string{"a-new"}) || n != 2 || total != 20 {
		t.Fatalf("evicted %v, %d entries of %d bytes; want a-new evicted, 2 entries of 20", names(victims), n, total)
	}
	if x.has("gone") || !x.has("b") || !x.has("c") {
		t.Fatal("reset kept what it had before, or lost what it found")
	}
}
