package testenv

import (
	"bufio"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// newRand returns the ChaCha8 stream for seed. RandomBytes, RandomReader and
// WriteRandomFile all produce prefixes of this one stream, so for one seed
// they agree byte for byte.
func newRand(seed int64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:8], uint64(seed))
	copy(s[8:], "s3docs/internal/testenv")
	return rand.NewChaCha8(s)
}

// RandomBytes returns n deterministic pseudo-random bytes for seed (several
// GB/s). The same seed gives the same bytes, and RandomBytes(seed, m) is a
// prefix of RandomBytes(seed, n) for m < n.
func RandomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	_, _ = newRand(seed).Read(b) // never fails
	return b
}

// RandomReader streams the same bytes as RandomBytes(seed, n) without holding
// them in memory, then returns io.EOF.
func RandomReader(seed int64, n int64) io.Reader {
	return io.LimitReader(newRand(seed), n)
}

// WriteRandomFile writes RandomBytes(seed, n) to path (created or truncated,
// mode 0644), streaming it, and fails the test on error.
func WriteRandomFile(t testing.TB, path string, seed int64, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatalf("testenv: create %s: %v", path, err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, err = io.Copy(w, RandomReader(seed, n))
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("testenv: write %s: %v", path, err)
	}
}
