package listing

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

// tree is a Lister with a context as a file system gives it: stop ends
// every listing.
type tree struct {
	*Lister
	ctx  context.Context
	stop context.CancelFunc
}

func newTree(t *testing.T, store Store, pageTimeout time.Duration) *tree {
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	return &tree{Lister: New(store, pageTimeout), ctx: ctx, stop: stop}
}

func (f *tree) listDir(dir string) *Stream { return f.List(f.ctx, dir) }

// listPositions reads a whole listing of dir.
func listPositions(t *testing.T, f *tree, dir string) ([]string, error) {
	t.Helper()
	l := f.listDir(dir)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []string
	for {
		e, ok, err := l.Next(ctx)
		if err != nil || !ok {
			return out, err
		}
		out = append(out, e.Pos())
	}
}

// nameFamilies are directories as document stores name them; the lister
// must find cuts in each without knowing which it is.
func nameFamilies(n int) map[string][]string {
	fam := map[string][]string{}
	for i := 0; i < n; i++ {
		fam["padded"] = append(fam["padded"], fmt.Sprintf("k%06d.txt", i))
		fam["unpadded"] = append(fam["unpadded"], fmt.Sprintf("invoice-%d.pdf", i))
		fam["hex"] = append(fam["hex"], fmt.Sprintf("%x", sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16)}))[:20])
		fam["utf8"] = append(fam["utf8"], fmt.Sprintf("文書-%05d.pdf", i))
		if i%10 == 0 {
			fam["dirs"] = append(fam["dirs"], fmt.Sprintf("d%05d/x.pdf", i), fmt.Sprintf("d%05d/y/z.pdf", i))
		} else {
			fam["dirs"] = append(fam["dirs"], fmt.Sprintf("d%05d.pdf", i))
		}
	}
	return fam
}

// TestListingCutsAndKeepsOrder lists directories of 10,000 names in pages
// of 100: every entry comes once and in order, parts are listed at once
// until the end, and probing costs few requests beyond the pages themselves.
// The store's delay runs on the bubble's fake clock (synctest): how
// requests overlap does not depend on the machine's load.
func TestListingCutsAndKeepsOrder(t *testing.T) {
	for family, names := range nameFamilies(10000) {
		t.Run(family, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store, got := listInPages(t, names)
				pages := (len(got) + 99) / 100
				lists := int(store.Lists.Load())
				alone := int(store.Alone.Load())
				t.Logf("%s: %d entries, %d pages: %d requests, %d at once at most, %d alone", family, len(got), pages, lists, store.MaxInFlight.Load(), alone)
				if lists > pages+pages/5+10 {
					t.Errorf("%d requests for %d pages", lists, pages)
				}
				if store.MaxInFlight.Load() < 2 {
					t.Errorf("parts were not listed at once")
				}
				// A part that ended on a page boundary once stopped all finer
				// cuts: the rest of the directory went one page at a time.
				if alone > pages/4 {
					t.Errorf("%d of %d requests ran with no other in flight", alone, lists)
				}
			})
		})
	}
}

// listInPages lists a directory of names (under dir/) from a store that
// answers in pages of 100, slowly enough for parts to overlap, checks that
// every entry comes once and in order, and returns the store (for its
// counters) and the entries.
func listInPages(t *testing.T, names []string) (*testenv.MemStore, []string) {
	t.Helper()
	store := &testenv.MemStore{Objs: map[string]object.Version{}, PageSize: 100, ListDelay: 2 * time.Millisecond}
	want := map[string]bool{}
	for _, name := range names {
		store.Objs["dir/"+name] = testenv.Version("dir/"+name, `"e"`, 1)
		if i := strings.IndexByte(name, '/'); i >= 0 {
			want[name[:i+1]] = true
		} else {
			want[name] = true
		}
	}
	wantSorted := make([]string, 0, len(want))
	for p := range want {
		wantSorted = append(wantSorted, p)
	}
	sort.Strings(wantSorted)
	f := newTree(t, store, 0)
	got, err := listPositions(t, f, "dir/")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, wantSorted) {
		t.Fatalf("listed %d entries, want %d; first difference at %d", len(got), len(wantSorted), firstDiff(got, wantSorted))
	}
	return store, got
}

// Names of one CJK character each share a byte or two on a page, never a
// whole character: the directory is cut where a character's first bytes
// change (at U+4FFF, U+5FFF, ...), so parts are listed at once. Before,
// no cut was valid UTF-8 and all 100 requests ran one at a time. Groups of
// the first byte hold 5 to 41 pages and those of two bytes less than one,
// so about half the requests still run alone.
func TestListingCutsInsideCharacters(t *testing.T) {
	var names []string
	for i := 0; i < 10000; i++ {
		names = append(names, string(rune(0x4E00+i))+".pdf")
	}
	synctest.Test(t, func(t *testing.T) {
		store, _ := listInPages(t, names)
		lists, alone := int(store.Lists.Load()), int(store.Alone.Load())
		t.Logf("%d requests for 100 pages, %d at once at most, %d alone", lists, store.MaxInFlight.Load(), alone)
		if store.MaxInFlight.Load() < 2 || alone > 2*lists/3 {
			t.Errorf("%d of %d requests ran with no other in flight", alone, lists)
		}
	})
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A directory of one page costs one request.
func TestSmallListingIsOneRequest(t *testing.T) {
	store := &testenv.MemStore{Objs: map[string]object.Version{}}
	for i := 0; i < 999; i++ {
		key := fmt.Sprintf("small/f%03d.pdf", i)
		store.Objs[key] = testenv.Version(key, `"e"`, 1)
	}
	f := newTree(t, store, 0)
	got, err := listPositions(t, f, "small/")
	if err != nil || len(got) != 999 {
		t.Fatalf("%d entries, %v", len(got), err)
	}
	if n := store.Lists.Load(); n != 1 {
		t.Fatalf("%d requests", n)
	}
}

// A listing nobody reads stops fetching, within a bounded window, and
// close ends what is in flight.
func TestListingStopsWhenNobodyReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &testenv.MemStore{Objs: map[string]object.Version{}, PageSize: 100, ListDelay: time.Millisecond}
		for i := 0; i < 50000; i++ {
			key := fmt.Sprintf("big/k%06d", i)
			store.Objs[key] = testenv.Version(key, `"e"`, 1)
		}
		f := newTree(t, store, 0)
		l := f.listDir("big/")
		for i := 0; i < 10; i++ {
			if _, ok, err := l.Next(context.Background()); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
		n := settledLists(store)
		// The window, the page of the part being read, and the probes that
		// found nothing or what a part had (their pages are not kept).
		if limit := int64(windowPages + 1 + 2*maxListParts); n > limit {
			t.Fatalf("%d pages fetched for a reader of 10 entries, want at most %d", n, limit)
		}
		l.Close()
		if m := store.InFlight.Load(); m != 0 {
			t.Fatalf("%d requests in flight after close", m)
		}
		synctest.Wait()
		if store.Lists.Load() != n {
			t.Fatal("requests after close")
		}
	})
}

// settledLists waits, in a bubble, until a listing is at rest: no request
// in flight and every goroutine blocked, so that nothing more happens
// unless the test acts. It returns the count of directory pages.
func settledLists(store *testenv.MemStore) int64 {
	for {
		synctest.Wait()
		if store.InFlight.Load() == 0 {
			return store.Lists.Load()
		}
		// Not waiting for an event: this moves the bubble's fake clock on,
		// so that the requests in flight get past the store's delay.
		time.Sleep(store.ListDelay)
	}
}

// brokenStore answers every listing with a truncated page made by page.
type brokenStore struct {
	calls atomic.Int64
	page  func(req object.ListRequest, n int64) object.Page
}

func (s *brokenStore) ListPage(ctx context.Context, req object.ListRequest) (object.Page, error) {
	return s.page(req, s.calls.Add(1)), nil
}

func (s *brokenStore) Head(ctx context.Context, key string) (object.Version, error) {
	return object.Version{}, object.ErrNotFound
}

// A server whose listing never ends does not make one that never ends.
func TestBrokenListingsEnd(t *testing.T) {
	cases := map[string]func(req object.ListRequest, n int64) object.Page{
		// The same entry again and again, under new tokens.
		"no progress": func(req object.ListRequest, n int64) object.Page {
			return object.Page{Files: []object.Version{testenv.Version("d/a", `"e"`, 1)}, Truncated: true, NextToken: fmt.Sprint(n)}
		},
		// Empty pages, under new tokens.
		"empty pages": func(req object.ListRequest, n int64) object.Page {
			return object.Page{Truncated: true, NextToken: fmt.Sprint(n)}
		},
		// A new name every time, forever.
		"endless": func(req object.ListRequest, n int64) object.Page {
			after := max(req.StartAfter, req.Token)
			key := after + "x"
			if !strings.HasPrefix(key, "d/") {
				key = "d/x"
			}
			return object.Page{Files: []object.Version{testenv.Version(key, `"e"`, 1)}, Truncated: true, NextToken: key}
		},
	}
	for name, page := range cases {
		t.Run(name, func(t *testing.T) {
			store := &brokenStore{page: page}
			f := newTree(t, store, 0)
			_, err := listPositions(t, f, "d/")
			if !errors.Is(err, object.ErrBadListing) {
				t.Fatalf("got %v, want ErrBadListing", err)
			}
			if n := store.calls.Load(); n > maxListPages+maxListParts {
				t.Fatalf("%d requests", n)
			}
			t.Logf("%d requests", store.calls.Load())
		})
	}
}

// One wasted probe at a depth (a page that ended near its group's end)
// does not stop cuts that fine; more waste than pay does, and finer ones.
func TestProbeDepthJudgement(t *testing.T) {
	l := newCuts()
	l.judge(3, false)
	if l.maxDepth != 1<<30 {
		t.Fatalf("one wasted probe at depth 3 lowered maxDepth to %d", l.maxDepth)
	}
	l.judge(3, true)
	l.judge(3, false)
	if l.maxDepth != 1<<30 {
		t.Fatalf("2 wasted and 1 paid at depth 3 lowered maxDepth to %d", l.maxDepth)
	}
	l.judge(3, false)
	if l.maxDepth != 2 {
		t.Fatalf("3 wasted and 1 paid at depth 3: maxDepth %d, want 2", l.maxDepth)
	}
	l.judge(5, false)
	l.judge(5, false)
	if l.maxDepth != 2 {
		t.Fatalf("waste at depth 5 raised maxDepth to %d", l.maxDepth)
	}
}
