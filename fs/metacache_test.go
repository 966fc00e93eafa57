package fs

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// The metadata cache holds at most its budget in bytes, drops what is
// older than the TTL, keeps only small listings whole, and keeps nothing
// fetched across an invalidation.
func TestMetaCacheBounds(t *testing.T) {
	const budget = 64 << 10
	c := newMetaCache(time.Hour, budget)
	gen := c.generation()
	for i := 0; i < 10000; i++ {
		key := fmt.Sprintf("dir/k%06d.pdf", i)
		c.putAnswer(key, answer{kind: isFile, v: version(key, `"0123456789abcdef0123456789abcdef"`, 1)}, gen)
		if used := c.usedBytes(); used > budget {
			t.Fatalf("%d bytes after %d answers, budget %d", used, i+1, budget)
		}
	}
	if _, ok := c.answer("dir/k000000.pdf"); ok {
		t.Fatal("the oldest answer is still kept")
	}
	if a, ok := c.answer("dir/k009999.pdf"); !ok || a.kind != isFile {
		t.Fatal("the newest answer is gone")
	}

	var small, big dirListing
	var smallSize, bigSize int64
	for i := 0; i < 2000; i++ {
		e := entry{Name: fmt.Sprintf("f%04d", i), Version: version(fmt.Sprintf("d/f%04d", i), `"e"`, 1)}
		if i < 10 {
			small.entries = append(small.entries, e)
			smallSize += entrySize(e)
		}
		big.entries = append(big.entries, e)
		bigSize += entrySize(e)
	}
	c.putListing("small/", &small, smallSize, gen)
	c.putListing("big/", &big, bigSize, gen)
	if _, ok := c.listing("small/"); !ok {
		t.Fatal("a small listing is not kept")
	}
	if _, ok := c.listing("big/"); ok {
		t.Fatalf("a listing of %d bytes is kept whole, budget %d", bigSize, budget)
	}

	c.invalidate("small/f0001")
	if _, ok := c.listing("small/"); ok {
		t.Fatal("the listing outlived an invalidation of one of its keys")
	}
	c.putListing("small/", &small, smallSize, gen)
	if _, ok := c.listing("small/"); ok {
		t.Fatal("a listing fetched across an invalidation was kept")
	}

	// On the fake clock of a bubble (synctest).
	synctest.Test(t, func(t *testing.T) {
		short := newMetaCache(50*time.Millisecond, budget)
		short.putAnswer("a", answer{kind: isDir}, short.generation())
		if _, ok := short.answer("a"); !ok {
			t.Fatal("fresh answer missing")
		}
		// Not waiting for an event: the TTL passes.
		time.Sleep(100 * time.Millisecond)
		if _, ok := short.answer("a"); ok {
			t.Fatal("an answer outlived the TTL")
		}
		if used := short.usedBytes(); used != 0 {
			t.Fatalf("%d bytes held by an expired answer", used)
		}
	})
	none := newMetaCache(0, budget)
	none.putAnswer("a", answer{kind: isDir}, none.generation())
	if _, ok := none.answer("a"); ok {
		t.Fatal("TTL 0 keeps answers")
	}
}
