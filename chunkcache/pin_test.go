package chunkcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
)

func TestPinProtectsChunksUntilReleased(t *testing.T) {
	f := newFakeFetcher()
	data := randomBytes(20, 3*testChunk+10)
	v := f.add("doc.pdf", data)
	c := openCache(t, t.TempDir(), f, 8*testChunk, 0)
	paths, release, err := c.Pin(context.Background(), v)
	if err != nil {
		t.Fatal(err)
	}
	var joined []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, b...)
	}
	if !bytes.Equal(joined, data) {
		t.Fatal("pinned files do not concatenate to the object")
	}
	churn := func() {
		for i := 0; i < 3; i++ {
			other := f.add(fmt.Sprintf("other%d", i), randomBytes(uint64(30+i), 4*testChunk))
			if _, err := io.ReadAll(io.NewSectionReader(readerAt{c, other}, 0, other.Size)); err != nil {
				t.Fatal(err)
			}
		}
	}
	churn()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("pinned chunk evicted: %v", err)
		}
	}
	release()
	release() // idempotent
	churn()
	gone := 0
	for _, p := range paths {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			gone++
		}
	}
	if gone == 0 {
		t.Fatal("released chunks were never evicted")
	}
	if b := c.Bytes(); b > 8*testChunk {
		t.Fatalf("cache holds %d bytes after release, bound %d", b, 8*testChunk)
	}
}

func TestPinRefusesObjectsTooLargeForTheCache(t *testing.T) {
	f := newFakeFetcher()
	v := f.add("huge.pdf", randomBytes(21, 5*testChunk))
	c := openCache(t, t.TempDir(), f, 8*testChunk, 0)
	if _, _, err := c.Pin(context.Background(), v); err == nil {
		t.Fatal("pinned an object larger than half the cache")
	}
	if f.total.Load() != 0 {
		t.Fatal("fetched chunks of an object it refused")
	}
}
