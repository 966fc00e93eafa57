package pdfdoc

// lru is a small cache bounded both by entry count and by the sum of the
// entries' costs (their size in the file, a proxy for their size in
// memory). One entry is always kept, whatever its cost, so that the object
// being worked on is never evicted by its own insertion.
type lru[K comparable, V any] struct {
	maxN    int
	maxCost int64
	cost    int64
	items   map[K]*lruItem[K, V]
	head    lruItem[K, V] // sentinel: head.next is the most recent
}

type lruItem[K comparable, V any] struct {
	key        K
	val        V
	cost       int64
	prev, next *lruItem[K, V]
}

func newLRU[K comparable, V any](maxN int, maxCost int64) *lru[K, V] {
	c := &lru[K, V]{maxN: max(1, maxN), maxCost: maxCost, items: map[K]*lruItem[K, V]{}}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

func (c *lru[K, V]) unlink(it *lruItem[K, V]) {
	it.prev.next, it.next.prev = it.next, it.prev
}

func (c *lru[K, V]) pushFront(it *lruItem[K, V]) {
	it.prev, it.next = &c.head, c.head.next
	c.head.next.prev = it
	c.head.next = it
}

func (c *lru[K, V]) get(k K) (V, bool) {
	it, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.unlink(it)
	c.pushFront(it)
	return it.val, true
}

func (c *lru[K, V]) add(k K, v V, cost int64) {
	if it, ok := c.items[k]; ok {
		c.cost -= it.cost
		c.unlink(it)
		delete(c.items, k)
	}
	it := &lruItem[K, V]{key: k, val: v, cost: cost}
	c.items[k] = it
	c.pushFront(it)
	c.cost += cost
	for len(c.items) > 1 && (len(c.items) > c.maxN || c.cost > c.maxCost) {
		old := c.head.prev
		c.unlink(old)
		delete(c.items, old.key)
		c.cost -= old.cost
	}
}

// has tells whether k is cached, without making it recent.
func (c *lru[K, V]) has(k K) bool {
	_, ok := c.items[k]
	return ok
}
