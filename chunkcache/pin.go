package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"s3docs/internal/object"
)

// Pin makes every chunk of v present on disk and protects them from
// eviction until release is called, and returns their paths in order: the
// concatenation of the files is the object. It is how a worker process gets
// to read a whole PDF through the cache without the daemon holding it in
// memory. The worker should open the files, then the caller releases.
//
// Pin is on its way out (workers are to read by ranges, through ReadAt):
// nothing else in the cache depends on it.
func (c *Cache) Pin(ctx context.Context, v object.Version) (paths []string, release func(), err error) {
	if v.Size > c.opt.MaxBytes/2 {
		return nil, nil, fmt.Errorf("%s is %d bytes, more than half the cache (%d bytes)", v.Key, v.Size, c.opt.MaxBytes)
	}
	chunks := make([]span, c.geo.chunks(v))
	for idx := range chunks {
		chunks[idx] = c.geo.chunk(v, int64(idx))
		c.disk.hold(chunks[idx].id, 1)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, s := range chunks {
				c.disk.hold(s.id, -1)
			}
		})
	}
	paths = make([]string, len(chunks))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opt.MaxConcurrentGets)
	for idx := range chunks {
		g.Go(func() error {
			p, err := c.chunkPath(gctx, v, int64(idx), chunks[idx])
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

// chunkPath fetches chunk idx (s) if needed, verifies it, and returns its
// path.
func (c *Cache) chunkPath(ctx context.Context, v object.Version, idx int64, s span) (string, error) {
	for range reopenAttempts {
		f, err := c.disk.open(s.id)
		if errors.Is(err, ErrNotCached) {
			if c.bypassing() {
				// A worker needs the chunks on disk; there is no room.
				return "", fmt.Errorf("pin %s chunk %d: %w", v.Key, idx, errNoSpace)
			}
			fl, err := c.join(v, s)
			if err != nil {
				return "", err
			}
			if fl != nil {
				if err := fl.wait(ctx); err != nil {
					return "", err
				}
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
