package pdfdoc

import "github.com/hashicorp/golang-lru/v2/simplelru"

// lru is a small cache bounded both by entry count and by the sum of the
// entries' costs (their size in the file, a proxy for their size in
// memory). hashicorp's simplelru keeps the order and the count; this adds
// the cost, which it does not bound. One entry is always kept, whatever
// its cost, so that the object being worked on is never evicted by its own
// insertion.
type lru[K comparable, V any] struct {
	maxCost int64
	cost    int64
	items   *simplelru.LRU[K, costed[V]]
}

type costed[V any] struct {
	val  V
	cost int64
}

func newLRU[K comparable, V any](maxN int, maxCost int64) *lru[K, V] {
	c := &lru[K, V]{maxCost: maxCost}
	// Every entry that leaves, evicted or replaced, takes its cost along.
	c.items, _ = simplelru.NewLRU(max(1, maxN), func(_ K, v costed[V]) { c.cost -= v.cost })
	return c
}

func (c *lru[K, V]) get(k K) (V, bool) {
	v, ok := c.items.Get(k)
	return v.val, ok
}

func (c *lru[K, V]) add(k K, v V, cost int64) {
	c.items.Remove(k)
	c.items.Add(k, costed[V]{val: v, cost: cost}) // evicts the oldest past the count
	c.cost += cost
	for c.items.Len() > 1 && c.cost > c.maxCost {
		c.items.RemoveOldest()
	}
}

// has tells whether k is cached, without making it recent.
func (c *lru[K, V]) has(k K) bool { return c.items.Contains(k) }
