package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

// fakeStore serves listings from a set of keys, as S3 does, and counts
// its calls.
type fakeStore = testenv.MemStore

// contents maps a version's identity to its bytes; a version whose content
// was replaced answers ErrChanged, like the store would.
type contents struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newContents(m map[string][]byte) *contents { return &contents{m: m} }

func (c *contents) set(identity string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b == nil {
		delete(c.m, identity)
	} else {
		c.m[identity] = b
	}
}

type memReader struct {
	content *contents
	v       object.Version
}

func (r memReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	r.content.mu.Lock()
	b, ok := r.content.m[r.v.Identity()]
	r.content.mu.Unlock()
	if !ok {
		return 0, object.ErrChanged
	}
	if off >= int64(len(b)) {
		return 0, nil
	}
	return copy(p, b[off:]), nil
}

func (r memReader) Close() error { return nil }

func mountFake(t *testing.T, store *fakeStore, content *contents, ttl time.Duration, mutate ...func(*Options)) (string, *testenv.LockedBuffer) {
	t.Helper()
	mp, logs, _ := mountFakeFS(t, store, content, ttl, mutate...)
	return mp, logs
}

// mountFakeFS is mountFake that also returns the tree.
func mountFakeFS(t *testing.T, store Store, content *contents, ttl time.Duration, mutate ...func(*Options)) (string, *testenv.LockedBuffer, *FS) {
	t.Helper()
	testenv.RequireFUSE(t)
	logs := &testenv.LockedBuffer{}
	o := Options{
		Store:       store,
		OpenReader:  func(v object.Version) Reader { return memReader{content: content, v: v} },
		MetadataTTL: ttl,
		FileMode:    0o444,
		DirMode:     0o555,
		Logger:      slog.New(slog.NewTextHandler(logs, nil)),
	}
	if testenv.Passthrough() {
		o.PassthroughProbe = func() (*os.File, error) { return os.CreateTemp(t.TempDir(), "probe") }
	}
	for _, m := range mutate {
		m(&o)
	}
	tree := mustNew(t, o)
	mp := t.TempDir()
	m, err := tree.Mount(mp, MountOptions{FsName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := m.Unmount(); err != nil {
			t.Error(err)
		}
		m.Wait()
	})
	return mp, logs, tree
}

func version(key, etag string, size int) object.Version {
	return object.Version{Key: key, ETag: etag, Size: int64(size), ModTime: time.Unix(1700000000, 0)}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	sort.Strings(out)
	return out
}

func TestNamesThatCannotBeFilesAreSkipped(t *testing.T) {
	long := strings.Repeat("x", 256)
	store := &fakeStore{Objs: map[string]object.Version{}}
	for _, key := range []string{"ok.pdf", "a//b.pdf", "./c.pdf", "../d.pdf", long, "nul\x00.pdf", "dir/.", "fine/e.pdf"} {
		store.Objs[key] = version(key, `"e"`, 1)
	}
	mp, logs := mountFake(t, store, newContents(map[string][]byte{}), time.Minute)
	if got := strings.Join(names(t, mp), ","); got != "a,dir,fine,ok.pdf" {
		t.Fatalf("root lists %s", got)
	}
	// "a//b.pdf" has an empty segment: a/ lists nothing, with a warning.
	if got := names(t, filepath.Join(mp, "a")); len(got) != 0 {
		t.Fatalf("a/ lists %v", got)
	}
	if got := names(t, filepath.Join(mp, "dir")); len(got) != 0 {
		t.Fatalf("dir/ lists %v", got)
	}
	// Listing twice more must not repeat a warning.
	names(t, mp)
	names(t, filepath.Join(mp, "a"))
	// One warning per bad key: "./" and "../" (the dirs of ./c.pdf and
	// ../d.pdf), the long name, the NUL, "a//" and "dir/.".
	seen := map[string]bool{}
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, "skipping key") {
			continue
		}
		_, key, _ := strings.Cut(line, " key=")
		if seen[key] {
			t.Errorf("warned twice about %s", key)
		}
		seen[key] = true
	}
	if len(seen) != 6 {
		t.Errorf("%d keys warned about, want 6:\n%s", len(seen), logs.String())
	}
}

func TestFileAndDirectoryOfTheSameName(t *testing.T) {
	store := &fakeStore{Objs: map[string]object.Version{
		"report":         version("report", `"r"`, 6),
		"report/inner.p": version("report/inner.p", `"i"`, 1),
	}}
	content := newContents(map[string][]byte{`etag:"r"`: []byte("report")})
	mp, logs := mountFake(t, store, content, time.Minute)
	if got := strings.Join(names(t, mp), ","); got != "report" {
		t.Fatalf("root lists %s", got)
	}
	b, err := os.ReadFile(filepath.Join(mp, "report"))
	if err != nil || string(b) != "report" {
		t.Fatalf("the file is not reachable: %q %v", b, err)
	}
	names(t, mp)
	if n := strings.Count(logs.String(), "share this name"); n != 1 {
		t.Fatalf("clash logged %d times", n)
	}
}

func TestListingsAndNegativeLookupsAreCached(t *testing.T) {
	store := &fakeStore{Objs: map[string]object.Version{"a.pdf": version("a.pdf", `"a"`, 1)}}
	mp, _ := mountFake(t, store, newContents(map[string][]byte{}), time.Minute)
	for i := 0; i < 5; i++ {
		names(t, mp)
		if _, err := os.Stat(filepath.Join(mp, "missing.pdf")); !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(mp, "missing-too.pdf")); !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if n := store.Lists.Load(); n != 1 {
		t.Fatalf("%d listings within the TTL, want 1", n)
	}
}

func TestChangedObjectFailsThenReopenSeesNewVersion(t *testing.T) {
	store := &fakeStore{Objs: map[string]object.Version{"doc.pdf": version("doc.pdf", `"v1"`, 2)}}
	content := newContents(map[string][]byte{`etag:"v1"`: []byte("v1")})
	mp, logs := mountFake(t, store, content, time.Hour)
	path := filepath.Join(mp, "doc.pdf")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	headsBefore := store.Heads.Load() // the lookup's
	// The object is replaced: the old version's bytes are gone.
	store.Put(version("doc.pdf", `"v2"`, 2))
	content.set(`etag:"v1"`, nil)
	content.set(`etag:"v2"`, []byte("v2"))
	if _, err := f.ReadAt(make([]byte, 2), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a changed object: %v, want EIO", err)
	}
	if !strings.Contains(logs.String(), "doc.pdf") {
		t.Fatal("no log line names the key")
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "v2" {
		t.Fatalf("reopen read %q, %v; want the new version", b, err)
	}
	if n := store.Heads.Load() - headsBefore; n != 1 {
		t.Fatalf("%d HEADs after the first open, want exactly 1 (on the reopen after the change)", n)
	}
}

// Regression: a changed object must be read at its new version by a new
// open, and two versions open at once must not share the page cache.
func TestNewVersionAfterTTLAndNoMixedPageCache(t *testing.T) {
	store := &fakeStore{Objs: map[string]object.Version{"doc.pdf": version("doc.pdf", `"A"`, 5)}}
	content := newContents(map[string][]byte{`etag:"A"`: []byte("AAAAA"), `etag:"B"`: []byte("BBBBBBB")})
	mp, _ := mountFake(t, store, content, 200*time.Millisecond)
	path := filepath.Join(mp, "doc.pdf")
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	readAll := func(f *os.File) string {
		t.Helper()
		b := make([]byte, 16)
		n, err := f.ReadAt(b, 0)
		if err != nil && n == 0 {
			t.Fatal(err)
		}
		return string(b[:n])
	}
	if got := readAll(old); got != "AAAAA" {
		t.Fatalf("v1 read %q", got)
	}
	store.Put(version("doc.pdf", `"B"`, 7))
	// Not waiting for an event: past the TTL, in the kernel's caches (on
	// the wall clock) as in the daemon's.
	time.Sleep(400 * time.Millisecond)

	newer, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(newer); got != "BBBBBBB" {
		t.Fatalf("a new open after the TTL read %q, want the new version", got)
	}
	// The handle still open on v1 fails rather than serve v1 beside v2.
	if _, err := old.ReadAt(make([]byte, 16), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("the handle open on v1: %v, want EIO", err)
	}
	newer.Close()
	old.Close()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "BBBBBBB" {
		t.Fatalf("after both closed: %q, %v", b, err)
	}
}

func TestRepeatedErrorsAreRateLimited(t *testing.T) {
	logs := &testenv.LockedBuffer{}
	f := mustNew(t, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	for i := 0; i < 50; i++ {
		f.errno(errors.New("boom"), "read", "a.pdf", "offset", i)
	}
	f.errno(errors.New("other"), "read", "a.pdf")
	if n := strings.Count(logs.String(), "boom"); n != 1 {
		t.Fatalf("the same failure logged %d times:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "other") {
		t.Fatal("a different failure was suppressed")
	}
}

// A listing that started before the node learned of a newer version must not
// take it back to the older one.
func TestListingNeverGoesBackInTime(t *testing.T) {
	v1 := version("doc.pdf", `"A"`, 5)
	v2 := version("doc.pdf", `"B"`, 7)
	v2.ModTime = v1.ModTime.Add(10 * time.Second)
	store := &fakeStore{Objs: map[string]object.Version{"doc.pdf": v2}}
	content := newContents(map[string][]byte{`etag:"A"`: []byte("AAAAA"), `etag:"B"`: []byte("BBBBBBB")})
	mp, _ := mountFake(t, store, content, 100*time.Millisecond)
	path := filepath.Join(mp, "doc.pdf")
	if b, err := os.ReadFile(path); err != nil || string(b) != "BBBBBBB" {
		t.Fatalf("read %q, %v", b, err)
	}
	store.Put(v1) // a stale listing
	// Not waiting for an event: past the TTL, in the kernel's caches (on
	// the wall clock) as in the daemon's.
	time.Sleep(250 * time.Millisecond)
	if b, err := os.ReadFile(path); err != nil || string(b) != "BBBBBBB" {
		t.Fatalf("after an older listing: %q, %v", b, err)
	}
}

// Warnings about keys are remembered up to a bound, then suppressed with
// one line: a bucket full of odd names must not grow memory or the log
// without end.
func TestWarnOnceIsBounded(t *testing.T) {
	var buf bytes.Buffer
	w := &warnOnce{seen: map[string]bool{}, log: slog.New(slog.NewTextHandler(&buf, nil))}
	for i := range maxWarned + 50 {
		w.warn(fmt.Sprintf("key-%d", i), "odd key")
		w.warn(fmt.Sprintf("key-%d", i), "odd key") // a repeat is never logged
	}
	if len(w.seen) != maxWarned {
		t.Fatalf("remembers %d keys, want %d", len(w.seen), maxWarned)
	}
	lines := strings.Count(buf.String(), "\n")
	suppressed := strings.Count(buf.String(), "further warnings of this kind are suppressed")
	if lines != maxWarned+1 || suppressed != 1 {
		t.Fatalf("%d log lines (%d about suppression), want %d and 1", lines, suppressed, maxWarned+1)
	}
}

// newTree is a tree that is not mounted, for lookups alone.
func newTree(t *testing.T, store Store, ttl time.Duration) (*FS, *testenv.LockedBuffer) {
	t.Helper()
	logs := &testenv.LockedBuffer{}
	f := mustNew(t, Options{Store: store, MetadataTTL: ttl, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(f.stop)
	return f, logs
}

// mustNew is New for tests, whose options are valid.
func mustNew(t testing.TB, o Options) *FS {
	t.Helper()
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
