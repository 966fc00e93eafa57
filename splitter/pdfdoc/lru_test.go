package pdfdoc

import (
	"slices"
	"testing"
)

// The object cache keeps at most its count and its cost, the most recent
// first, and always the entry just added.
func TestLRUBounds(t *testing.T) {
	type add struct {
		k    int
		cost int64
	}
	cases := []struct {
		name     string
		maxN     int
		maxCost  int64
		adds     []add
		touch    []int // got between the adds and the check
		kept     []int
		wantCost int64
	}{
		{"within both bounds", 3, 100, []add{{1, 10}, {2, 10}, {3, 10}}, nil, []int{1, 2, 3}, 30},
		{"count: the oldest goes", 2, 100, []add{{1, 10}, {2, 10}, {3, 10}}, nil, []int{2, 3}, 20},
		{"cost: the oldest go", 5, 25, []add{{1, 10}, {2, 10}, {3, 10}}, nil, []int{2, 3}, 20},
		{"one entry over the cost stays", 5, 25, []add{{1, 10}, {2, 40}}, nil, []int{2}, 40},
		{"re-adding replaces the cost", 5, 25, []add{{1, 10}, {1, 20}}, nil, []int{1}, 20},
		{"a get makes an entry recent", 2, 100, []add{{1, 10}, {2, 10}}, []int{1}, []int{1}, 10},
		{"zero count keeps one", 0, 100, []add{{1, 10}, {2, 10}}, nil, []int{2}, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newLRU[int, string](tc.maxN, tc.maxCost)
			for _, a := range tc.adds {
				c.add(a.k, "v", a.cost)
			}
			for _, k := range tc.touch {
				if _, ok := c.get(k); !ok {
					t.Fatalf("%d is not cached", k)
				}
			}
			if len(tc.touch) > 0 {
				c.add(99, "v", 0) // evicts the least recent, which is no longer the touched one
			}
			var kept []int
			for k := range 100 {
				if c.has(k) {
					kept = append(kept, k)
				}
			}
			if len(tc.touch) > 0 {
				kept = slices.DeleteFunc(kept, func(k int) bool { return k == 99 })
			}
			if !slices.Equal(kept, tc.kept) || c.cost != tc.wantCost {
				t.Fatalf("kept %v at cost %d, want %v at %d", kept, c.cost, tc.kept, tc.wantCost)
			}
		})
	}
}
