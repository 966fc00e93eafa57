package chunkcache

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotCached: no such chunk or blob in the cache (never made, or evicted).
var ErrNotCached = errors.New("not cached")

// disk is what the cache holds: the objects' files and the blobs in the
// cache directory, and their index, within a byte bound. It knows entries
// by span: which to fetch and how is for the rest of the cache to say.
//
// An object's file is written in place: a download registers the range it
// writes (beginWrite), writes it, appends the entry to the object's map and
// admits it (commit). Eviction takes entries out of the index and then
// punches holes where nothing else of the object is (release): a hole
// must never open under a reader, so readers and writers hold the object's
// lock shared and punching holds it exclusively.
type disk struct {
	idx   *index
	geo   geometry
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
func openDisk(dir string, maxBytes int64, geo geometry, stats *counters, log *slog.Logger) (*disk, error) {
	dk := &disk{idx: newIndex(maxBytes, geo), geo: geo, stats: stats, log: log, chunkSize: geo.chunkSize}
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

// rebuild indexes what l found in d: the objects from their maps, the blobs
// from their names and sizes, without reading their bytes, so a large cache
// starts in seconds (each entry is checked when it is first read). It
// deletes leftovers: temporary files, blobs of the wrong size, objects'
// files without their maps (and maps without their files), maps that are
// not ours to read, and the files of the per-chunk layout; it punches the
// bytes of objects' files that no entry holds (downloads a crash cut short).
// The index held before is dropped.
func (dk *disk) rebuild(d *cacheDir, l layout) {
	for _, t := range l.tmps {
		d.removeTemp(t.name)
	}
	for _, e := range l.invalid {
		d.removeBlob(e.name)
	}
	for _, o := range l.orphans {
		d.removeObjectFile(o.name)
	}
	if len(l.legacy) > 0 {
		var bytes int64
		for _, e := range l.legacy {
			bytes += e.info.Size()
		}
		n := d.removeLegacy(entryNames(l.legacy))
		dk.log.Warn("cache layout of an earlier version: removed its files; what they held is fetched again when read",
			"dir", d.path, "files", n, "bytes", bytes)
	}
	type dated struct {
		t       time.Time
		entries []*entry
	}
	var all []dated
	var objects []*objFile
	invalid := len(l.invalid) + len(l.orphans)
	for _, fo := range l.objects {
		o, entries, err := dk.loadObject(d, fo)
		if err != nil {
			dk.log.Warn("removing an unreadable object file from the cache", "dir", d.path, "object", fo.id, "err", err)
			d.removeObject(fo.id)
			invalid++
			continue
		}
		objects = append(objects, o)
		all = append(all, dated{fo.data.ModTime(), entries})
	}
	for _, fe := range l.blobs {
		id, size, crc, _ := parseName(fe.name)
		e := &entry{id: id, name: fe.name, key: entryKey{kind: kindBlob}, n: size, crc: crc, touched: fe.info.ModTime().UnixNano()}
		all = append(all, dated{fe.info.ModTime(), []*entry{e}})
	}
	slices.SortStableFunc(all, func(a, b dated) int { return a.t.Compare(b.t) })
	var ordered []*entry
	for _, de := range all {
		ordered = append(ordered, de.entries...)
	}
	victims, entries, total := dk.idx.reset(objects, ordered)
	dk.release(victims)
	punched := int64(0)
	for _, o := range objects {
		punched += dk.sweep(d, o)
	}
	dk.log.Info("chunk cache ready", "dir", d.path, "objects", len(objects), "entries", entries, "bytes", total,
		"removed_invalid", invalid, "removed_tmp", len(l.tmps), "evicted", len(victims), "freed_leftovers", punched)
}

func entryNames(es []foundEntry) []string {
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.name
	}
	return names
}

// loadObject reads the map of the object fo and makes its objFile and
// entries (not checked yet). A map that ended in a damaged record, or that
// holds more dead records than live ones, is rewritten.
func (dk *disk) loadObject(d *cacheDir, fo foundObject) (*objFile, []*entry, error) {
	b, err := d.readMap(fo.id)
	if err != nil {
		return nil, nil, err
	}
	m, err := replayMap(b, dk.geo)
	if err != nil {
		return nil, nil, err
	}
	if m.header.size != fo.data.Size() {
		return nil, nil, fmt.Errorf("file of %d bytes, its map says %d", fo.data.Size(), m.header.size)
	}
	if !m.clean || m.records > 2*len(m.live)+compactSlack {
		if err := d.rewriteMap(fo.id, m.encode()); err != nil {
			return nil, nil, err
		}
	}
	o := newObjFile(fo.id, m.header.size)
	o.created, o.exported, o.records, o.touched = true, m.exported, m.records, fo.data.ModTime().UnixNano()
	entries := make([]*entry, len(m.live))
	for i, le := range m.live {
		off, n := dk.geo.rangeOf(o.size, le.key)
		entries[i] = &entry{obj: o, key: le.key, off: off, n: n, crc: le.crc}
	}
	return o, entries, nil
}

// compactSlack: a map is rewritten once its dead records outnumber its
// live ones by this many (a record is 24 bytes).
const compactSlack = 64

// sweep punches the bytes of o's file that no entry holds: what downloads
// cut short by a crash, or evictions between their map record and their
// punch, left. They are not counted against the bound, so they must go.
// A file once handed to the kernel is never punched: if it holds such
// bytes, it goes whole. It returns the bytes freed.
func (dk *disk) sweep(d *cacheDir, o *objFile) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	f, err := d.openObject(o.id, true)
	if err != nil {
		return 0
	}
	defer f.Close()
	var freed int64
	fd := int(f.Fd())
	for pos := int64(0); pos < o.size; {
		start, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: no data past pos
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil || end <= start {
			break
		}
		for _, h := range dk.idx.holes(o, start, min(end, o.size)-start) {
			if dk.idx.exported(o) {
				d.removeObject(o.id)
				dk.idx.forget(o)
				return o.size
			}
			if punch(f, h.off, h.n, o.size) == nil {
				freed += h.n
			}
		}
		pos = end
	}
	return freed
}

func (dk *disk) has(s span) bool { return dk.idx.has(s) }

// hold protects entry id from eviction (delta 1) until the matching
// release (delta -1).
func (dk *disk) hold(id string, delta int) { dk.idx.hold(id, delta) }

// readAt reads len(p) bytes of entry s at within, if the disk holds s
// (ErrNotCached if not), and marks it recently used. An entry read for
// the first time since the daemon started is checked first; one that fails
// the check, or reads short, is dropped (and ErrNotCached returned).
func (dk *disk) readAt(s span, p []byte, within int64) (int, error) {
	o := dk.idx.object(s.obj, 0, false)
	if o == nil {
		return 0, ErrNotCached
	}
	o.mu.RLock()
	n, bad, err := dk.readLocked(o, s, p, within)
	o.mu.RUnlock()
	if bad != nil {
		dk.drop(bad, err.Error())
		return 0, ErrNotCached
	}
	return n, err
}

// readLocked is readAt with o.mu held shared: no hole can open meanwhile.
// bad is an entry found invalid, err then says why.
func (dk *disk) readLocked(o *objFile, s span, p []byte, within int64) (int, *entry, error) {
	now := time.Now()
	e, touch := dk.idx.get(o, s.key, now)
	if e == nil {
		return 0, nil, ErrNotCached
	}
	d := dk.dir.Load()
	if touch {
		d.touchObject(o.id, now)
	}
	f, err := d.openObject(o.id, false)
	if errors.Is(err, fs.ErrNotExist) {
		// Deleted under the daemon: fetched again (and the directory
		// recovered, see recover.go).
		dk.idx.remove(e)
		return 0, nil, ErrNotCached
	}
	if err != nil {
		return 0, nil, fmt.Errorf("open cached object: %w", err)
	}
	defer f.Close()
	if !e.verified {
		if err := verifyRange(f, e.off, e.n, e.crc); err != nil {
			return 0, e, err
		}
		dk.idx.markVerified(e)
	}
	n, err := f.ReadAt(p, s.off+within)
	if n != len(p) {
		return n, e, fmt.Errorf("short read at %d: %v", s.off+within, err)
	}
	return n, nil, nil
}

// objWriter writes one entry's range into its object's file, for a
// download: the range is registered (no hole is punched in it) until the
// entry is committed or the writer closed.
type objWriter struct {
	dk        *disk
	o         *objFile
	s         span
	r         writeRange
	f         *os.File // read and write: the download's readers read it too
	committed bool
}

// beginWrite registers s's range of its object's file for a download, and
// opens the file (making it, and the object's map, if it is new).
func (dk *disk) beginWrite(s span) (*objWriter, error) {
	r := writeRange{s.off, s.n}
	for attempt := 0; ; attempt++ {
		o := dk.idx.object(s.obj, s.size, true)
		o.mu.RLock()
		state := dk.idx.beginWrite(o, r)
		o.mu.RUnlock()
		switch state {
		case writeAgain:
			continue
		case writeCreate:
			if err := dk.create(o); err != nil {
				return nil, err
			}
			continue
		}
		f, err := dk.dir.Load().openObject(o.id, true)
		if err == nil {
			return &objWriter{dk: dk, o: o, s: s, r: r, f: f}, nil
		}
		dk.idx.endWrite(o, r)
		if !errors.Is(err, fs.ErrNotExist) || attempt > 0 || dk.dir.Load().gone() {
			return nil, err
		}
		// Its file was deleted by someone else (the directory is still
		// there): what the index holds of it is gone; make it again.
		dk.forget(o)
	}
}

// create makes o's files, unless another download did meanwhile.
func (dk *disk) create(o *objFile) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !dk.idx.needsCreate(o) {
		return nil
	}
	err := dk.dir.Load().createObject(o.id, o.size, mapHeader{size: o.size, chunkSize: dk.geo.chunkSize}.encode())
	dk.idx.created(o, err == nil)
	return err
}

// forget drops what the index holds of o, whose files are gone.
func (dk *disk) forget(o *objFile) {
	o.mu.Lock()
	defer o.mu.Unlock()
	dk.idx.forget(o)
}

// Write writes the next bytes of the entry: w is an io.Writer at the
// entry's offset (see download.save).
func (w *objWriter) WriteAt(p []byte, off int64) (int, error) { return w.f.WriteAt(p, off) }

// commit records the entry, whose bytes are written and have checksum crc,
// in the object's map and admits it, evicting what the bound asks.
func (w *objWriter) commit(crc uint32) (*entry, error) {
	d := w.dk.dir.Load()
	o := w.o
	// Recorded and indexed under the map's lock: a removal of an earlier
	// entry of the same range (appendDels) is recorded before or after
	// both, never between.
	o.mapMu.Lock()
	err := d.appendMap(o.id, mapRecord{op: opAdd, key: w.s.key, crc: crc}.encode())
	if err != nil {
		o.mapMu.Unlock()
		return nil, err
	}
	o.records++
	e := &entry{obj: o, key: w.s.key, off: w.s.off, n: w.s.n, crc: crc, verified: true}
	victims, ok := w.dk.idx.commit(o, e, w.r)
	o.mapMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: its object's file was removed", errDirLost)
	}
	w.committed = true
	w.dk.evict(victims)
	return e, nil
}

// close ends the write. Bytes of a write that was not committed are
// punched out again (they are counted nowhere).
func (w *objWriter) close() {
	w.f.Close()
	if w.committed {
		return
	}
	o := w.o
	o.mu.Lock()
	defer o.mu.Unlock()
	w.dk.idx.endWrite(o, w.r)
	w.dk.releaseLocked(o, nil, []writeRange{w.r})
}

// evict releases victims of the bound, counted as evictions.
func (dk *disk) evict(victims []*entry) {
	dk.stats.evictions.Add(int64(len(victims)))
	dk.release(victims)
}

// release deletes the files of blobs that went from the index, and frees
// the ranges of objects' entries that went: holes punched where no other
// entry of the object is, or the whole file removed when nothing of it is
// left (see releaseLocked).
func (dk *disk) release(gone []*entry) {
	if len(gone) == 0 {
		return
	}
	d := dk.dir.Load()
	var byObject map[*objFile][]*entry
	var order []*objFile
	for _, e := range gone {
		if e.obj == nil {
			d.removeBlob(e.name)
			continue
		}
		if byObject == nil {
			byObject = map[*objFile][]*entry{}
		}
		if _, ok := byObject[e.obj]; !ok {
			order = append(order, e.obj)
		}
		byObject[e.obj] = append(byObject[e.obj], e)
	}
	for _, o := range order {
		o.mu.Lock()
		dk.releaseLocked(o, byObject[o], nil)
		o.mu.Unlock()
	}
}

// releaseLocked frees what went of o: entries taken out of the index (their
// removal recorded in the map, then holes punched) and ranges written but
// not committed (holes punched). Called with o.mu held exclusively.
func (dk *disk) releaseLocked(o *objFile, gone []*entry, written []writeRange) {
	d := dk.dir.Load()
	state := dk.idx.releaseState(o)
	if state == releaseRemove {
		d.removeObject(o.id)
		dk.idx.removed(o)
		return
	}
	if len(gone) > 0 && state != releaseNone {
		dk.appendDels(d, o, gone)
	}
	if state != releasePunch {
		return
	}
	var f *os.File
	punchRange := func(off, n int64) {
		for _, h := range dk.idx.holes(o, off, n) {
			if f == nil {
				var err error
				if f, err = d.openObject(o.id, true); err != nil {
					return
				}
			}
			if err := punch(f, h.off, h.n, o.size); err != nil {
				dk.log.Debug("cannot punch a hole in a cached object", "err", err)
			}
		}
	}
	for _, e := range gone {
		punchRange(e.off, e.n)
	}
	for _, r := range written {
		punchRange(r.off, r.n)
	}
	if f != nil {
		f.Close()
	}
}

// appendDels records in o's map that entries went, and rewrites the map
// when it has grown well past what it says.
func (dk *disk) appendDels(d *cacheDir, o *objFile, gone []*entry) {
	o.mapMu.Lock()
	defer o.mapMu.Unlock()
	// An entry of the same range admitted again since (a download that
	// was already under way) stays recorded.
	gone = dk.idx.notPresent(o, gone)
	if len(gone) == 0 {
		return
	}
	b := make([]byte, 0, len(gone)*mapRecordSize)
	for _, e := range gone {
		b = append(b, mapRecord{op: opDel, key: e.key}.encode()...)
	}
	if d.appendMap(o.id, b) == nil {
		o.records += len(gone)
	}
	if o.records > 2*dk.idx.entryCount(o)+compactSlack {
		dk.compactLocked(d, o)
	}
}

// compactLocked rewrites o's map to what it says (o.mapMu held): read back
// and replayed, so that it is exactly the map's own word.
func (dk *disk) compactLocked(d *cacheDir, o *objFile) {
	b, err := d.readMap(o.id)
	if err != nil {
		return
	}
	m, err := replayMap(b, dk.geo)
	if err != nil {
		return
	}
	if d.rewriteMap(o.id, m.encode()) == nil {
		o.records = m.records
	}
}

// drop removes an entry found to be bad so that the next read fetches it.
func (dk *disk) drop(e *entry, why string) {
	if !dk.idx.remove(e) {
		return
	}
	dk.stats.badChunks.Add(1)
	name := e.name
	if e.obj != nil {
		name = fmt.Sprintf("%s (bytes %d-%d)", e.obj.id, e.off, e.off+e.n-1)
	}
	dk.log.Warn("dropping invalid cached chunk", "file", name, "reason", why)
	dk.release([]*entry{e})
}

// discard removes the object obj's entries, except those held, and says
// how many there were.
func (dk *disk) discard(obj string) int {
	o := dk.idx.object(obj, 0, false)
	if o == nil {
		return 0
	}
	gone := dk.idx.discard(o)
	dk.release(gone)
	return len(gone)
}

// backing opens object obj's file for the kernel to read (FUSE
// passthrough), if the index can pin it (see index.pin): it then stays
// whole until unpin is called.
func (dk *disk) backing(obj string) (f *os.File, unpin func(), ok bool) {
	o := dk.idx.object(obj, 0, false)
	if o == nil || dk.lost.Load() {
		return nil, nil, false
	}
	ok, exported := dk.idx.pin(o)
	if !ok {
		return nil, nil, false
	}
	d := dk.dir.Load()
	if exported {
		o.mapMu.Lock()
		err := d.appendMap(o.id, mapRecord{op: opExport}.encode())
		if err == nil {
			o.records++
		}
		o.mapMu.Unlock()
		if err != nil {
			dk.idx.unpin(o)
			return nil, nil, false
		}
	}
	f, err := d.openObject(o.id, false)
	if err != nil {
		dk.idx.unpin(o)
		return nil, nil, false
	}
	var once sync.Once
	return f, func() { once.Do(func() { dk.idx.unpin(o) }) }, true
}

// openBlob opens blob id and marks it recently used; see readAt for the
// check.
func (dk *disk) openBlob(id string) (*os.File, error) {
	now := time.Now()
	e, touch := dk.idx.getBlob(id, now)
	if e == nil {
		return nil, ErrNotCached
	}
	d := dk.dir.Load()
	if touch {
		d.touchBlob(e.name, now)
	}
	f, err := d.openBlob(e.name)
	if errors.Is(err, fs.ErrNotExist) {
		dk.idx.remove(e)
		return nil, ErrNotCached
	}
	if err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	if !e.verified {
		if err := verify(f, e.n, e.crc); err != nil {
			f.Close()
			dk.drop(e, err.Error())
			return nil, ErrNotCached
		}
		dk.idx.markVerified(e)
	}
	return f, nil
}

// admitBlob indexes a blob just committed into blobs/ and evicts what the
// bound asks.
func (dk *disk) admitBlob(e *entry) {
	replaced, victims := dk.idx.addBlob(e)
	if replaced != nil {
		dk.dir.Load().removeBlob(replaced.name)
	}
	dk.evict(victims)
}

// shrinkToFit brings the bound down to what the disk holds less two
// chunks, when its file system was found full while the disk holds at
// least a chunk more than that: then the disk's own entries are what
// filled the disk (--cache-size larger than the room there is), and
// without a lower bound it would stay full for good. The bound goes back up
// as the file system gets room again (see raiseBound).
func (dk *disk) shrinkToFit() (limit int64, lowered bool) {
	victims, limit, lowered := dk.idx.shrinkTo(2*dk.chunkSize, dk.chunkSize)
	dk.evict(victims)
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
