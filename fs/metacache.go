package fs

import (
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"s3docs/fs/listing"
	"s3docs/internal/object"
)

// entryKind is what a name in a directory is.
type entryKind uint8

const (
	absent entryKind = iota
	isFile
	isDir
)

// answer is what a lookup learned of one key: a file (v), a directory, or
// nothing.
type answer struct {
	kind entryKind
	v    object.Version
}

// entry is one name of a directory listing, as the lister yields it.
type entry = listing.Entry

// answerOf is what a listed entry answers a lookup of its name.
func answerOf(e entry) answer {
	if e.Dir {
		return answer{kind: isDir}
	}
	return answer{kind: isFile, v: e.Version}
}

// dirListing is a whole directory level, sorted, with the names that
// cannot be file names dropped.
type dirListing struct {
	entries []entry
}

// find answers a lookup of name from the listing.
func (l *dirListing) find(name string) answer {
	for _, pos := range []string{name, name + "/"} {
		i := sort.Search(len(l.entries), func(i int) bool { return l.entries[i].Pos() >= pos })
		if i < len(l.entries) && l.entries[i].Name == name {
			return answerOf(l.entries[i])
		}
	}
	return answer{}
}

// Rough sizes, for the byte budget: Go's headers, map and list overheads.
const (
	answerOverhead = 200
	entryOverhead  = 100
)

func answerSize(key string, a answer) int64 {
	return int64(answerOverhead + len(key) + len(a.v.Key) + len(a.v.ETag))
}

func entrySize(e entry) int64 {
	return int64(entryOverhead + len(e.Name) + len(e.Version.Key) + len(e.Version.ETag))
}

// DefaultMetadataCacheBytes is the byte budget of the metadata cache when
// Options leave it 0.
const DefaultMetadataCacheBytes = 4 << 20

// metaCache remembers lookup answers and whole directory listings for the
// metadata TTL, within a byte budget: the least recently used go first
// (hashicorp's simplelru keeps the order; the budget is in bytes, which it
// does not bound). A listing may take at most a quarter of the budget; a
// bigger directory is listed again each time (streamed, see dirStream).
type metaCache struct {
	ttl    time.Duration
	budget int64

	mu    sync.Mutex
	bytes int64
	items *simplelru.LRU[metaKey, *metaItem]
	// gen counts invalidations: what was fetched across one may be older
	// than what invalidated it, and is not cached.
	gen uint64
}

type metaKey struct {
	listing bool   // a listing of a directory prefix, else a lookup answer for a key
	s       string // the prefix or key
}

type metaItem struct {
	val     any // answer or *dirListing
	size    int64
	expires time.Time
}

func newMetaCache(ttl time.Duration, budget int64) *metaCache {
	if budget <= 0 {
		budget = DefaultMetadataCacheBytes
	}
	c := &metaCache{ttl: ttl, budget: budget}
	// Every item that leaves, evicted, expired, replaced or invalidated,
	// takes its bytes along.
	c.items, _ = simplelru.NewLRU(math.MaxInt, func(_ metaKey, it *metaItem) { c.bytes -= it.size })
	return c
}

// maxListingBytes is the largest listing kept whole.
func (c *metaCache) maxListingBytes() int64 { return c.budget / 4 }

func (c *metaCache) get(k metaKey) (any, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items.Get(k)
	if !ok {
		return nil, false
	}
	if time.Now().After(it.expires) {
		c.items.Remove(k)
		return nil, false
	}
	return it.val, true
}

// generation is to be read before fetching what will be put.
func (c *metaCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put keeps val for the TTL, unless an invalidation came since gen.
func (c *metaCache) put(k metaKey, val any, size int64, gen uint64) {
	if c.ttl <= 0 || size > c.budget {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.items.Remove(k)
	c.items.Add(k, &metaItem{val: val, size: size, expires: time.Now().Add(c.ttl)})
	c.bytes += size
	for c.bytes > c.budget {
		c.items.RemoveOldest()
	}
}

func (c *metaCache) answer(key string) (answer, bool) {
	v, ok := c.get(metaKey{s: key})
	if !ok {
		return answer{}, false
	}
	return v.(answer), true
}

func (c *metaCache) putAnswer(key string, a answer, gen uint64) {
	c.put(metaKey{s: key}, a, answerSize(key, a), gen)
}

func (c *metaCache) listing(prefix string) (*dirListing, bool) {
	v, ok := c.get(metaKey{listing: true, s: prefix})
	if !ok {
		return nil, false
	}
	return v.(*dirListing), true
}

func (c *metaCache) putListing(prefix string, l *dirListing, size int64, gen uint64) {
	if size > c.maxListingBytes() {
		return
	}
	c.put(metaKey{listing: true, s: prefix}, l, size, gen)
}

// invalidate forgets what is known of key and of its directory's listing,
// e.g. after a read found the object changed.
func (c *metaCache) invalidate(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	dir := key[:strings.LastIndexByte(key, '/')+1]
	for _, k := range []metaKey{{s: key}, {listing: true, s: dir}} {
		c.items.Remove(k)
	}
}

// usedBytes is what the cache holds, for tests.
func (c *metaCache) usedBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
