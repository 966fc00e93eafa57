package fs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"s3docs/internal/object"
)

// settledLists waits until the store's count of directory pages stops
// moving, and returns it.
func settledLists(store *fakeStore) int64 {
	for {
		n := store.lists.Load()
		time.Sleep(200 * time.Millisecond)
		if store.lists.Load() == n {
			return n
		}
	}
}

// A directory whose pages cannot be cut (names that share no whole
// character from one end of a page to the other: one CJK character each,
// or invalid UTF-8) is one part, the part being read. A reader that takes
// a few entries and stops must not make it fetch the whole directory.
func TestUncuttableListingStopsWhenNobodyReads(t *testing.T) {
	families := map[string]func(i int) string{
		"cjk":     func(i int) string { return string(rune(0x4E00+i)) + ".pdf" },
		"invalid": func(i int) string { return fmt.Sprintf("\xff%06d", i) },
	}
	for family, name := range families {
		t.Run(family, func(t *testing.T) {
			store := &fakeStore{objs: map[string]object.Version{}, pageSize: 100, listDelay: time.Millisecond}
			for i := 0; i < 20000; i++ {
				key := "big/" + name(i)
				store.objs[key] = version(key, `"e"`, 1)
			}
			f, _ := newTree(t, store, time.Minute)
			l := f.listDir("big/")
			defer l.close()
			for i := 0; i < 10; i++ {
				if _, ok, err := l.next(context.Background()); !ok || err != nil {
					t.Fatal(ok, err)
				}
			}
			n := settledLists(store)
			if limit := int64(windowPages + 1 + 2*maxListParts); n > limit {
				t.Fatalf("%d pages fetched for a reader of 10 entries, want at most %d", n, limit)
			}
		})
	}
}
