package chunkcache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"s3docs/internal/object"
)

// Benchmarks of the chunk cache without a mount or a server: the fetcher is
// the in-memory fakeFetcher of cache_test.go, the objects' files are real files in
// b.TempDir(). Run with
//
//	go test -run '^$' -bench . -benchmem ./chunkcache
//
// Throughput (MB/s) is of the bytes handed to the reader.

const benchChunk = 8 << 20 // the daemon's default --chunk-size

func openBenchCache(b *testing.B, f Fetcher, chunk, maxBytes, readAhead int64) *Cache {
	b.Helper()
	c, err := Open(Options{
		Dir: b.TempDir(), MaxBytes: maxBytes, ChunkSize: chunk, Namespace: "bench",
		MaxConcurrentGets: 16, ReadAhead: readAhead, ReadTimeout: time.Minute,
	}, f)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// warm reads all of v once so that every chunk is cached.
func warm(b *testing.B, c *Cache, v object.Version) {
	b.Helper()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < v.Size; off += int64(len(buf)) {
		if _, err := c.ReadAt(context.Background(), v, buf, off); err != nil && off+int64(len(buf)) < v.Size {
			b.Fatal(err)
		}
	}
}

// BenchmarkHit: ReadAt of cached chunks, walking the object sequentially.
func BenchmarkHit(b *testing.B) {
	const size = 4 * benchChunk
	for _, n := range []int{128 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("read=%dKiB", n>>10), func(b *testing.B) {
			f := newFakeFetcher()
			v := f.add("obj", randomBytes(1, size))
			c := openBenchCache(b, f, benchChunk, 2*size, 0)
			warm(b, c, v)
			gets := f.total.Load()
			buf := make([]byte, n)
			ctx := context.Background()
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			off := int64(0)
			for i := 0; i < b.N; i++ {
				if _, err := c.ReadAt(ctx, v, buf, off); err != nil {
					b.Fatal(err)
				}
				off += int64(n)
				if off >= size {
					off = 0
				}
			}
			b.StopTimer()
			if g := f.total.Load(); g != gets {
				b.Fatalf("%d fetches on the hit path", g-gets)
			}
		})
	}
}

// BenchmarkMiss: every iteration reads one whole chunk that is not cached
// (a new version of the object each round), so it is fetched from the fake
// fetcher, written to a chunk file, renamed and read back; the cache holds
// four chunks, so it also evicts.
func BenchmarkMiss(b *testing.B) {
	for _, chunk := range []int64{1 << 20, benchChunk} {
		b.Run(fmt.Sprintf("chunk=%dMiB", chunk>>20), func(b *testing.B) {
			const chunks = 4
			size := chunks * chunk
			f := newFakeFetcher()
			f.add("obj", randomBytes(2, int(size)))
			c := openBenchCache(b, f, chunk, chunks*chunk, 0)
			buf := make([]byte, chunk)
			ctx := context.Background()
			b.SetBytes(chunk)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				v := object.Version{Key: "obj", ETag: fmt.Sprintf(`"r%d"`, i/chunks), Size: size}
				if _, err := c.ReadAt(ctx, v, buf, int64(i%chunks)*chunk); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if g := f.total.Load(); g != int64(b.N) {
				b.Fatalf("%d fetches for %d misses", g, b.N)
			}
		})
	}
}

// BenchmarkContentionHit: GOMAXPROCS readers (b.RunParallel) of 128 KiB at
// spread offsets of one cached object.
func BenchmarkContentionHit(b *testing.B) {
	const size = 4 * benchChunk
	const n = 128 << 10
	f := newFakeFetcher()
	v := f.add("obj", randomBytes(3, size))
	c := openBenchCache(b, f, benchChunk, 2*size, 0)
	warm(b, c, v)
	var next atomic.Int64
	b.SetBytes(n)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, n)
		ctx := context.Background()
		for pb.Next() {
			off := (next.Add(1) * 7 * n) % (size - n)
			if _, err := c.ReadAt(ctx, v, buf, off); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkContentionMiss: 8 readers start at once on the same cold object
// (a new version every iteration) and each read all of it in 128 KiB reads:
// each chunk must be fetched once and shared. Bytes are those delivered to
// all readers.
func BenchmarkContentionMiss(b *testing.B) {
	const readers = 8
	const chunks = 4
	const chunk = 1 << 20
	const size = chunks * chunk
	f := newFakeFetcher()
	f.add("obj", randomBytes(4, size))
	c := openBenchCache(b, f, chunk, 4*size, 0)
	bufs := make([][]byte, readers)
	for r := range bufs {
		bufs[r] = make([]byte, 128<<10)
	}
	b.SetBytes(readers * size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := object.Version{Key: "obj", ETag: fmt.Sprintf(`"r%d"`, i), Size: size}
		var wg sync.WaitGroup
		errs := make(chan error, readers)
		for r := 0; r < readers; r++ {
			wg.Add(1)
			go func(buf []byte) {
				defer wg.Done()
				for off := int64(0); off < size; off += int64(len(buf)) {
					if _, err := c.ReadAt(context.Background(), v, buf, off); err != nil {
						errs <- err
						return
					}
				}
			}(bufs[r])
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if g := f.total.Load(); g != int64(b.N)*chunks {
		b.Fatalf("%d fetches, want %d (one per chunk)", g, b.N*chunks)
	}
}
