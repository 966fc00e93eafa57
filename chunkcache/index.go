package chunkcache

import (
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// entry is one file in chunks/: a chunk, a piece or a blob.
type entry struct {
	name string
	size int64
	crc  uint32
	// verified is false for entries found at startup until their checksum
	// has been checked once; a crash can leave a renamed file with bad
	// content only through disk corruption, but a wrong byte is never
	// acceptable.
	verified bool
	// touched is when the file's mtime was last set: the mtime is the
	// recency a restart sorts by, so hits refresh it, at most once per
	// touchEvery so that hits stay cheap.
	touched time.Time
	// capped: the entry counts under the index's bound on small entries
	// (index.small). Small entries that were fetched are (fragments, the
	// chunks of tiny objects: a GET brings them back); blobs are not (a
	// page count is a few bytes, and a worker's walk of the whole PDF to
	// make again). A restart cannot tell a small blob from a fragment by
	// its name: what it finds small is capped until it is opened as a
	// blob.
	capped bool
}

const touchEvery = 10 * time.Minute

// index is the disk's memory of what it holds: entries by id in LRU
// order, their total size, the bound it keeps, and the entries that must
// not be evicted yet. It does no I/O: the entries it lets go are returned,
// for the disk to unlink outside the lock (a reader holding one open keeps
// reading it).
type index struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[string, entry]
	total int64
	// limit is the bound eviction keeps: max (--cache-size), lowered while
	// the file system has no room for that much (see disk.shrinkToFit).
	limit, max int64
	// held counts, by id, readers waiting for an entry they missed, and
	// pins. Eviction skips those entries: otherwise a small cache under
	// churn could evict a chunk between its fetch and its waiters opening
	// it.
	held map[string]int
	// small are the capped entries, those of at most fragmentSize bytes
	// that were fetched (fragments, and the chunks of objects that small),
	// in LRU order, at most maxSmall of them: the byte bound alone would
	// let millions of them fill a large cache, and each costs the index a
	// few hundred bytes of memory.
	small    *simplelru.LRU[string, struct{}]
	maxSmall int
}

// smallEntriesFor is how many small entries an index of max bytes keeps: a
// quarter of the bound's worth, at least 1,024 and at most 16,384 (a few
// MiB of index).
func smallEntriesFor(maxBytes int64) int {
	return int(min(16384, max(1024, maxBytes/fragmentSize/4)))
}

func newIndex(maxBytes int64) *index {
	// Bounded in bytes by us, not in entries by the library.
	lru, _ := simplelru.NewLRU[string, entry](math.MaxInt, nil)
	small, _ := simplelru.NewLRU[string, struct{}](math.MaxInt, nil)
	return &index{lru: lru, limit: maxBytes, max: maxBytes, held: map[string]int{},
		small: small, maxSmall: smallEntriesFor(maxBytes)}
}

// get returns entry id and marks it recently used. touch says that its
// file's mtime is due for a refresh, which is then counted as done.
func (x *index) get(id string, now time.Time) (e entry, touch, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok = x.lru.Get(id)
	if ok && e.capped {
		x.small.Get(id)
	}
	touch = ok && now.Sub(e.touched) > touchEvery
	if touch {
		e.touched = now
		x.lru.Add(id, e)
	}
	return e, touch, ok
}

func (x *index) has(id string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.lru.Contains(id)
}

func (x *index) markVerified(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.lru.Peek(id); ok {
		e.verified = true
		x.lru.Add(id, e)
	}
}

// add indexes e as id and evicts the least recently used entries until the
// index is within its bound again. replaced is the file id had before, if
// it was another: the same blob made twice need not be byte-identical (a
// part carries its creation date), and the older file goes.
func (x *index) add(id string, e entry) (replaced, victims []entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.lru.Peek(id); ok {
		x.total -= old.size
		if old.name != e.name {
			replaced = append(replaced, old)
		}
	}
	x.lru.Add(id, e)
	x.total += e.size
	if e.capped {
		x.small.Add(id, struct{}{})
	} else {
		x.small.Remove(id)
	}
	return replaced, x.evictLocked()
}

// uncap takes entry id out of the bound on small entries: a blob found at
// startup, now known to be one.
func (x *index) uncap(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.lru.Peek(id); ok && e.capped {
		e.capped = false
		x.lru.Add(id, e)
		x.small.Remove(id)
	}
}

// remove takes entry id out of the index.
func (x *index) remove(id string) (entry, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.lru.Peek(id)
	if ok {
		x.lru.Remove(id)
		x.small.Remove(id)
		x.total -= e.size
	}
	return e, ok
}

// removeFile takes entry id out of the index if it is still file name
// (and not a newer file admitted since).
func (x *index) removeFile(id, name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if cur, ok := x.lru.Peek(id); ok && cur.name == name {
		x.lru.Remove(id)
		x.small.Remove(id)
		x.total -= cur.size
	}
}

// discard takes the entries ids out of the index, except those held, and
// returns them.
func (x *index) discard(ids []string) []entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	var gone []entry
	for _, id := range ids {
		if e, ok := x.lru.Peek(id); ok && x.held[id] == 0 {
			x.lru.Remove(id)
			x.small.Remove(id)
			x.total -= e.size
			gone = append(gone, e)
		}
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

// evictLocked evicts the least recently used entries until the index is
// within its byte bound and holds at most maxSmall small entries. Held
// entries are spared.
func (x *index) evictLocked() []entry {
	var victims []entry
	var spared []string
	for x.total > x.limit {
		id, e, ok := x.lru.RemoveOldest()
		if !ok {
			break
		}
		if x.held[id] > 0 {
			spared = append(spared, id)
			x.lru.Add(id, e)
			if len(spared) == x.lru.Len() {
				break // everything left is held: the overshoot is in flight
			}
			continue
		}
		x.total -= e.size
		x.small.Remove(id)
		victims = append(victims, e)
	}
	for tries := x.small.Len(); x.small.Len() > x.maxSmall && tries > 0; tries-- {
		id, _, _ := x.small.RemoveOldest()
		e, ok := x.lru.Peek(id)
		if !ok {
			continue
		}
		if x.held[id] > 0 {
			x.small.Add(id, struct{}{})
			continue
		}
		x.lru.Remove(id)
		x.total -= e.size
		victims = append(victims, e)
	}
	return victims
}

// indexed is an entry found in the directory, to index by id.
type indexed struct {
	id string
	e  entry
}

// reset replaces what the index holds with found, ordered oldest first (so
// that the most recently used end up most recent), and evicts down to the
// bound. dups are older files of an id found twice. Holds are kept: their
// readers still wait.
func (x *index) reset(found []indexed) (dups, victims []entry, entries int, total int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.lru.Purge()
	x.small.Purge()
	x.total = 0
	for _, f := range found {
		if old, ok := x.lru.Peek(f.id); ok {
			x.total -= old.size
			dups = append(dups, old)
		}
		f.e.capped = f.e.size <= fragmentSize
		x.lru.Add(f.id, f.e)
		x.total += f.e.size
		if f.e.capped {
			x.small.Add(f.id, struct{}{})
		}
	}
	victims = x.evictLocked()
	return dups, victims, x.lru.Len(), x.total
}

// shrinkTo lowers the bound to what the index holds less headroom, if that
// is still at least floor, and evicts down to it. It returns the bound, and
// whether it was lowered.
func (x *index) shrinkTo(headroom, floor int64) (victims []entry, limit int64, lowered bool) {
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
