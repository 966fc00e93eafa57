package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// A cache directory deleted under a running daemon (rm -rf by an operator,
// a cleanup job) used to break every uncached read until a restart, and a
// second daemon could then start on the path. Now the disk notices within
// dirCheckEvery (or at the first fetch that cannot create a file), makes
// the directory again and locks it, so that a second daemon is refused as
// before. If it cannot (the path is now another daemon's, or a directory
// holding other files), reads are served uncached, said once, and the
// disk tries again every dirCheckEvery.

// dirCheckEvery is how often the disk checks that its directory is still
// there: one fstat of three descriptors and a stat of the path.
const dirCheckEvery = 2 * time.Second

// errDirLost marks a fetch that could not store its chunk because the cache
// directory is gone; the reader is then served uncached.
var errDirLost = errors.New("cache directory gone")

// watch checks the directory, and whether a bound lowered for a full disk
// can go back up, until ctx ends.
func (dk *disk) watch(ctx context.Context) {
	t := time.NewTicker(dirCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		dk.checkDir(ctx)
		dk.raiseBound()
	}
}

// checkDir makes the directory again if it was deleted, and says once if
// its path now names another directory (it was moved or replaced, and the
// daemon goes on with the one it holds: that one is locked and consistent).
func (dk *disk) checkDir(ctx context.Context) {
	d := dk.dir.Load()
	if d.gone() || dk.lost.Load() {
		dk.recoverDir(ctx)
		return
	}
	if d.replaced() {
		dk.dirMu.Lock()
		logIt := !dk.movedLogged
		dk.movedLogged = true
		dk.dirMu.Unlock()
		if logIt {
			dk.log.Warn("cache directory was moved or replaced while in use; this daemon goes on using the one it locked",
				"dir", d.path)
		}
	}
}

// dirLost says whether err, from storing an entry, came from the cache
// directory being deleted; it then tries to make it again, and reports
// whether saving is worth retrying now.
func (dk *disk) dirLost(ctx context.Context, err error) (lost, retry bool) {
	if !isGone(err) || !dk.dir.Load().gone() {
		return false, false
	}
	return true, dk.recoverDir(ctx)
}

// isGone: the error says a directory of the cache is no longer there (it
// was deleted while in use).
func isGone(err error) bool {
	return errors.Is(err, syscall.ENOENT)
}

// recoverDir takes the cache directory again after it was deleted, and
// reports whether the disk has a directory to write into. Once ctx has
// ended (the cache is closing) it does nothing.
func (dk *disk) recoverDir(ctx context.Context) bool {
	dk.dirMu.Lock()
	defer dk.dirMu.Unlock()
	old := dk.dir.Load()
	if !old.gone() && !dk.lost.Load() {
		return true // recovered meanwhile
	}
	if ctx.Err() != nil {
		return false
	}
	d, l, err := dk.remakeDir(old)
	if err != nil {
		if !dk.lost.Swap(true) {
			dk.log.Error("cache directory was deleted while in use and cannot be taken again: serving reads uncached until it can",
				"dir", old.path, "err", err, "retry_every", dirCheckEvery)
		}
		return false
	}
	dk.dir.Store(d)
	// What the index held is gone with the old directory; what the new
	// one holds (if it was made by hand from a copy, say) is indexed.
	dk.rebuild(d, l)
	dk.lost.Store(false)
	dk.log.Warn("cache directory was deleted while in use: made it again; what it held is fetched again when read",
		"dir", d.path)
	return true
}

// remakeDir opens the directory again: its missing subdirectories if only
// those went, else the whole directory, created, checked and locked as at
// start. The old descriptors stay open until close (readers may hold them).
func (dk *disk) remakeDir(old *cacheDir) (*cacheDir, layout, error) {
	if !old.rootGone() && !old.replaced() {
		// Still ours and locked: only objects/, blobs/ or tmp/ went.
		d, err := old.renew()
		if err != nil {
			return nil, layout{}, fmt.Errorf("chunkcache: %w", err)
		}
		// What is left in the root is indexed afresh; a scan that fails
		// leaves the index empty, which costs only fetches.
		l, _ := scanLayout(d.path)
		dk.retired = append(dk.retired, old)
		return d, l, nil
	}
	d, l, err := takeDir(old.path, dk.log)
	if err != nil {
		return nil, layout{}, err
	}
	dk.retired = append(dk.retired, old)
	return d, l, nil
}
