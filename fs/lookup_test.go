package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

// counts is a snapshot of a fakeStore's calls.
type counts struct{ lists, probes, heads int64 }

func storeCounts(s *fakeStore) counts {
	return counts{s.Lists.Load(), s.Probes.Load(), s.Heads.Load()}
}

func (c counts) minus(o counts) counts {
	return counts{c.lists - o.lists, c.probes - o.probes, c.heads - o.heads}
}

func bigDir(n int) *fakeStore {
	store := &fakeStore{Objs: map[string]object.Version{}}
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("flat/k%06d.txt", i)
		store.Objs[key] = version(key, fmt.Sprintf(`"%d"`, i), 10)
	}
	store.Objs["flat/sub/x.txt"] = version("flat/sub/x.txt", `"x"`, 1)
	return store
}

// A cold stat or open of one name costs one HEAD and at most one listing
// of one key, however big its directory, also after the TTL.
func TestLookupCostsTwoRequests(t *testing.T) {
	store := bigDir(20000)
	ttl := 2 * time.Second
	mp, _ := mountFake(t, store, newContents(map[string][]byte{`etag:"5000"`: []byte("0123456789")}), ttl)
	if _, err := os.Stat(filepath.Join(mp, "flat")); err != nil {
		t.Fatal(err)
	}
	check := func(what string, op func() error, want error) {
		t.Helper()
		before := storeCounts(store)
		err := op()
		if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
		c := storeCounts(store).minus(before)
		if c.lists != 0 || c.heads != 1 || c.probes > 1 {
			t.Fatalf("%s cost %d listing pages, %d HEADs, %d one-key listings", what, c.lists, c.heads, c.probes)
		}
	}
	file := filepath.Join(mp, "flat/k005000.txt")
	check("stat of a file", func() error { _, err := os.Stat(file); return err }, nil)
	check("stat of a directory", func() error { _, err := os.Stat(filepath.Join(mp, "flat/sub")); return err }, nil)
	check("stat of nothing", func() error { _, err := os.Stat(filepath.Join(mp, "flat/nope")); return err }, os.ErrNotExist)
	// Within the TTL, the same names cost nothing.
	before := storeCounts(store)
	for i := 0; i < 3; i++ {
		os.Stat(file)
		os.Stat(filepath.Join(mp, "flat/nope"))
	}
	if c := storeCounts(store).minus(before); c != (counts{}) {
		t.Fatalf("repeated lookups within the TTL cost %+v", c)
	}
	// Not waiting for an event: the TTL passes, in the kernel's entry
	// cache (on the wall clock) as in the daemon's.
	time.Sleep(2 * ttl)
	// The directory's own entry has expired too: it is looked up again
	// (and costs what a directory costs).
	check("stat of the directory after the TTL", func() error { _, err := os.Stat(filepath.Join(mp, "flat")); return err }, nil)
	check("open after the TTL", func() error {
		b, err := os.ReadFile(file)
		if err == nil && string(b) != "0123456789" {
			err = fmt.Errorf("read %q", b)
		}
		return err
	}, nil)
}

// The HEAD that finds the file answers at once: the lookup does not wait
// for its listing (started here, as the HEAD is slower than listDelay),
// and the listing is called off.
func TestLookupDoesNotWaitForItsListing(t *testing.T) {
	// In a bubble (synctest): the delays are on its fake clock, and
	// "called off" is exact.
	synctest.Test(t, func(t *testing.T) {
		store := bigDir(10)
		store.ProbeDelay = time.Hour
		store.HeadDelay = 10 * listDelay
		f, _ := newTree(t, store, time.Minute)
		start := time.Now()
		a, err := f.resolve(t.Context(), "flat/", "k000003.txt")
		if err == nil && (a.kind != isFile || a.v.ETag != `"3"`) {
			err = fmt.Errorf("answer %+v", a)
		}
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d >= store.ProbeDelay {
			t.Fatalf("the lookup waited for its listing (%v)", d)
		}
		if n := store.Probes.Load(); n != 1 {
			t.Fatalf("%d listings, want the one the lookup started", n)
		}
		synctest.Wait()
		if n := store.InFlight.Load(); n != 0 {
			t.Fatal("the lookup's listing was not called off")
		}
	})
}

// A name that is a file and a prefix is the file, whether a lookup or a
// listing sees it first, and whatever lies between the two in key order
// (here across pages and parts).
func TestFileAndPrefixAgreeInLookupsAndListings(t *testing.T) {
	keys := []string{"report", "report!", "report-1", "report.pdf", "report/inner.pdf", "report/z/deep.pdf", "zz"}
	for _, lookupFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("lookupFirst=%v", lookupFirst), func(t *testing.T) {
			store := &fakeStore{Objs: map[string]object.Version{}, PageSize: 1}
			for _, k := range keys {
				store.Objs[k] = version(k, `"`+k+`"`, len(k))
			}
			content := newContents(map[string][]byte{`etag:"report"`: []byte("report")})
			mp, logs := mountFake(t, store, content, time.Minute)
			readFile := func() {
				t.Helper()
				b, err := os.ReadFile(filepath.Join(mp, "report"))
				if err != nil || string(b) != "report" {
					t.Fatalf("report: %q, %v", b, err)
				}
			}
			if lookupFirst {
				readFile()
			}
			if got := strings.Join(names(t, mp), ","); got != "report,report!,report-1,report.pdf,zz" {
				t.Fatalf("root lists %s", got)
			}
			readFile()
			if _, err := os.Stat(filepath.Join(mp, "report/inner.pdf")); !errors.Is(err, syscall.ENOTDIR) {
				t.Fatalf("under the file: %v", err)
			}
			if n := strings.Count(logs.String(), "share this name"); n != 1 {
				t.Fatalf("clash logged %d times", n)
			}
		})
	}
}

// Names with odd bytes are looked up under their own bytes.
func TestOddNamesLookUp(t *testing.T) {
	odd := []string{"sp ace.pdf", "per%25cent+plus.pdf", "ctl\n.pdf", "bad\xff.pdf", "文書.pdf", "q?#&=.pdf", strings.Repeat("L", 255)}
	store := &fakeStore{Objs: map[string]object.Version{}}
	content := newContents(map[string][]byte{})
	for i, name := range odd {
		etag := fmt.Sprintf(`"%d"`, i)
		store.Objs["d/"+name] = version("d/"+name, etag, len(name))
		content.set("etag:"+etag, []byte(name))
	}
	mp, _ := mountFake(t, store, content, time.Minute)
	for _, name := range odd {
		b, err := os.ReadFile(filepath.Join(mp, "d", name))
		if err != nil || string(b) != name {
			t.Errorf("%q: %q, %v", name, b, err)
		}
	}
	if got := len(names(t, filepath.Join(mp, "d"))); got != len(odd) {
		t.Fatalf("listed %d names, want %d", got, len(odd))
	}
}

// A name found missing stays missing for the TTL, even if a prefix of that
// name appears meanwhile; then it is a directory.
func TestPrefixAppearsAfterNegativeLookup(t *testing.T) {
	store := &fakeStore{Objs: map[string]object.Version{"a.pdf": version("a.pdf", `"a"`, 1)}}
	ttl := 400 * time.Millisecond
	mp, _ := mountFake(t, store, newContents(map[string][]byte{}), ttl)
	path := filepath.Join(mp, "new")
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	store.Put(version("new/x.pdf", `"x"`, 1))
	before := storeCounts(store)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("within the TTL: %v", err)
	}
	if c := storeCounts(store).minus(before); c != (counts{}) {
		t.Fatalf("a cached negative lookup cost %+v", c)
	}
	// Not waiting for an event: the TTL passes, in the kernel's entry
	// cache (on the wall clock) as in the daemon's.
	time.Sleep(2 * ttl)
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		t.Fatalf("after the TTL: %v %v", st, err)
	}
	if got := names(t, path); len(got) != 1 || got[0] != "x.pdf" {
		t.Fatalf("new/ lists %v", got)
	}
}

// An object deleted after its directory was listed: within the TTL it is
// still there (from the listing, without a request) but its bytes are
// gone, and reading fails; after the TTL it is gone.
func TestObjectDeletedBetweenListingAndLookup(t *testing.T) {
	v := version("d/doc.pdf", `"v"`, 3)
	store := &fakeStore{Objs: map[string]object.Version{"d/doc.pdf": v, "d/other.pdf": version("d/other.pdf", `"o"`, 1)}}
	content := newContents(map[string][]byte{`etag:"v"`: []byte("doc")})
	ttl := 500 * time.Millisecond
	mp, _ := mountFake(t, store, content, ttl)
	if got := names(t, filepath.Join(mp, "d")); len(got) != 2 {
		t.Fatalf("d/ lists %v", got)
	}
	store.Remove("d/doc.pdf")
	content.set(`etag:"v"`, nil)
	before := storeCounts(store)
	path := filepath.Join(mp, "d/doc.pdf")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	if c := storeCounts(store).minus(before); c != (counts{}) {
		t.Fatalf("a lookup answered by the listing cost %+v", c)
	}
	if _, err := os.ReadFile(path); !errors.Is(err, syscall.EIO) {
		t.Fatalf("reading a deleted object: %v, want EIO", err)
	}
	// Not waiting for an event: the TTL passes, in the kernel's entry
	// cache (on the wall clock) as in the daemon's.
	time.Sleep(2 * ttl)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after the TTL: %v", err)
	}
}

// A listing entry with a negative size is skipped with one warning, in
// listings and lookups alike.
func TestNegativeSizeIsSkipped(t *testing.T) {
	bad := version("d/bad.pdf", `"b"`, 1)
	bad.Size = -5
	store := &fakeStore{Objs: map[string]object.Version{"d/bad.pdf": bad, "d/ok.pdf": version("d/ok.pdf", `"o"`, 1)}}
	mp, logs := mountFake(t, store, newContents(map[string][]byte{}), time.Minute)
	if _, err := os.Stat(filepath.Join(mp, "d/bad.pdf")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lookup: %v", err)
	}
	for i := 0; i < 3; i++ {
		if got := names(t, filepath.Join(mp, "d")); strings.Join(got, ",") != "ok.pdf" {
			t.Fatalf("d/ lists %v", got)
		}
	}
	if n := strings.Count(logs.String(), "negative or missing size"); n != 1 {
		t.Fatalf("%d warnings:\n%s", n, logs.String())
	}
}

// Reading a directory again from its start lists it again.
func TestRewindDirectory(t *testing.T) {
	store := bigDir(3000)
	mp, _ := mountFake(t, store, newContents(map[string][]byte{}), time.Minute)
	d, err := os.Open(filepath.Join(mp, "flat"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	first, err := d.Readdirnames(-1)
	if err != nil || len(first) != 3001 {
		t.Fatalf("%d names, %v", len(first), err)
	}
	if _, err := d.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	again, err := d.Readdirnames(-1)
	if err != nil || strings.Join(again, "|") != strings.Join(first, "|") {
		t.Fatalf("after rewinding: %d names, %v", len(again), err)
	}
}

// The daemon keeps a bounded number of nodes for the kernel, and lets go
// of the others: listing a directory with more entries than that (ls -l
// looks each up) leaves at most maxKernelNodes known.
func TestNodesAreBounded(t *testing.T) {
	ls := testenv.Tool(t, "ls")
	n := maxKernelNodes + 3*pruneBatch
	store := bigDir(n)
	mp, _, tree := mountFakeFS(t, store, newContents(map[string][]byte{}), time.Minute)
	out, err := testenv.Command(ls, "-l", filepath.Join(mp, "flat")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(out), "\n"); lines != n+2 {
		t.Fatalf("ls -l printed %d lines, want %d", lines, n+2)
	}
	if k := tree.nodes.known(); k > maxKernelNodes {
		t.Fatalf("%d nodes known to the kernel, want at most %d", k, maxKernelNodes)
	}
	// The nodes handed back are forgotten (the kernel's FORGETs come when
	// they come), and their entries go as the collector finds them.
	held := 0
	if !testenv.Eventually(30*time.Second, func() bool {
		runtime.GC()
		tree.nodes.mu.Lock()
		held = len(tree.nodes.nodes)
		tree.nodes.mu.Unlock()
		return held <= maxKernelNodes+pruneBatch
	}) {
		t.Fatalf("%d nodes still held", held)
	}
}

// stallStore never answers: each call waits for its deadline.
type stallStore struct{ calls atomic.Int64 }

func (s *stallStore) ListPage(ctx context.Context, req object.ListRequest) (object.Page, error) {
	s.calls.Add(1)
	<-ctx.Done()
	return object.Page{}, ctx.Err()
}

func (s *stallStore) Head(ctx context.Context, key string) (object.Version, error) {
	s.calls.Add(1)
	<-ctx.Done()
	return object.Version{}, ctx.Err()
}

// Against a server that never answers, a lookup and a listing fail at
// their one deadline (retries, which the store makes within it, included).
func TestLookupsAndListingsHaveOneDeadline(t *testing.T) {
	store := &stallStore{}
	const timeout = 300 * time.Millisecond
	mp, logs, _ := mountFakeFS(t, store, newContents(map[string][]byte{}), time.Minute, func(o *Options) {
		o.LookupTimeout, o.PageTimeout = timeout, timeout
	})
	start := time.Now()
	if _, err := os.Stat(filepath.Join(mp, "doc.pdf")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("stat: %v, want EIO", err)
	}
	if _, err := os.ReadDir(mp); !errors.Is(err, syscall.EIO) {
		t.Fatalf("readdir: %v, want EIO", err)
	}
	// A generous guard: each waited for its deadline, not for ever.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("took %v", d)
	}
	if !strings.Contains(logs.String(), "deadline exceeded") {
		t.Fatalf("no log line says why:\n%s", logs.String())
	}
}
