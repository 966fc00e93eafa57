package chunkcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"s3docs/internal/object"
)

// Blobs are files derived from an object version (a page range of a PDF,
// its page count). They live beside the chunks, in the same LRU and under
// the same bound, and survive restarts the same way.

// BlobID names the blob `what` of version v.
func (c *Cache) BlobID(v object.Version, what string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00blob\x00%s", c.opt.Namespace, v.Key, v.Identity(), what)
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// OpenBlob opens a cached blob (ErrNotCached if there is none). The file
// stays readable even if the blob is evicted while open.
func (c *Cache) OpenBlob(id string) (*os.File, error) {
	return c.openChunk(id)
}

// TempFile creates a file in the cache's temporary directory, for AdmitBlob.
// Leftovers are removed at the next start.
func (c *Cache) TempFile() (*os.File, error) {
	return c.dir.Load().createTemp(blobTmpPrefix)
}

// AdmitBlob moves a finished file made with TempFile into the cache as blob
// id, and returns its size.
func (c *Cache) AdmitBlob(id, tmpPath string) (int64, error) {
	d := c.dir.Load()
	name, ok := d.isTempOf(tmpPath)
	if !ok {
		return 0, fmt.Errorf("chunkcache: %s is no temporary file of the cache in %s", tmpPath, d.path)
	}
	f, err := d.openTemp(name)
	if err != nil {
		return 0, err
	}
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		d.removeTemp(name)
		return 0, err
	}
	if n == 0 {
		d.removeTemp(name)
		return 0, errors.New("chunkcache: refusing an empty blob")
	}
	e := entry{name: fileName(id, n, h.Sum32()), size: n, crc: h.Sum32(), verified: true, touched: time.Now()}
	if err := d.commit(name, e.name); err != nil {
		d.removeTemp(name)
		return 0, err
	}
	c.admit(id, e)
	return n, nil
}

// Pin makes every chunk of v present on disk and protects them from
// eviction until release is called, and returns their paths in order: the
// concatenation of the files is the object. It is how a worker process gets
// to read a whole PDF through the cache without the daemon holding it in
// memory. The worker should open the files, then the caller releases.
func (c *Cache) Pin(ctx context.Context, v object.Version) (paths []string, release func(), err error) {
	if v.Size > c.opt.MaxBytes/2 {
		return nil, nil, fmt.Errorf("%s is %d bytes, more than half the cache (%d bytes)", v.Key, v.Size, c.opt.MaxBytes)
	}
	n := (v.Size + c.opt.ChunkSize - 1) / c.opt.ChunkSize
	ids := make([]string, n)
	for idx := range ids {
		ids[idx] = c.chunkID(v, int64(idx))
		c.await(ids[idx], 1)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, id := range ids {
				c.await(id, -1)
			}
		})
	}
	paths = make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opt.MaxConcurrentGets)
	for idx := range ids {
		g.Go(func() error {
			p, err := c.chunkPath(gctx, v, int64(idx), ids[idx])
			paths[idx] = p
			return err
		})
	}
	if err := g.Wait(); err != nil {
		release()
		return nil, nil, err
	}
	return paths, release, nil
}

// chunkPath fetches chunk idx if needed, verifies it, and returns its path.
func (c *Cache) chunkPath(ctx context.Context, v object.Version, idx int64, id string) (string, error) {
	for range reopenAttempts {
		f, err := c.openChunk(id)
		if errors.Is(err, ErrNotCached) {
			if c.bypassing() {
				// A worker needs the chunks on disk; there is no room.
				return "", fmt.Errorf("pin %s chunk %d: %w", v.Key, idx, errNoSpace)
			}
			if err := c.fetch(ctx, v, c.chunkSpan(v, idx), false); err != nil {
				return "", err
			}
			continue
		}
		if err != nil {
			return "", err
		}
		f.Close()
		return f.Name(), nil
	}
	return "", fmt.Errorf("pin %s chunk %d: chunk evicted or invalid repeatedly", v.Key, idx)
}
