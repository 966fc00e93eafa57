package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/object"
)

// eofReader fails every read with an error that wraps io.EOF, as a fetch
// whose connection the store closed does (Go's HTTP client says EOF).
type eofReader struct{}

func (eofReader) ReadAt(context.Context, []byte, int64) (int, error) {
	return 0, fmt.Errorf("get doc.pdf: giving up after 5 failed attempts: %w", io.EOF)
}
func (eofReader) Close() error { return nil }

// A read that failed with an error wrapping io.EOF fails with EIO: answered
// as a short read, it would make the kernel take the file for empty (and
// keep its size so), which a reader cannot tell from the object's bytes.
func TestWrappedEOFIsAFailedRead(t *testing.T) {
	v := version("doc.pdf", `"1"`, 1<<20)
	store := &fakeStore{Objs: map[string]object.Version{"doc.pdf": v}}
	mp, _, _ := mountFakeFS(t, store, newContents(map[string][]byte{}), time.Minute, func(o *Options) {
		o.OpenReader = func(object.Version) Reader { return eofReader{} }
	})
	path := filepath.Join(mp, "doc.pdf")
	if b, err := os.ReadFile(path); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read: %d bytes, %v; want EIO", len(b), err)
	}
	if info, err := os.Stat(path); err != nil || info.Size() != v.Size {
		t.Fatalf("after the failed read: %v, size %d; want %d", err, info.Size(), v.Size)
	}
}
