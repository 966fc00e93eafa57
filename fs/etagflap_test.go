package fs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"s3docs/internal/object"
)

// headWithoutETag is a store whose HEAD answers leave out the ETag that its
// listings carry (a gateway that drops the header): the same, unchanged
// object is then seen as two versions, one by size and mtime, one by ETag.
type headWithoutETag struct{ *fakeStore }

func (s headWithoutETag) Head(ctx context.Context, key string) (object.Version, error) {
	v, err := s.fakeStore.Head(ctx, key)
	v.ETag = ""
	return v, err
}

// TestETagOnSomeAnswersOnly: an object that never changes must stay
// readable through a handle opened after a lookup (HEAD, no ETag) while a
// listing (ETag) of its directory comes in, and the other way round.
func TestETagOnSomeAnswersOnly(t *testing.T) {
	data := bytes.Repeat([]byte("docs"), 1<<19) // 2 MiB: the second read is past the kernel's readahead
	v := version("doc.pdf", `"e1"`, len(data))
	store := &fakeStore{Objs: map[string]object.Version{"doc.pdf": v}}
	noTag := v
	noTag.ETag = ""
	content := newContents(map[string][]byte{v.Identity(): data, noTag.Identity(): data})
	mp, _, _ := mountFakeFS(t, headWithoutETag{store}, content, time.Hour)
	path := filepath.Join(mp, "doc.pdf")
	f, err := os.Open(path) // looked up by HEAD: no ETag
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "docs" {
		t.Fatalf("first read: %q, %v", buf, err)
	}
	if _, err := os.ReadDir(mp); err != nil { // listed: with the ETag
		t.Fatal(err)
	}
	if _, err := f.ReadAt(buf, 1<<20); err != nil || string(buf) != "docs" {
		t.Fatalf("read after a listing of the unchanged object: %q, %v", buf, err)
	}
}
