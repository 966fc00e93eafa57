package chunkcache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/pacer"
	"s3docs/internal/testenv"
)

// A freed GET slot goes to a foreground waiter before background ones
// that waited longer.
func TestSlotsServeForegroundFirst(t *testing.T) {
	s := newSlots(1)
	ctx := context.Background()
	if err := s.acquire(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for i, w := range []struct {
		name string
		prio pacer.Priority
	}{{"bg1", pacer.Background}, {"bg2", pacer.Background}, {"fg", nil}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.acquire(ctx, w.prio); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, w.name)
			mu.Unlock()
			s.release()
		}()
		testenv.WaitFor(t, 10*time.Second, "the waiters queued in this order", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.waiting) == i+1
		})
	}
	// A waiter that gives up leaves the queue.
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := s.acquire(short, nil); err == nil {
		t.Fatal("acquired a slot held by another")
	}
	s.release()
	wg.Wait()
	if got := order; len(got) != 3 || got[0] != "fg" || got[1] != "bg1" || got[2] != "bg2" {
		t.Fatalf("order %v, want fg bg1 bg2", got)
	}
	if s.free != 1 || len(s.waiting) != 0 {
		t.Fatalf("free %d, waiting %d", s.free, len(s.waiting))
	}
}

// recordingFetcher records the context of each fetch, by key and offset:
// whether its requests are background work is asked of it, as the pacer
// does, whenever the test looks.
type recordingFetcher struct {
	*fakeFetcher
	mu   sync.Mutex
	ctxs map[string]context.Context
}

func (f *recordingFetcher) GetRange(ctx context.Context, v object.Version, off, n int64) (io.ReadCloser, error) {
	f.mu.Lock()
	f.ctxs[fmt.Sprintf("%s@%d", v.Key, off)] = ctx
	f.mu.Unlock()
	return f.fakeFetcher.GetRange(ctx, v, off, n)
}

func (f *recordingFetcher) ctx(key string, off int64) context.Context {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ctxs[fmt.Sprintf("%s@%d", key, off)]
}

// Readahead fetches are background work for the pacer and the GET slots,
// until a reader waits for one: then it is foreground. A background
// reader's own fetches are background too.
func TestReadaheadIsBackgroundUntilJoined(t *testing.T) {
	f := &recordingFetcher{fakeFetcher: newFakeFetcher(), ctxs: map[string]context.Context{}}
	data := randomBytes(21, 4*testChunk)
	v := f.add("obj", data)
	c := openCache(t, t.TempDir(), f, 100*testChunk, 2*testChunk)
	ctx := context.Background()
	fetched := func(key string, off int64) func() bool {
		return func() bool { return f.ctx(key, off) != nil }
	}
	background := func(key string, off int64) bool { return pacer.IsBackground(f.ctx(key, off)) }
	// Two sequential reads of chunk 0 start readahead of chunks 1 and 2;
	// chunk 0 is the reader's own fetch.
	r := c.NewReader(v)
	for _, off := range []int64{0, 100} {
		if _, err := r.ReadAt(ctx, make([]byte, 100), off); err != nil {
			t.Fatal(err)
		}
	}
	if background("obj", 0) {
		t.Error("a reader's own fetch is background")
	}
	testenv.WaitFor(t, 10*time.Second, "readahead of chunks 1 and 2", func() bool {
		return f.ctx("obj", 2*testChunk) != nil && c.downloads.running() == 0
	})
	f.fakeFetcher.mu.Lock()
	f.fakeFetcher.gate = make(chan struct{}) // readahead of chunk 3 waits
	f.fakeFetcher.mu.Unlock()
	// Readahead of chunks 1 and 2 ran before the gate; read on into
	// chunk 1 to start readahead of chunk 3, which waits at the gate.
	for off := int64(200); off <= testChunk; off += 4096 {
		if _, err := r.ReadAt(ctx, make([]byte, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "readahead of chunk 3", fetched("obj", 3*testChunk))
	if !background("obj", testChunk) || !background("obj", 3*testChunk) {
		t.Fatal("readahead fetches are not background")
	}
	// A reader reaches chunk 3: its fetch is foreground now.
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadAt(ctx, v, make([]byte, 100), 3*testChunk)
		done <- err
	}()
	testenv.WaitFor(t, 10*time.Second, "chunk 3 made foreground", func() bool { return !background("obj", 3*testChunk) })
	// A background reader's own fetch is background.
	v2 := f.add("obj2", data)
	go c.NewBackgroundReader(v2).ReadAt(ctx, make([]byte, 100), 0)
	testenv.WaitFor(t, 10*time.Second, "the background reader's fetch", fetched("obj2", 0))
	if !background("obj2", 0) {
		t.Error("a background reader's fetch is foreground")
	}
	f.fakeFetcher.mu.Lock()
	close(f.fakeFetcher.gate)
	f.fakeFetcher.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 100)
	if _, err := c.NewBackgroundReader(v2).ReadAt(ctx, got, 0); err != nil || !bytes.Equal(got, data[:100]) {
		t.Fatalf("background read: %v", err)
	}
}
