package chunkcache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"

	"s3docs/internal/object"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chunkID names chunk idx of v without using the key itself, so no key can
// reach outside the cache directory. The chunk size is part of it: chunks cut
// with another --chunk-size never match.
func (c *Cache) chunkID(v object.Version, idx int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%d", c.opt.Namespace, v.Key, v.Identity(), c.opt.ChunkSize, idx)
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// fileName keeps the length and checksum with the chunk: a restart can check
// the size from a directory listing and the content on first read.
func fileName(id string, size int64, crc uint32) string {
	return fmt.Sprintf("%s-%d-%08x", id, size, crc)
}

func parseName(name string) (id string, size int64, crc uint32, ok bool) {
	parts := strings.Split(name, "-")
	if len(parts) != 3 || len(parts[0]) != 40 || len(parts[2]) != 8 {
		return "", 0, 0, false
	}
	if raw, err := hex.DecodeString(parts[0]); err != nil || hex.EncodeToString(raw) != parts[0] {
		return "", 0, 0, false
	}
	size, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || size <= 0 {
		return "", 0, 0, false
	}
	c, err := strconv.ParseUint(parts[2], 16, 32)
	if err != nil {
		return "", 0, 0, false
	}
	// Only the exact spelling fileName writes: no sign, padding or upper
	// case, so one chunk has one name and a restart keeps one file per id.
	if fileName(parts[0], size, uint32(c)) != name {
		return "", 0, 0, false
	}
	return parts[0], size, uint32(c), true
}

// verify checks a chunk file against the length and checksum in its name.
func verify(f *os.File, e entry) error {
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, io.NewSectionReader(f, 0, e.size+1))
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if n != e.size || h.Sum32() != e.crc {
		return fmt.Errorf("verify: %d bytes with crc32c %08x, want %d bytes with %08x", n, h.Sum32(), e.size, e.crc)
	}
	return nil
}
