package chunkcache

import (
	"sync"
	"time"
)

// entry is one cache entry: a range of an object's file (a chunk, a piece or
// a fragment of the object), or a blob.
type entry struct {
	id   string   // a blob's id (an object's entry has its span's, see spanID)
	obj  *objFile // nil for a blob
	name string   // a blob's file name
	key  entryKey
	// off and n are the range of the object the entry holds (a blob: 0
	// and its size).
	off, n int64
	crc    uint32
	// verified is false for entries found at startup until their checksum
	// has been checked once: a crash of the machine can leave a recorded
	// entry whose bytes never reached the disk, and a wrong byte is never
	// acceptable.
	verified bool
	inSmall  bool
	// touched is when a blob's mtime was last set, in Unix nanoseconds
	// (objects keep theirs in objFile).
	touched int64

	lru, small, sib links // in the LRU, in the small entries, in its object
}

// spanID is the id of the span e holds (its blob id for a blob): made when
// asked, which is rarely (readers waiting for it), rather than kept.
func (e *entry) spanID() string {
	if e.obj == nil {
		return e.id
	}
	return spanID(e.obj.id, e.key)
}

const touchEvery = 10 * time.Minute

// objFile is the file of one object version (layout.go) as the index knows
// it: which entries it holds, which ranges downloads are writing, who pins
// it.
type objFile struct {
	id   string
	size int64
	// mu guards the file's bytes against holes: readers of its entries and
	// downloads registering the range they write hold it shared; punching
	// a hole and removing the file hold it exclusively, and touch no
	// range that an entry holds or a download writes. Taken before
	// index.mu, never after.
	mu sync.RWMutex
	// mapMu serializes the appends and rewrites of the object's map;
	// records is how many records it holds.
	mapMu   sync.Mutex
	records int

	// The rest is guarded by index.mu. present indexes entries by key once
	// there are more than a few (see find); frags counts fragments by
	// chunk index, once there are any: most objects have one or two
	// entries, and a map costs a few hundred bytes.
	present map[entryKey]*entry
	frags   map[int64]int
	bytes   int64     // of its entries
	entries entryList // through entry.sib
	writing []writeRange
	pins    int
	// exported: the file was handed to the kernel (passthrough). It is
	// never punched from then on: the kernel may keep it mapped after the
	// last handle is closed, out of the daemon's sight. It goes whole.
	exported bool
	created  bool  // its files exist
	dying    bool  // being removed
	dead     bool  // removed; another objFile takes its id
	touched  int64 // when its mtime was last set, Unix nanoseconds
}

// presentMapAt is how many entries an object holds before find uses a map.
const presentMapAt = 8

// find returns o's entry key, or nil.
func (o *objFile) find(k entryKey) *entry {
	if o.present != nil {
		return o.present[k]
	}
	for e := o.entries.front; e != nil; e = e.sib.next {
		if e.key == k {
			return e
		}
	}
	return nil
}

// writeRange is a range of an object's file a download is writing.
type writeRange struct{ off, n int64 }

// index is the disk's memory of what it holds: entries in LRU order, by
// object, their total size, the bound it keeps, and the entries that must
// not be evicted yet. It does no I/O: the entries it lets go are returned,
// for the disk to punch or unlink outside the lock (see disk.release).
type index struct {
	geo     geometry
	mu      sync.Mutex
	objects map[string]*objFile
	blobs   map[string]*entry
	lru     entryList // front: most recently used
	total   int64
	// limit is the bound eviction keeps: max (--cache-size), lowered while
	// the file system has no room for that much (see disk.shrinkToFit).
	limit, max int64
	// held counts, by span id, readers waiting for an entry they missed.
	// Eviction skips those entries: otherwise a small cache under churn
	// could evict a chunk between its fetch and its waiters reading it.
	held map[string]int
	// small are the entries of objects of at most fragmentSize bytes
	// (fragments, and the chunks of objects that small: a GET brings them
	// back), at most maxSmall of them: the byte bound alone would let
	// millions of them fill a large cache, and each costs the index a few
	// hundred bytes of memory. Blobs are not (a page count is a few bytes,
	// and a worker's walk of the whole PDF to make again); they are files
	// of their own, told apart at a restart by where they are.
	small    entryList
	maxSmall int
	// pinned is the size of the objects pinned (handed to the kernel and
	// open there): never evicted, at most limit/pinShare.
	pinned int64
}

// pinShare: passthrough handles may pin at most 1/pinShare of the bound.
// Past that, opens are served by the daemon, whose reads can be evicted
// under: the bound holds, and the rest of the cache keeps turning over.
const pinShare = 2

// smallEntriesFor is how many small entries an index of max bytes keeps: a
// quarter of the bound's worth, at least 1,024 and at most 16,384 (a few
// MiB of index).
func smallEntriesFor(maxBytes int64) int {
	return int(min(16384, max(1024, maxBytes/fragmentSize/4)))
}

func newIndex(maxBytes int64, geo geometry) *index {
	return &index{geo: geo, objects: map[string]*objFile{}, blobs: map[string]*entry{},
		lru: entryList{at: lruLinks}, small: entryList{at: smallLinks},
		limit: maxBytes, max: maxBytes, held: map[string]int{}, maxSmall: smallEntriesFor(maxBytes)}
}

func newObjFile(id string, size int64) *objFile {
	return &objFile{id: id, size: size, entries: entryList{at: sibLinks}}
}

// object returns the objFile of id, making one (not created on disk yet)
// if create is set and there is none.
func (x *index) object(id string, size int64, create bool) *objFile {
	x.mu.Lock()
	defer x.mu.Unlock()
	o := x.objects[id]
	if o == nil && create {
		o = newObjFile(id, size)
		x.objects[id] = o
	}
	return o
}

// writeState is what a download may do with its object's file: write its
// range (registered now), create the file first, or look the object up
// again (it was removed). Called with o.mu held shared.
type writeState int

const (
	writeOK writeState = iota
	writeCreate
	writeAgain
)

func (x *index) beginWrite(o *objFile, r writeRange) writeState {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case o.dead || o.dying:
		return writeAgain
	case !o.created:
		return writeCreate
	}
	o.writing = append(o.writing, r)
	return writeOK
}

// needsCreate says whether o's files are still to be made (o.mu held).
func (x *index) needsCreate(o *objFile) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return !o.created && !o.dead
}

// created records that o's files exist now, or (ok false) that they could
// not be made: o is dropped.
func (x *index) created(o *objFile, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if ok {
		o.created = true
		o.touched = time.Now().UnixNano()
		return
	}
	o.dead = true
	if x.objects[o.id] == o {
		delete(x.objects, o.id)
	}
}

// endWrite unregisters a range a download wrote (or gave up writing).
func (x *index) endWriteLocked(o *objFile, r writeRange) {
	for i, w := range o.writing {
		if w == r {
			o.writing = append(o.writing[:i], o.writing[i+1:]...)
			return
		}
	}
}

func (x *index) endWrite(o *objFile, r writeRange) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.endWriteLocked(o, r)
}

// commit admits entry e of o, which a download wrote over r, and evicts the
// least recently used entries until the index is within its bound. It
// fails (ok false) if o was removed meanwhile (its directory was deleted).
func (x *index) commit(o *objFile, e *entry, r writeRange) (victims []*entry, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.endWriteLocked(o, r)
	if o.dead || o.dying {
		return nil, false
	}
	if old := o.find(e.key); old != nil {
		x.removeLocked(old)
	}
	x.addLocked(e)
	return x.evictLocked(), true
}

func (x *index) addLocked(e *entry) {
	x.lru.pushFront(e)
	x.total += e.n
	if e.obj != nil && e.n <= fragmentSize {
		x.small.pushFront(e)
		e.inSmall = true
	}
	if o := e.obj; o != nil {
		o.entries.pushFront(e)
		if o.present == nil && o.entries.len > presentMapAt {
			o.present = make(map[entryKey]*entry, o.entries.len)
			for p := o.entries.front; p != nil; p = p.sib.next {
				o.present[p.key] = p
			}
		} else if o.present != nil {
			o.present[e.key] = e
		}
		o.bytes += e.n
		if e.key.kind == kindFragment {
			if o.frags == nil {
				o.frags = map[int64]int{}
			}
			o.frags[e.key.idx]++
		}
	} else {
		x.blobs[e.id] = e
	}
}

func (x *index) removeLocked(e *entry) {
	x.lru.remove(e)
	x.total -= e.n
	if e.inSmall {
		x.small.remove(e)
		e.inSmall = false
	}
	if o := e.obj; o != nil {
		if o.present != nil && o.present[e.key] == e {
			delete(o.present, e.key)
		}
		o.entries.remove(e)
		o.bytes -= e.n
		if e.key.kind == kindFragment {
			if o.frags[e.key.idx]--; o.frags[e.key.idx] <= 0 {
				delete(o.frags, e.key.idx)
			}
		}
	} else if x.blobs[e.id] == e {
		delete(x.blobs, e.id)
	}
}

// get returns entry key of o and marks it recently used. touch says that
// the object file's mtime is due for a refresh, which is then counted as
// done.
func (x *index) get(o *objFile, key entryKey, now time.Time) (e *entry, touch bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if o.dead || o.dying {
		return nil, false
	}
	e = o.find(key)
	if e == nil {
		return nil, false
	}
	x.touchLocked(e)
	if touch = now.UnixNano()-o.touched > int64(touchEvery); touch {
		o.touched = now.UnixNano()
	}
	return e, touch
}

func (x *index) touchLocked(e *entry) {
	x.lru.moveToFront(e)
	if e.inSmall {
		x.small.moveToFront(e)
	}
}

// has says whether the index holds entry s.
func (x *index) has(s span) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	o := x.objects[s.obj]
	return o != nil && !o.dead && !o.dying && o.find(s.key) != nil
}

// getBlob returns blob id and marks it recently used; touch as for get.
func (x *index) getBlob(id string, now time.Time) (e *entry, touch bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e = x.blobs[id]
	if e == nil {
		return nil, false
	}
	x.touchLocked(e)
	if touch = now.UnixNano()-e.touched > int64(touchEvery); touch {
		e.touched = now.UnixNano()
	}
	return e, touch
}

// addBlob indexes blob e. replaced is the file id had before, if it was
// another: the same blob made twice need not be byte-identical (a part
// carries its creation date), and the older file goes.
func (x *index) addBlob(e *entry) (replaced *entry, victims []*entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old := x.blobs[e.id]; old != nil {
		x.removeLocked(old)
		if old.name != e.name {
			replaced = old
		}
	}
	x.addLocked(e)
	return replaced, x.evictLocked()
}

func (x *index) markVerified(e *entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e.verified = true
}

// remove takes e out of the index, if it is still there.
func (x *index) remove(e *entry) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.indexedLocked(e) {
		return false
	}
	x.removeLocked(e)
	return true
}

func (x *index) indexedLocked(e *entry) bool {
	if e.obj == nil {
		return x.blobs[e.id] == e
	}
	return !e.obj.dead && e.obj.find(e.key) == e
}

// discard takes the entries of o out of the index, except those held, and
// returns them.
func (x *index) discard(o *objFile) []*entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	var gone []*entry
	for e := o.entries.front; e != nil; {
		next := e.sib.next
		if !x.heldLocked(e) {
			x.removeLocked(e)
			gone = append(gone, e)
		}
		e = next
	}
	return gone
}

// hold protects entry id from eviction (delta 1) or ends one such
// protection (delta -1). The id need not be indexed yet: a reader holds
// the entry it waits for.
func (x *index) hold(id string, delta int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.held[id] += delta; x.held[id] <= 0 {
		delete(x.held, id)
	}
}

// heldLocked says whether a reader waits for e.
func (x *index) heldLocked(e *entry) bool {
	return len(x.held) > 0 && x.held[e.spanID()] > 0
}

// spared: eviction must not take e now.
func (x *index) sparedLocked(e *entry) bool {
	return x.heldLocked(e) || e.obj != nil && e.obj.pins > 0
}

// evictLocked evicts the least recently used entries until the index is
// within its byte bound and holds at most maxSmall small entries. Held
// entries and those of pinned objects are spared. An exported object's
// file cannot be punched, so the first of its entries that is due takes all
// its others along: the file goes whole, and its room with it.
func (x *index) evictLocked() []*entry {
	var victims []*entry
	spared := 0
	for x.total > x.limit && spared < x.lru.len {
		e := x.lru.back
		if x.sparedLocked(e) {
			x.lru.moveToFront(e)
			spared++
			continue
		}
		if o := e.obj; o != nil && o.exported {
			victims = x.takeAllLocked(o, victims)
			continue
		}
		x.removeLocked(e)
		victims = append(victims, e)
	}
	for tries := x.small.len; x.small.len > x.maxSmall && tries > 0; tries-- {
		e := x.small.back
		if x.sparedLocked(e) {
			x.small.moveToFront(e)
			continue
		}
		x.removeLocked(e)
		victims = append(victims, e)
	}
	return victims
}

// takeAllLocked removes every entry of o that is not held.
func (x *index) takeAllLocked(o *objFile, victims []*entry) []*entry {
	for e := o.entries.front; e != nil; {
		next := e.sib.next
		if !x.heldLocked(e) {
			x.removeLocked(e)
			victims = append(victims, e)
		} else {
			x.lru.moveToFront(e)
		}
		e = next
	}
	return victims
}

// releaseState is what to do with o's file once entries of it went: remove
// it (nothing of it is left, nobody writes it: o is dying now), punch the
// ranges that went, record their removal without punching (the file was
// handed to the kernel), or nothing (it is removed already). Called with
// o.mu held exclusively.
type releaseState int

const (
	releasePunch releaseState = iota
	releaseRemove
	releaseKeep
	releaseNone
)

func (x *index) releaseState(o *objFile) releaseState {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case o.dead || o.dying || !o.created:
		return releaseNone
	case o.entries.len == 0 && len(o.writing) == 0:
		o.dying = true
		return releaseRemove
	case o.exported:
		return releaseKeep
	}
	return releasePunch
}

// removed records that o's files are gone.
func (x *index) removed(o *objFile) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removedLocked(o)
}

func (x *index) removedLocked(o *objFile) {
	o.dead = true
	if x.objects[o.id] == o {
		delete(x.objects, o.id)
	}
	if o.pins > 0 {
		x.pinned -= o.size
		o.pins = 0
	}
}

// holes returns the parts of [off, off+n) of o's file that no entry of o
// holds and no download is writing: what a hole may be punched in, once
// an entry over them went. Called with o.mu held exclusively.
func (x *index) holes(o *objFile, off, n int64) []writeRange {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []writeRange
	add := func(from, to int64) { out = appendRange(out, from, to) }
	g := x.geo
	for pos, end := off, off+n; pos < end; {
		idx := pos / g.chunkSize
		chunkEnd := min(end, (idx+1)*g.chunkSize, o.size)
		if o.find(entryKey{kind: kindChunk, idx: idx}) != nil {
			pos = (idx + 1) * g.chunkSize
			continue
		}
		base := idx * g.chunkSize
		for pos < chunkEnd {
			within := pos - base
			unitEnd := chunkEnd
			if g.pieceSize > 0 {
				k := within / g.pieceSize
				unitEnd = min(chunkEnd, base+(k+1)*g.pieceSize)
				if o.find(entryKey{kind: kindPiece, idx: idx, sub: k}) != nil {
					pos = unitEnd
					continue
				}
			}
			if o.frags[idx] == 0 {
				add(pos, unitEnd)
				pos = unitEnd
				continue
			}
			for pos < unitEnd {
				f := (pos - base) / fragmentSize
				fragEnd := min(unitEnd, base+(f+1)*fragmentSize)
				if o.find(entryKey{kind: kindFragment, idx: idx, sub: f}) == nil {
					add(pos, fragEnd)
				}
				pos = fragEnd
			}
		}
	}
	for _, w := range o.writing {
		out = subtractRange(out, w)
	}
	return out
}

// appendRange appends [from, to), merged with the last range if they meet.
func appendRange(rs []writeRange, from, to int64) []writeRange {
	if k := len(rs); k > 0 && rs[k-1].off+rs[k-1].n == from {
		rs[k-1].n += to - from
		return rs
	}
	return append(rs, writeRange{from, to - from})
}

// subtractRange is rs without what w covers.
func subtractRange(rs []writeRange, w writeRange) []writeRange {
	out := rs[:0:0]
	for _, r := range rs {
		if w.off >= r.off+r.n || r.off >= w.off+w.n {
			out = append(out, r)
			continue
		}
		if r.off < w.off {
			out = append(out, writeRange{r.off, w.off - r.off})
		}
		if end := r.off + r.n; end > w.off+w.n {
			out = append(out, writeRange{w.off + w.n, end - w.off - w.n})
		}
	}
	return out
}

// pin protects the whole of o from eviction, for a handle the kernel reads
// through o's file, if o holds every byte of its object, checked since the
// daemon started, and the pinned objects stay within their share of the
// bound. It reports whether o is pinned now; the caller must unpin it.
//
// exported says that o was not exported before: the caller records that it
// is, in its map, before the kernel sees the file.
func (x *index) pin(o *objFile) (ok, exported bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if o.dead || o.dying || !o.created {
		return false, false
	}
	if o.pins == 0 {
		if x.pinned+o.size > x.limit/pinShare || !x.completeLocked(o) {
			return false, false
		}
		x.pinned += o.size
	}
	o.pins++
	exported = !o.exported
	o.exported = true
	return true, exported
}

// unpin ends one pin of o. Its entries are then the most recently used:
// the kernel read them, unseen by the index.
func (x *index) unpin(o *objFile) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if o.pins == 0 {
		return // removed meanwhile (see removed)
	}
	if o.pins--; o.pins == 0 {
		x.pinned -= o.size
		for e := o.entries.back; e != nil; e = e.sib.prev {
			x.touchLocked(e)
		}
	}
}

// completeLocked says whether o's entries hold every byte of the object,
// each checked: by chunks, or by all the pieces of a chunk.
func (x *index) completeLocked(o *objFile) bool {
	if o.bytes < o.size {
		return false
	}
	g := x.geo
	for idx := range chunksOf(o.size, g.chunkSize) {
		if e := o.find(entryKey{kind: kindChunk, idx: idx}); e != nil && e.verified {
			continue
		}
		if g.pieceSize == 0 {
			return false
		}
		chunkLen := min(g.chunkSize, o.size-idx*g.chunkSize)
		for k := int64(0); k*g.pieceSize < chunkLen; k++ {
			if e := o.find(entryKey{kind: kindPiece, idx: idx, sub: k}); e == nil || !e.verified {
				return false
			}
		}
	}
	return true
}

// exported says whether o's file was handed to the kernel.
func (x *index) exported(o *objFile) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return o.exported
}

// pinnedBytes is the size of the objects pinned now.
func (x *index) pinnedBytes() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.pinned
}

// reset replaces what the index holds with objects and entries (theirs and
// blobs), ordered oldest first (so that the most recently used end up most
// recent), and evicts down to the bound. The objects it held before are
// dead: their files went with the directory they were in. Holds are kept:
// their readers still wait.
func (x *index) reset(objects []*objFile, entries []*entry) (victims []*entry, count int, total int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, o := range x.objects {
		o.dead, o.pins = true, 0 // their unpins find nothing to undo
	}
	x.objects = map[string]*objFile{}
	x.blobs = map[string]*entry{}
	x.lru = entryList{at: lruLinks}
	x.small = entryList{at: smallLinks}
	x.total, x.pinned = 0, 0
	for _, o := range objects {
		x.objects[o.id] = o
	}
	for _, e := range entries {
		x.addLocked(e)
	}
	count = x.lru.len
	victims = x.evictLocked()
	return victims, count, x.total
}

// forget takes every entry of o out of the index, held or not, and o with
// them: its files are gone.
func (x *index) forget(o *objFile) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for e := o.entries.front; e != nil; {
		next := e.sib.next
		x.removeLocked(e)
		e = next
	}
	x.removedLocked(o)
}

// notPresent is the entries of gone whose range o holds no entry for now.
func (x *index) notPresent(o *objFile, gone []*entry) []*entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := gone[:0:0]
	for _, e := range gone {
		if o.find(e.key) == nil {
			out = append(out, e)
		}
	}
	return out
}

// entryCount is how many entries of o the index holds.
func (x *index) entryCount(o *objFile) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return o.entries.len
}

// shrinkTo lowers the bound to what the index holds less headroom, if that
// is still at least floor, and evicts down to it. It returns the bound, and
// whether it was lowered.
func (x *index) shrinkTo(headroom, floor int64) (victims []*entry, limit int64, lowered bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if room := x.total - headroom; room >= floor && room < x.limit {
		x.limit, lowered = room, true
	}
	return x.evictLocked(), x.limit, lowered
}

// raiseTo raises the bound to room, at most max; it reports the new bound
// and whether it rose.
func (x *index) raiseTo(room int64) (int64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	raised := min(x.max, room)
	if raised <= x.limit {
		return x.limit, false
	}
	x.limit = raised
	return raised, true
}

// bound is the bound kept now.
func (x *index) bound() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.limit
}

// bytes is the size of every entry indexed.
func (x *index) bytes() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.total
}

// usage is bytes and bound, read together.
func (x *index) usage() (total, limit int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.total, x.limit
}

// An entryList is a doubly linked list of entries through the links at
// returns; an entry is in each list at most once. Intrusive, so that an
// entry costs no allocation beyond its own.
type links struct{ prev, next *entry }

type entryList struct {
	front, back *entry
	len         int
	at          func(*entry) *links
}

func lruLinks(e *entry) *links   { return &e.lru }
func smallLinks(e *entry) *links { return &e.small }
func sibLinks(e *entry) *links   { return &e.sib }

func (l *entryList) pushFront(e *entry) {
	le := l.at(e)
	le.prev, le.next = nil, l.front
	if l.front != nil {
		l.at(l.front).prev = e
	} else {
		l.back = e
	}
	l.front = e
	l.len++
}

func (l *entryList) pushBack(e *entry) {
	le := l.at(e)
	le.prev, le.next = l.back, nil
	if l.back != nil {
		l.at(l.back).next = e
	} else {
		l.front = e
	}
	l.back = e
	l.len++
}

func (l *entryList) remove(e *entry) {
	le := l.at(e)
	if le.prev != nil {
		l.at(le.prev).next = le.next
	} else {
		l.front = le.next
	}
	if le.next != nil {
		l.at(le.next).prev = le.prev
	} else {
		l.back = le.prev
	}
	le.prev, le.next = nil, nil
	l.len--
}

func (l *entryList) moveToFront(e *entry) {
	if l.front == e {
		return
	}
	l.remove(e)
	l.pushFront(e)
}
