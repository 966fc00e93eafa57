package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/object"
)

// fakeParts counts pages and makes "parts" that name their range.
type fakeParts struct {
	mu     sync.Mutex
	pages  map[string]int // key → page count; missing = not a PDF
	counts int
	made   []string
	dir    string
}

func (p *fakeParts) PageCount(ctx context.Context, v object.Version) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts++
	n, ok := p.pages[v.Key]
	if !ok {
		return 0, fmt.Errorf("parse %s: %w", v.Key, object.ErrNotFound)
	}
	return n, nil
}

func (p *fakeParts) Part(ctx context.Context, v object.Version, from, thru int) (*os.File, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	name := fmt.Sprintf("%s:%d-%d", v.Key, from, thru)
	p.made = append(p.made, name)
	// Not named after the key: keys may be longer than a file name.
	path := filepath.Join(p.dir, fmt.Sprintf("part-%d", len(p.made)))
	if err := os.WriteFile(path, []byte(name), 0o644); err != nil {
		return nil, err
	}
	return os.Open(path)
}

func mountWithParts(t *testing.T, store *fakeStore, parts *fakeParts) string {
	t.Helper()
	mp, _ := mountFake(t, store, newContents(map[string][]byte{}), time.Minute, func(o *Options) {
		o.Parts = parts
		o.PartPages = 50
	})
	return mp
}

func TestPartsListingMakesNoPart(t *testing.T) {
	store := &fakeStore{Objs: map[string]object.Version{
		"c/brief.pdf": version("c/brief.pdf", `"b"`, 10),
		"c/notes.txt": version("c/notes.txt", `"n"`, 10),
		"c/sub/x.PDF": version("c/sub/x.PDF", `"x"`, 10),
	}}
	parts := &fakeParts{pages: map[string]int{"c/brief.pdf": 137, "c/sub/x.PDF": 3}, dir: t.TempDir()}
	mp := mountWithParts(t, store, parts)

	if got := strings.Join(names(t, mp), ","); got != "c" {
		t.Fatalf("root lists %s", got)
	}
	if got := strings.Join(names(t, filepath.Join(mp, ".parts", "c")), ","); got != "brief.pdf,sub" {
		t.Fatalf(".parts/c lists %s", got)
	}
	dir := filepath.Join(mp, ".parts", "c", "brief.pdf")
	for i := 0; i < 2; i++ {
		if got := strings.Join(names(t, dir), ","); got != "pages-0001-0050.pdf,pages-0051-0100.pdf,pages-0101-0137.pdf" {
			t.Fatalf("brief.pdf lists %s", got)
		}
	}
	parts.mu.Lock()
	made := len(parts.made)
	parts.mu.Unlock()
	if made != 0 {
		t.Fatalf("listing made %d parts: %v", made, parts.made)
	}
	// A lookup makes the part; stat gives its exact size.
	st, err := os.Stat(filepath.Join(dir, "pages-12-14.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len("c/brief.pdf:12-14")); st.Size() != want {
		t.Fatalf("size %d, want %d", st.Size(), want)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pages-0012-014.pdf"))
	if err != nil || string(b) != "c/brief.pdf:12-14" {
		t.Fatalf("read %q, %v", b, err)
	}
	for _, bad := range []string{"pages-0-1.pdf", "pages-2-1.pdf", "pages-137-138.pdf", "x.pdf"} {
		if _, err := os.Stat(filepath.Join(dir, bad)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := os.Stat(filepath.Join(mp, ".parts", "c", "notes.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("non-PDF has a parts dir: %v", err)
	}

	buf := make([]byte, 10)
	n, err := syscall.Getxattr(filepath.Join(mp, "c", "brief.pdf"), pagesXattr, buf)
	if err != nil || string(buf[:n]) != "137" {
		t.Fatalf("xattr: %q %v", buf[:n], err)
	}
	if _, err := syscall.Getxattr(filepath.Join(mp, "c", "notes.txt"), pagesXattr, buf); !errors.Is(err, syscall.ENODATA) {
		t.Fatalf("xattr of a non-PDF: %v", err)
	}
}
