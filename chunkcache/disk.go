package chunkcache

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotCached: no such chunk or blob in the cache (never made, or evicted).
var ErrNotCached = errors.New("not cached")

// disk is what the cache holds: entry files in the cache directory and
// their index, within a byte bound. It knows entries by id only: which
// bytes of which object an entry holds, whether to fetch it and how, is
// for the rest of the cache to say.
type disk struct {
	idx   *index
	stats *counters
	log   *slog.Logger
	// chunkSize is the headroom unit when the file system fills up (see
	// shrinkToFit).
	chunkSize int64

	// dir is the cache directory held open and locked; it changes only
	// when the directory was deleted under the daemon (see recover.go).
	dir   atomic.Pointer[cacheDir]
	dirMu sync.Mutex // serializes recoverDir and close; guards retired and movedLogged
	// retired are directories found deleted, closed by close: a reader
	// may still be using them.
	retired []*cacheDir
	// lost: the cache directory is gone and could not be made again;
	// reads are served uncached until it can.
	lost atomic.Bool
	// movedLogged: the path was found to name another directory than the
	// one held, and that was logged.
	movedLogged bool
}

// openDisk takes the directory (see takeDir) and indexes what it holds.
func openDisk(dir string, maxBytes, chunkSize int64, stats *counters, log *slog.Logger) (*disk, error) {
	dk := &disk{idx: newIndex(maxBytes), stats: stats, log: log, chunkSize: chunkSize}
	d, l, err := takeDir(dir, log)
	if err != nil {
		return nil, err
	}
	dk.dir.Store(d)
	dk.rebuild(d, l)
	return dk, nil
}

// close releases the directories, and with them the lock.
func (dk *disk) close() {
	dk.dirMu.Lock()
	defer dk.dirMu.Unlock()
	for _, d := range dk.retired {
		d.close()
	}
	dk.dir.Load().close()
}

// rebuild indexes the entries l found in d's chunks/ from names and sizes
// alone (no reads), so a large cache starts in seconds, and deletes
// leftovers: temporary files of interrupted fetches and entries of the
// wrong size (all named as s3docs names them: lockDir refused anything
// else). The index held before is dropped.
func (dk *disk) rebuild(d *cacheDir, l layout) {
	for _, t := range l.tmps {
		d.removeTemp(t.name)
	}
	for _, e := range l.invalid {
		d.remove(e.name)
	}
	found := make([]indexed, 0, len(l.entries))
	for _, fe := range l.entries {
		id, size, crc, _ := parseName(fe.name)
		found = append(found, indexed{id, entry{name: fe.name, size: size, crc: crc, touched: fe.info.ModTime()}})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].e.touched.Before(found[j].e.touched) })
	dups, victims, entries, total := dk.idx.reset(found)
	for _, e := range dups {
		d.remove(e.name)
	}
	dk.unlink(victims)
	dk.log.Info("chunk cache ready", "dir", d.path, "chunks", entries, "bytes", total,
		"removed_invalid", len(l.invalid)+len(dups), "removed_tmp", len(l.tmps), "evicted", len(victims))
}

func (dk *disk) has(id string) bool { return dk.idx.has(id) }

// hold protects entry id from eviction (delta 1) until the matching
// release (delta -1).
func (dk *disk) hold(id string, delta int) { dk.idx.hold(id, delta) }

// open opens entry id and marks it recently used. The file stays readable
// through the descriptor even if the entry is evicted meanwhile.
func (dk *disk) open(id string) (*os.File, error) {
	now := time.Now()
	e, touch, ok := dk.idx.get(id, now)
	if !ok {
		return nil, ErrNotCached
	}
	d := dk.dir.Load()
	if touch {
		d.touch(e.name, now)
	}
	f, err := d.open(e.name)
	if errors.Is(err, os.ErrNotExist) {
		dk.idx.removeFile(id, e.name)
		return nil, ErrNotCached
	}
	if err != nil {
		return nil, fmt.Errorf("open chunk: %w", err)
	}
	if !e.verified {
		if err := verify(f, e.size, e.crc); err != nil {
			f.Close()
			dk.drop(id, err.Error())
			return nil, ErrNotCached
		}
		dk.idx.markVerified(id)
	}
	return f, nil
}

// admit indexes an entry that was just committed into chunks/ and evicts
// the least recently used entries until the disk is within its bound.
func (dk *disk) admit(id string, e entry) {
	replaced, victims := dk.idx.add(id, e)
	for _, old := range replaced {
		dk.dir.Load().remove(old.name)
	}
	dk.unlink(victims)
}

// drop removes an entry found to be bad so that the next read fetches it.
func (dk *disk) drop(id, why string) {
	e, ok := dk.idx.remove(id)
	if !ok {
		return
	}
	dk.stats.badChunks.Add(1)
	dk.log.Warn("dropping invalid cached chunk", "file", e.name, "reason", why)
	dk.dir.Load().remove(e.name)
}

// discard removes the entries ids, except those held, and says how many
// there were.
func (dk *disk) discard(ids []string) int {
	victims := dk.idx.discard(ids)
	dk.unlink(victims)
	return len(victims)
}

// unlink deletes evicted entries' files outside the index's lock: readers
// holding one open keep reading it.
func (dk *disk) unlink(victims []entry) {
	d := dk.dir.Load()
	for _, e := range victims {
		d.remove(e.name)
	}
	dk.stats.evictions.Add(int64(len(victims)))
}

// shrinkToFit brings the bound down to what the disk holds less two
// chunks, when its file system was found full while the disk holds at
// least a chunk more than that: then the disk's own entries are what
// filled the disk (--cache-size larger than the room there is), and
// without a lower bound it would stay full for good. The bound goes back up
// as the file system gets room again (see raiseBound).
func (dk *disk) shrinkToFit() (limit int64, lowered bool) {
	victims, limit, lowered := dk.idx.shrinkTo(2*dk.chunkSize, dk.chunkSize)
	dk.unlink(victims)
	return limit, lowered
}

// raiseBound gives back the bound that shrinkToFit lowered, as far as the
// file system has room again: what the disk holds, plus the space
// available, less two chunks of headroom, up to --cache-size. A disk that
// was full for a moment (another program's file, since deleted) must not
// shrink the cache until a restart.
func (dk *disk) raiseBound() {
	total, limit := dk.idx.usage()
	if limit >= dk.idx.max {
		return
	}
	d := dk.dir.Load()
	avail, err := d.available()
	if err != nil {
		return
	}
	if raised, ok := dk.idx.raiseTo(total + avail - 2*dk.chunkSize); ok {
		dk.log.Info("cache bound raised: its file system has room again", "dir", d.path,
			"bound", raised, "configured", dk.idx.max)
	}
}
