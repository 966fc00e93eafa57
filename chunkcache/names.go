package chunkcache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"s3docs/internal/object"
)

// chunkID names chunk idx of v without using the key itself, so no key can
// reach outside the cache directory. The chunk size is part of it: chunks cut
// with another --chunk-size never match.
func (c *Cache) chunkID(v object.Version, idx int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%d", c.opt.Namespace, v.Key, v.Identity(), c.opt.ChunkSize, idx)
	return hex.EncodeToString(h.Sum(nil)[:20])
}
