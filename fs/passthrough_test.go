package fs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

// backedFiles keeps the bytes of versions in files, as the chunk cache
// does once it holds a version whole, and counts the reads that reach the
// daemon.
type backedFiles struct {
	dir   string
	mu    sync.Mutex
	paths map[string]string // by version identity
	reads atomic.Int64
}

func (b *backedFiles) put(t *testing.T, v object.Version, data []byte) {
	t.Helper()
	path := filepath.Join(b.dir, "v"+string(rune('a'+len(b.paths))))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.paths[v.Identity()] = path
	b.mu.Unlock()
}

func (b *backedFiles) open(v object.Version) Reader {
	b.mu.Lock()
	path := b.paths[v.Identity()]
	b.mu.Unlock()
	return &backedReader{files: b, path: path}
}

// backedReader is a Reader and a Backer of one version's file.
type backedReader struct {
	files   *backedFiles
	path    string
	backing *os.File
}

func (r *backedReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	r.files.reads.Add(1)
	f, err := os.Open(r.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := f.ReadAt(p, off)
	if n > 0 {
		err = nil
	}
	return n, err
}

func (r *backedReader) Backing() *os.File {
	if r.backing == nil {
		r.backing, _ = os.Open(r.path)
	}
	return r.backing
}

func (r *backedReader) Close() error {
	if r.backing != nil {
		r.backing.Close()
	}
	return nil
}

// With passthrough on, a file whose reader has a backing file is read by
// the kernel: no read reaches the daemon, mmap included; handles of the
// same version share it; a new version cannot be opened while the old one's
// passthrough handles are open (EBUSY), and can once they are closed. With
// passthrough off (S3DOCS_TEST_PASSTHROUGH=off), every read reaches the
// daemon and both versions open at once.
func TestPassthroughReads(t *testing.T) {
	v1 := version("doc.pdf", `"1"`, 300<<10)
	store := &fakeStore{Objs: map[string]object.Version{"doc.pdf": v1}}
	files := &backedFiles{dir: t.TempDir(), paths: map[string]string{}}
	data1 := testenv.RandomBytes(1, int(v1.Size))
	files.put(t, v1, data1)
	mp, logs, tree := mountFakeFS(t, store, newContents(map[string][]byte{}), 0, func(o *Options) {
		o.OpenReader = files.open
	})
	on := testenv.Passthrough()
	if tree.Passthrough() != on {
		t.Fatalf("passthrough %v, want %v:\n%s", tree.Passthrough(), on, logs.String())
	}
	path := filepath.Join(mp, "doc.pdf")
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data1) {
		t.Fatalf("read: %v, equal %v", err, bytes.Equal(got, data1))
	}
	h1, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	h2, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(h2.Fd()), 0, int(v1.Size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m, data1) {
		t.Fatal("mmap of the file: other bytes")
	}
	syscall.Munmap(m)
	h2.Close()
	reads, opens := files.reads.Load(), tree.PassthroughOpens()
	switch {
	case on && (reads != 0 || opens != 3):
		t.Fatalf("passthrough on: %d reads reached the daemon, %d opens passed through; want 0 and 3", reads, opens)
	case !on && (reads == 0 || opens != 0):
		t.Fatalf("passthrough off: %d reads reached the daemon, %d opens passed through", reads, opens)
	}

	// An overwrite, seen by the next lookup (the TTL is 0).
	v2 := version("doc.pdf", `"2"`, 200<<10)
	v2.ModTime = v2.ModTime.Add(time.Minute)
	data2 := testenv.RandomBytes(2, int(v2.Size))
	files.put(t, v2, data2)
	store.Put(v2)
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	_, err = os.ReadFile(path)
	switch {
	case on && !errors.Is(err, syscall.EBUSY):
		t.Fatalf("open of a new version while the old one passes through: %v, want EBUSY", err)
	case !on && err != nil:
		t.Fatalf("open of a new version: %v", err)
	}
	// The open handle keeps its version.
	if on {
		old := make([]byte, v1.Size)
		if _, err := h1.ReadAt(old, 0); err != nil || !bytes.Equal(old, data1) {
			t.Fatalf("the passthrough handle of the old version: %v", err)
		}
	}
	h1.Close()
	// The kernel's release is asynchronous: EBUSY until then.
	testenv.Eventually(5*time.Second, func() bool {
		got, err = os.ReadFile(path)
		return !errors.Is(err, syscall.EBUSY)
	})
	if err != nil || !bytes.Equal(got, data2) {
		t.Fatalf("the new version after the old one was closed: %v, equal %v", err, bytes.Equal(got, data2))
	}
}

// Parts pass through too: a part is one whole file.
func TestPassthroughParts(t *testing.T) {
	store := &fakeStore{Objs: map[string]object.Version{"c/brief.pdf": version("c/brief.pdf", `"b"`, 10)}}
	parts := &fakeParts{pages: map[string]int{"c/brief.pdf": 137}, dir: t.TempDir()}
	mp, _, tree := mountFakeFS(t, store, newContents(map[string][]byte{}), time.Minute, func(o *Options) {
		o.Parts = parts
		o.PartPages = 50
	})
	path := filepath.Join(mp, ".parts", "c", "brief.pdf", "pages-0051-0100.pdf")
	for range 2 {
		got, err := os.ReadFile(path)
		if err != nil || string(got) != "c/brief.pdf:51-100" {
			t.Fatalf("read part: %q, %v", got, err)
		}
	}
	want := int64(0)
	if testenv.Passthrough() {
		want = 2
	}
	if got := tree.PassthroughOpens(); got != want {
		t.Fatalf("%d part opens passed through, want %d", got, want)
	}
}

// Where the kernel refuses a backing file (an old kernel, no CAP_SYS_ADMIN,
// a cache on overlayfs; here: a directory, which is no file to read), the
// mount says so in one log line and every read goes through the daemon.
func TestPassthroughUnavailableFallsBack(t *testing.T) {
	v := version("doc.pdf", `"1"`, 64<<10)
	store := &fakeStore{Objs: map[string]object.Version{"doc.pdf": v}}
	files := &backedFiles{dir: t.TempDir(), paths: map[string]string{}}
	data := testenv.RandomBytes(3, int(v.Size))
	files.put(t, v, data)
	mp, logs, tree := mountFakeFS(t, store, newContents(map[string][]byte{}), time.Minute, func(o *Options) {
		o.OpenReader = files.open
		dir := t.TempDir()
		o.PassthroughProbe = func() (*os.File, error) { return os.Open(dir) }
	})
	if tree.Passthrough() {
		t.Fatal("passthrough on with a backing file the kernel refuses")
	}
	if n := strings.Count(logs.String(), "FUSE passthrough unavailable"); n != 1 {
		t.Fatalf("said %d times that passthrough is unavailable, want once:\n%s", n, logs.String())
	}
	got, err := os.ReadFile(filepath.Join(mp, "doc.pdf"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %v", err)
	}
	if files.reads.Load() == 0 || tree.PassthroughOpens() != 0 {
		t.Fatalf("%d reads reached the daemon, %d opens passed through", files.reads.Load(), tree.PassthroughOpens())
	}
}
