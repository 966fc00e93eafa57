package chunkcache

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// A cache directory deleted under a running daemon (rm -rf by an operator,
// a cleanup job) used to break every uncached read until a restart, and a
// second daemon could then start on the path. Now the cache notices within
// dirCheckEvery (or at the first fetch that cannot create a file), makes
// the directory again and locks it, so that a second daemon is refused as
// before. If it cannot (the path is now another daemon's, or a directory
// holding other files), reads are served uncached, said once, and the
// cache tries again every dirCheckEvery.

// dirCheckEvery is how often the cache checks that its directory is still
// there: one fstat of three descriptors and a stat of the path.
const dirCheckEvery = 2 * time.Second

// errDirLost marks a fetch that could not store its chunk because the cache
// directory is gone; the reader is then served uncached.
var errDirLost = errors.New("cache directory gone")

// watchDir checks the directory, and whether a bound lowered for a full
// disk can go back up, until Close.
func (c *Cache) watchDir() {
	t := time.NewTicker(dirCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.checkDir()
		c.raiseBound()
	}
}

// checkDir makes the directory again if it was deleted, and says once if
// its path now names another directory (it was moved or replaced, and the
// daemon goes on with the one it holds: that one is locked and consistent).
func (c *Cache) checkDir() {
	d := c.dir.Load()
	if d.gone() || c.lost.Load() {
		c.recoverDir()
		return
	}
	if d.replaced() {
		c.dirMu.Lock()
		logIt := !c.movedLogged
		c.movedLogged = true
		c.dirMu.Unlock()
		if logIt {
			c.log.Warn("cache directory was moved or replaced while in use; this daemon goes on using the one it locked",
				"dir", d.path)
		}
	}
}

// dirLost says whether err, from storing a chunk, came from the cache
// directory being deleted; it then tries to make it again, and reports
// whether the store is worth retrying now.
func (c *Cache) dirLost(err error) (lost, retry bool) {
	if !isGone(err) || !c.dir.Load().gone() {
		return false, false
	}
	return true, c.recoverDir()
}

// recoverDir takes the cache directory again after it was deleted, and
// reports whether the cache has a directory to store into.
func (c *Cache) recoverDir() bool {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	old := c.dir.Load()
	if !old.gone() && !c.lost.Load() {
		return true // recovered meanwhile
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return false
	}
	d, l, err := c.remakeDir(old)
	if err != nil {
		if !c.lost.Swap(true) {
			c.log.Error("cache directory was deleted while in use and cannot be taken again: serving reads uncached until it can",
				"dir", old.path, "err", err, "retry_every", dirCheckEvery)
		}
		return false
	}
	c.dir.Store(d)
	// What the index held is gone with the old directory; what the new
	// one holds (if it was made by hand from a copy, say) is indexed.
	c.rebuild(d, l)
	c.lost.Store(false)
	c.log.Warn("cache directory was deleted while in use: made it again; what it held is fetched again when read",
		"dir", d.path)
	return true
}

// remakeDir opens the directory again: its missing chunks/ or tmp/ if only
// those went, else the whole directory, created, checked and locked as at
// start. The old descriptors stay open until Close (readers may hold them).
func (c *Cache) remakeDir(old *cacheDir) (*cacheDir, layout, error) {
	if !old.rootGone() && !old.replaced() {
		// Still ours and locked: only chunks/ or tmp/ went.
		d, err := old.renew()
		if err != nil {
			return nil, layout{}, fmt.Errorf("chunkcache: %w", err)
		}
		// What is left in the root is indexed afresh; a scan that fails
		// leaves the index empty, which costs only fetches.
		l, _ := scanLayout(d.path)
		c.retired = append(c.retired, old)
		return d, l, nil
	}
	d, l, err := takeDir(old.path, c.log)
	if err != nil {
		return nil, layout{}, err
	}
	c.retired = append(c.retired, old)
	return d, l, nil
}

// raiseBound gives back the bound that noteNoSpace lowered, as far as the
// file system has room again: what the cache holds, plus the space
// available, less two chunks of headroom, up to MaxBytes. A disk that was
// full for a moment (another program's file, since deleted) must not shrink
// the cache until a restart.
func (c *Cache) raiseBound() {
	c.mu.Lock()
	limit, total := c.limit, c.total
	c.mu.Unlock()
	if limit >= c.opt.MaxBytes {
		return
	}
	avail, err := c.dir.Load().available()
	if err != nil {
		return
	}
	room := total + avail - 2*c.opt.ChunkSize
	c.mu.Lock()
	raised := min(c.opt.MaxBytes, room)
	if raised <= c.limit {
		c.mu.Unlock()
		return
	}
	c.limit = raised
	c.mu.Unlock()
	c.log.Info("cache bound raised: its file system has room again", "dir", c.opt.Dir,
		"bound", raised, "configured", c.opt.MaxBytes)
}

// isGone: the error says a directory of the cache is no longer there (it
// was deleted while in use).
func isGone(err error) bool {
	return errors.Is(err, syscall.ENOENT)
}
