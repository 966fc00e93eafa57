package chunkcache

import (
	"testing"

	"s3docs/internal/object"
)

// A Reader's access pattern, read by read: what it fetches ahead, and what
// its misses fetch. No I/O: observe is the whole policy.
func TestReaderAccessPattern(t *testing.T) {
	const size = 8 * testChunk
	quarter := int64(testChunk / 4) // a long run
	type read struct {
		off, n     int64
		from, thru int64 // chunks to fetch ahead; from > thru for none
		miss       missPolicy
	}
	none := func(off, n int64, miss missPolicy) read { return read{off, n, 1, 0, miss} }
	for _, tc := range []struct {
		name  string
		ahead int64 // readahead distance in chunks
		reads []read
	}{
		{"a scan reads ahead from its second read", 3, []read{
			none(0, 4096, fetchChunks),
			{4096, 4096, 1, 3, fetchChunks},
			{8192, testChunk, 2, 4, fetchChunks},
		}},
		{"no readahead configured", 0, []read{
			none(0, 4096, fetchChunks),
			none(4096, 4096, fetchChunks),
		}},
		// The tail read and the jump back are two jumps: the first reads
		// of the header fetch pieces, until the scan is two reads long.
		{"the tail, then a scan from the start", 3, []read{
			none(size-100, 100, fetchChunks),
			none(0, 4096, fetchPieces),
			none(4096, 4096, fetchPieces),
			{8192, 4096, 1, 3, fetchChunks},
			{12288, 4096, 1, 3, fetchChunks},
		}},
		{"the second jump makes it random, a long run sequential again", 3, []read{
			none(size-100, 100, fetchChunks),
			none(5*testChunk, 100, fetchPieces),
			none(testChunk, 100, fetchPieces),
			none(3*testChunk, 100, fetchPieces),
			none(3*testChunk+100, quarter, fetchChunks),
			{3*testChunk + 100 + quarter, 4096, 4, 6, fetchChunks},
		}},
		{"readahead stops at the last chunk", 3, []read{
			none(6*testChunk, 4096, fetchChunks),
			none(6*testChunk+4096, 4096, fetchChunks),
			{6*testChunk + 8192, 4096, 7, 7, fetchChunks},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := policyCache(tc.ahead)
			r := c.NewReader(object.Version{Key: "obj", ETag: `"e"`, Size: size})
			for i, rd := range tc.reads {
				from, thru, miss := r.observe(rd.off, rd.n)
				if from != rd.from || thru != rd.thru || miss != rd.miss {
					t.Fatalf("read %d (%d+%d): ahead %d..%d, miss %v; want %d..%d, %v",
						i, rd.off, rd.n, from, thru, miss, rd.from, rd.thru, rd.miss)
				}
			}
		})
	}
}
