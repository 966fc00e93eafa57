package listing

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
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

// A directory whose pages cannot be cut (names that share no whole
// character from one end of a page to the other: one CJK character each,
// or invalid UTF-8) is one part, the part being read. A reader that takes
// a few entries and stops must not make it fetch the whole directory.
func TestUncuttableListingStopsWhenNobodyReads(t *testing.T) {
	families := map[string]func(i int) string{
		"cjk":     func(i int) string { return string(rune(0x4E00+i)) + ".pdf" },
		"invalid": func(i int) string { return fmt.Sprintf("\xff%06d", i) },
	}
	for family, name := range families {
		t.Run(family, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := &testenv.MemStore{Objs: map[string]object.Version{}, PageSize: 100, ListDelay: time.Millisecond}
				for i := 0; i < 20000; i++ {
					key := "big/" + name(i)
					store.Objs[key] = testenv.Version(key, `"e"`, 1)
				}
				f := newTree(t, store, 0)
				l := f.listDir("big/")
				defer l.Close()
				for i := 0; i < 10; i++ {
					if _, ok, err := l.Next(context.Background()); !ok || err != nil {
						t.Fatal(ok, err)
					}
				}
				n := settledLists(store)
				if limit := int64(windowPages + 1 + 2*maxListParts); n > limit {
					t.Fatalf("%d pages fetched for a reader of 10 entries, want at most %d", n, limit)
				}
			})
		})
	}
}

// jitterStore delays each listing request by a random time, so that parts
// and probes interleave differently from one run to the next.
// It counts the probes (requests that start after a key) and the probes
// whose page was truncated (that may have cut a part).
type jitterStore struct {
	*testenv.MemStore
	max           time.Duration
	probes, found *atomic.Int64
}

func newJitterStore(s *testenv.MemStore, max time.Duration) jitterStore {
	return jitterStore{s, max, &atomic.Int64{}, &atomic.Int64{}}
}

func (s jitterStore) ListPage(ctx context.Context, req object.ListRequest) (object.Page, error) {
	// Not waiting for an event: a request that takes a random time.
	time.Sleep(time.Duration(rand.Int64N(int64(s.max) + 1)))
	page, err := s.MemStore.ListPage(ctx, req)
	if req.StartAfter != "" && req.Token == "" {
		s.probes.Add(1)
		if page.Truncated {
			s.found.Add(1)
		}
	}
	return page, err
}

// wantPositions is the listing of dir that keys make: every name once,
// a directory as its name and "/", in byte order.
func wantPositions(dir string, keys []string) []string {
	set := map[string]bool{}
	for _, k := range keys {
		name, ok := strings.CutPrefix(k, dir)
		if !ok || name == "" {
			continue
		}
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name = name[:i+1]
		}
		set[name] = true
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// nameBits are the pieces random names are made of: the cut's own
// boundary character, characters on each side of it, 4-byte characters,
// bytes that are not UTF-8, and the characters around '/'.
var nameBits = []string{"a", "a", "b", "0", ".", "-", "é", "文", "\U0010FFFF", "\U0010FFFE", "\U00010000", "\xf4", "\xf4\x8f", "\xff", "\x80", "~"}

func randomName(r *rand.Rand) string {
	var b strings.Builder
	for n := 1 + r.IntN(6); n > 0; n-- {
		b.WriteString(nameBits[r.IntN(len(nameBits))])
	}
	return b.String()
}

// Random directories of hostile names, in pages of 1 to 5 entries, with
// requests that finish in random order: each listing yields every entry
// once, in order, and ends.
func TestListingRandomNames(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	var probes, found int64
	defer func() { t.Logf("%d probes, %d truncated", probes, found) }()
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		store := &testenv.MemStore{Objs: map[string]object.Version{}, PageSize: 1 + r.IntN(5)}
		var keys []string
		for n := 1 + r.IntN(300); n > 0; n-- {
			name := randomName(r)
			switch r.IntN(4) {
			case 0: // a directory
				name += "/x"
			case 1: // a name that is a prefix of the one before
				if len(keys) > 0 {
					prev := strings.TrimPrefix(keys[len(keys)-1], "d/")
					name = prev[:r.IntN(len(prev)+1)]
					if name == "" || strings.HasSuffix(name, "/") {
						name += "z"
					}
				}
			}
			keys = append(keys, "d/"+name)
		}
		for _, k := range keys {
			store.Objs[k] = testenv.Version(k, `"e"`, 1)
		}
		js := newJitterStore(store, 200*time.Microsecond)
		f := newTree(t, js, 0)
		got, err := listChecked(t, f, "d/")
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		probes += js.probes.Load()
		found += js.found.Load()
		want := wantPositions("d/", keys)
		if !slices.Equal(got, want) {
			i := firstDiff(got, want)
			t.Fatalf("seed %d (page %d): %d entries, want %d; first difference at %d: got %q, want %q", seed, store.PageSize, len(got), len(want), i, at(got, i), at(want, i))
		}
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(end)"
}

// listChecked is listPositions that also checks, once the listing is
// closed, that every slot of its window was given back.
func listChecked(t *testing.T, f *tree, dir string) ([]string, error) {
	t.Helper()
	l := f.listDir(dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []string
	var err error
	for {
		var e Entry
		var ok bool
		e, ok, err = l.Next(ctx)
		if err != nil || !ok {
			break
		}
		out = append(out, e.Pos())
	}
	l.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	held := l.window.held
	for _, p := range l.parts {
		held -= len(p.batches)
	}
	if held != 0 {
		t.Errorf("%d slots of the window still taken after close", held)
	}
	return out, err
}

// hostileStore answers listings through answer, which may ask the fake
// store (inner) and change what it says.
type hostileStore struct {
	*testenv.MemStore
	answer func(ctx context.Context, req object.ListRequest, inner func(object.ListRequest) (object.Page, error)) (object.Page, error)
}

func (s hostileStore) ListPage(ctx context.Context, req object.ListRequest) (object.Page, error) {
	return s.answer(ctx, req, func(r object.ListRequest) (object.Page, error) { return s.MemStore.ListPage(ctx, r) })
}

func isProbe(req object.ListRequest) bool { return req.StartAfter != "" && req.Token == "" }

// hostileNames is a directory that the lister cuts into many parts.
func hostileNames(store *testenv.MemStore, n int) []string {
	var keys []string
	for i := range n {
		k := fmt.Sprintf("d/k%05d", i)
		if i%7 == 0 {
			k += "/x"
		}
		keys = append(keys, k)
		store.Objs[k] = testenv.Version(k, `"e"`, 1)
	}
	return keys
}

// Servers that answer probes wrongly, or not at all, cost the listing
// its speed, never an entry: a probe only ever cuts a part.
func TestListingSurvivesHostileProbes(t *testing.T) {
	cases := map[string]func(ctx context.Context, req object.ListRequest, inner func(object.ListRequest) (object.Page, error)) (object.Page, error){
		// A server without StartAfter (ListObjects V1 semantics, an
		// old gateway): a probe gets the first page.
		"ignores StartAfter": func(ctx context.Context, req object.ListRequest, inner func(object.ListRequest) (object.Page, error)) (object.Page, error) {
			if isProbe(req) {
				req.StartAfter = ""
			}
			return inner(req)
		},
		// A server that refuses StartAfter (or U+10FFFF in it).
		"refuses StartAfter": func(ctx context.Context, req object.ListRequest, inner func(object.ListRequest) (object.Page, error)) (object.Page, error) {
			if isProbe(req) {
				return object.Page{}, errors.New("400 InvalidArgument: start-after")
			}
			return inner(req)
		},
		// Probes hang until the page deadline.
		"hangs on StartAfter": func(ctx context.Context, req object.ListRequest, inner func(object.ListRequest) (object.Page, error)) (object.Page, error) {
			if isProbe(req) {
				<-ctx.Done()
				return object.Page{}, ctx.Err()
			}
			return inner(req)
		},
		// Pages in reverse order of keys.
		"reversed pages": func(ctx context.Context, req object.ListRequest, inner func(object.ListRequest) (object.Page, error)) (object.Page, error) {
			page, err := inner(req)
			slices.Reverse(page.Files)
			slices.Reverse(page.Dirs)
			return page, err
		},
		// A probe's page has the directory's first entries too.
		"probe starts early": func(ctx context.Context, req object.ListRequest, inner func(object.ListRequest) (object.Page, error)) (object.Page, error) {
			page, err := inner(req)
			if isProbe(req) && err == nil {
				first, _ := inner(object.ListRequest{Prefix: req.Prefix, Delimiter: true, MaxKeys: 3})
				page.Files = append(page.Files, first.Files...)
				page.Dirs = append(page.Dirs, first.Dirs...)
			}
			return page, err
		},
	}
	for name, answer := range cases {
		// On the bubble's fake clock (synctest), the page deadline ends
		// the hung probes, never a request that a loaded machine slowed.
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := &testenv.MemStore{Objs: map[string]object.Version{}, PageSize: 20, ListDelay: time.Millisecond}
				keys := hostileNames(store, 3000)
				f := newTree(t, hostileStore{store, answer}, 50*time.Millisecond)
				got, err := listChecked(t, f, "d/")
				if err != nil {
					t.Fatal(err)
				}
				if want := wantPositions("d/", keys); !slices.Equal(got, want) {
					i := firstDiff(got, want)
					t.Fatalf("%d entries, want %d; first difference at %d: got %q, want %q", len(got), len(want), i, at(got, i), at(want, i))
				}
			})
		})
	}
}

// A directory that changes while it is listed: names come and go between
// (and during) requests, so that parts and probes see different
// directories. Every name that was there all along is listed, once, in
// order, and nothing that never was.
func TestListingOfAChangingDirectory(t *testing.T) {
	for seed := range 12 {
		r := rand.New(rand.NewPCG(uint64(seed), 2))
		store := &testenv.MemStore{Objs: map[string]object.Version{}, PageSize: 1 + r.IntN(8)}
		var stable []string
		for i := range 400 {
			k := fmt.Sprintf("d/s%04d", i*10)
			if i%9 == 0 {
				k += "/x"
			}
			stable = append(stable, k)
			store.Objs[k] = testenv.Version(k, `"e"`, 1)
		}
		ever := map[string]bool{}
		for _, k := range stable {
			ever[k] = true
		}
		var churn []string
		for i := range 4000 {
			k := fmt.Sprintf("d/s%04d", i)
			if i%10 == 0 {
				continue
			}
			if i%13 == 0 {
				k += "/y"
			}
			churn = append(churn, k)
			ever[k] = true
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			r := rand.New(rand.NewPCG(uint64(seed), 3))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := churn[r.IntN(len(churn))]
				if r.IntN(2) == 0 {
					store.Put(testenv.Version(k, `"e"`, 1))
				} else {
					store.Remove(k)
				}
				if r.IntN(50) == 0 {
					// Not waiting for an event: the churn's pace.
					time.Sleep(10 * time.Microsecond)
				}
			}
		}()
		f := newTree(t, newJitterStore(store, 100*time.Microsecond), 0)
		got, err := listChecked(t, f, "d/")
		close(stop)
		<-done
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("seed %d: %q after %q", seed, got[i], got[i-1])
			}
		}
		everPos := map[string]bool{}
		for _, p := range wantPositions("d/", slices.Collect(maps.Keys(ever))) {
			everPos[p] = true
		}
		gotPos := map[string]bool{}
		for _, p := range got {
			gotPos[p] = true
			if !everPos[p] {
				t.Fatalf("seed %d: %q was never in the directory", seed, p)
			}
		}
		for _, p := range wantPositions("d/", stable) {
			if !gotPos[p] {
				t.Fatalf("seed %d (page %d): %q, there all along, was not listed (%d listed)", seed, store.PageSize, p, len(got))
			}
		}
	}
}

// A reader that stops and closes while parts wait for the window and
// probes hang: close returns at once, and no goroutine is left. In the
// bubble (synctest), "at once" is exact: close waits for no timer.
func TestListingCloseWithProbesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &testenv.MemStore{Objs: map[string]object.Version{}, PageSize: 10, ListDelay: 200 * time.Microsecond}
		hostileNames(store, 5000)
		var hung atomic.Int64
		hs := hostileStore{store, func(ctx context.Context, req object.ListRequest, inner func(object.ListRequest) (object.Page, error)) (object.Page, error) {
			if isProbe(req) && hung.Add(1)%3 == 0 {
				<-ctx.Done()
				return object.Page{}, ctx.Err()
			}
			return inner(req)
		}}
		f := newTree(t, hs, 0)
		before := runtime.NumGoroutine()
		for i := range 50 {
			l := f.listDir("d/")
			for range i * 7 {
				if _, ok, err := l.Next(context.Background()); !ok || err != nil {
					t.Fatal(ok, err)
				}
			}
			// Not waiting for an event: the listing goes on for 0 to 4 ms
			// of fake time, so that close meets it at different stages.
			time.Sleep(time.Duration(i%5) * time.Millisecond)
			start := time.Now()
			l.Close()
			if d := time.Since(start); d != 0 {
				t.Fatalf("close waited %v", d)
			}
		}
		synctest.Wait()
		if n := runtime.NumGoroutine(); n > before {
			t.Fatalf("%d goroutines after 50 closed listings, %d before", n, before)
		}
		if hung.Load() == 0 {
			t.Fatal("no probe was made")
		}
	})
}

// A listing cut short by the tree's end (or by close) is an error, not
// the end of the directory: an end would pass a part of the directory off
// as all of it, to the reader and to the metadata cache.
func TestListingCutShortIsNotAnEnd(t *testing.T) {
	for _, how := range []string{"stop", "close"} {
		t.Run(how, func(t *testing.T) {
			store := &testenv.MemStore{Objs: map[string]object.Version{}, PageSize: 10, ListDelay: 200 * time.Microsecond}
			hostileNames(store, 2000)
			f := newTree(t, store, 0)
			l := f.listDir("d/")
			defer l.Close()
			for range 20 {
				if _, ok, err := l.Next(context.Background()); !ok || err != nil {
					t.Fatal(ok, err)
				}
			}
			if how == "stop" {
				f.stop()
			} else {
				l.Close()
			}
			n := 20
			for {
				_, ok, err := l.Next(context.Background())
				if err != nil {
					break
				}
				if !ok {
					t.Fatalf("the listing ended without error after %d of %d entries", n, len(wantPositions("d/", slices.Collect(maps.Keys(store.Objs)))))
				}
				n++
			}
		})
	}
}

// Names of 1,000 bytes that share 990: every entry is listed once, in
// order, and probing costs at most one request per page. (It does cost
// that much: each page's probe finds nothing past the group one character
// deeper than the last, so the cut goes down the 495 shared characters one
// page at a time: 485 requests for 300 pages of 10, 323 without the shared
// prefix.)
func TestListingLongCommonPrefix(t *testing.T) {
	for _, pageSize := range []int{1, 10, 100} {
		synctest.Test(t, func(t *testing.T) { listLongCommonPrefix(t, pageSize) })
	}
}

// listLongCommonPrefix is TestListingLongCommonPrefix for one page size,
// in a bubble: how probes and pages overlap does not depend on the load.
func listLongCommonPrefix(t *testing.T, pageSize int) {
	{
		store := &testenv.MemStore{Objs: map[string]object.Version{}, PageSize: pageSize, ListDelay: 100 * time.Microsecond}
		common := strings.Repeat("é", 495)
		var keys []string
		for i := range 3000 {
			k := fmt.Sprintf("d/%s%010d", common, i*7)
			if i%11 == 0 {
				k += "/x"
			}
			keys = append(keys, k)
			store.Objs[k] = testenv.Version(k, `"e"`, 1)
		}
		f := newTree(t, store, 0)
		got, err := listChecked(t, f, "d/")
		if err != nil {
			t.Fatal(err)
		}
		if want := wantPositions("d/", keys); !slices.Equal(got, want) {
			t.Fatalf("page %d: %d entries, want %d, first difference at %d", pageSize, len(got), len(want), firstDiff(got, want))
		}
		pages := (len(got) + pageSize - 1) / pageSize
		lists := int(store.Lists.Load())
		t.Logf("page %d: %d pages, %d requests, %d at once", pageSize, pages, lists, store.MaxInFlight.Load())
		if lists > 2*pages+20 {
			t.Errorf("page %d: %d requests for %d pages", pageSize, lists, pages)
		}
	}
}

// A server that ignores the continuation token (the same page under a
// new token every time) ends the listing with ErrBadListing, not a hang.
func TestListingTokenIgnored(t *testing.T) {
	store := &testenv.MemStore{Objs: map[string]object.Version{}, PageSize: 10}
	hostileNames(store, 3000)
	var n atomic.Int64
	hs := hostileStore{store, func(ctx context.Context, req object.ListRequest, inner func(object.ListRequest) (object.Page, error)) (object.Page, error) {
		req.Token = ""
		page, err := inner(req)
		if page.Truncated {
			page.NextToken = fmt.Sprint("t", n.Add(1))
		}
		return page, err
	}}
	f := newTree(t, hs, 0)
	if _, err := listChecked(t, f, "d/"); !errors.Is(err, object.ErrBadListing) {
		t.Fatalf("got %v, want ErrBadListing", err)
	}
}
