package listing

import (
	"strings"
	"unicode/utf8"
)

// cuts decides where a listing cuts its parts. It is pure: no lock, no
// request, no clock.
//
// Where to cut comes from the names themselves. After each page of a part,
// one probe may list from just past the group of names that share the
// page's first k bytes, for the smallest k that cuts the part's range (the
// group of "k00" in a part holding k000000..k099999 ends at "k00"+MaxRune:
// the probe's page starts the part that holds k010000..). A probe that
// finds nothing ends the part there (then the next probe cuts finer). A
// probe whose page the part fetched too (the part had got there already,
// or ended right where the cut began) was wasted; once probes at a depth
// waste two more requests than they pay for, groups that fine hold a page
// or less, and the listing probes coarser only. Every probe's page that is
// kept is the first page of a new part, so few requests are spent on
// probing.
type cuts struct {
	maxDepth int // finest cut depth still tried
	// paid and wasted count, by depth, the probes that cut a part which
	// then kept pages, and those that cost a request for nothing.
	paid, wasted map[int]int
}

func newCuts() cuts {
	return cuts{maxDepth: 1 << 30, paid: map[int]int{}, wasted: map[int]int{}}
}

// next says where to probe after a page whose entries run from first to
// last, in a part whose range ends at hi ("" for no end): from bound on,
// cutting at depth. ok is false when no cut is worth a request.
func (c *cuts) next(first, last, hi string) (bound string, depth int, ok bool) {
	k := 1
	if hi != "" {
		k = commonPrefix(last, hi) + 1
	}
	for ; k <= min(commonPrefix(first, last), c.maxDepth); k++ {
		g, ok := wholeCharacters(last[:k])
		if !ok {
			continue // S3 takes only UTF-8
		}
		b := g + MaxRune
		if b <= last || (hi != "" && b >= hi) {
			continue
		}
		return b, k, true
	}
	return "", 0, false
}

// judge counts a probe at depth as paid or wasted. Cuts that fine stop,
// finer ones too, once they have wasted two requests more than they paid
// for: one unlucky probe (a page that ended near its group's end) does not
// stop them, groups of a page or less soon do.
func (c *cuts) judge(depth int, paid bool) {
	if paid {
		c.paid[depth]++
		return
	}
	c.wasted[depth]++
	if c.wasted[depth] > c.paid[depth]+1 {
		c.maxDepth = min(c.maxDepth, depth-1)
	}
}

// stop ends probing: the server refused a probe, or never answered it.
func (c *cuts) stop() { c.maxDepth = 0 }

// wholeCharacters completes a group that ends inside a character with the
// greatest continuation bytes, so that the group's end is valid UTF-8:
// names of one CJK character each ("一.pdf", "丁.pdf") share only a byte
// or two, and their directory could not be cut at all. "\xe4" becomes
// U+4FFF, which sorts after every character that starts with that byte.
func wholeCharacters(g string) (string, bool) {
	if utf8.ValidString(g) {
		return g, true
	}
	for missing := 1; missing <= utf8.UTFMax-1; missing++ {
		if c := g + strings.Repeat("\xbf", missing); utf8.ValidString(c) {
			return c, true
		}
	}
	return "", false
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
