package listing

import (
	"testing"
)

// Where a probe goes after a page: past the group of the smallest depth
// that cuts what is left of the part, in whole characters, and never
// finer than the depths that paid.
func TestCutsNext(t *testing.T) {
	cases := []struct {
		name            string
		first, last, hi string
		maxDepth        int // 0: the default
		bound           string
		depth           int
		ok              bool
	}{
		{name: "first page: past the group of the first byte",
			first: "k000000", last: "k000099", bound: "k" + MaxRune, depth: 1, ok: true},
		{name: "a part that ends: one byte finer than its end",
			first: "k000100", last: "k000199", hi: "k" + MaxRune, bound: "k0" + MaxRune, depth: 2, ok: true},
		{name: "a cut would fall before the page's end: finer",
			first: "k000100", last: "k000199", hi: "k00" + MaxRune, bound: "k000" + MaxRune, depth: 4, ok: true},
		{name: "the group of the last name reaches the part's end: no cut",
			first: "k000100", last: "k000199", hi: "k0001" + MaxRune, ok: false},
		{name: "the page's names share nothing",
			first: "a.pdf", last: "b.pdf", ok: false},
		{name: "no finer than maxDepth",
			first: "k000100", last: "k000199", hi: "k" + MaxRune, maxDepth: 1, ok: false},
		{name: "no probes at all",
			first: "k000000", last: "k000099", maxDepth: -1, ok: false},
		{name: "inside a character: completed to the character's end",
			first: "一.pdf", last: "丁.pdf", bound: "\u4fff" + MaxRune, depth: 1, ok: true},
		{name: "bytes that are no UTF-8 cannot be a bound",
			first: "\xff000", last: "\xff099", ok: false},
		{name: "a name that goes on with U+10FFFF: the bound must pass it",
			first: "k" + MaxRune + "a", last: "k" + MaxRune + "b", bound: "k" + MaxRune + MaxRune, depth: 3, ok: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCuts()
			switch {
			case tc.maxDepth < 0:
				c.stop()
			case tc.maxDepth > 0:
				c.maxDepth = tc.maxDepth
			}
			bound, depth, ok := c.next(tc.first, tc.last, tc.hi)
			if bound != tc.bound || depth != tc.depth || ok != tc.ok {
				t.Fatalf("next(%q, %q, %q) = %q, %d, %v; want %q, %d, %v", tc.first, tc.last, tc.hi, bound, depth, ok, tc.bound, tc.depth, tc.ok)
			}
			if ok && (bound <= tc.last || (tc.hi != "" && bound >= tc.hi)) {
				t.Fatalf("bound %q outside (%q, %q)", bound, tc.last, tc.hi)
			}
		})
	}
}

// Which depths are still probed, after probes that paid or were wasted.
func TestCutsJudge(t *testing.T) {
	type probe struct {
		depth int
		paid  bool
	}
	cases := []struct {
		name     string
		probes   []probe
		maxDepth int
	}{
		{"nothing judged", nil, 1 << 30},
		{"one wasted probe", []probe{{3, false}}, 1 << 30},
		{"two wasted, none paid", []probe{{3, false}, {3, false}}, 2},
		{"waste two more than pay", []probe{{3, false}, {3, true}, {3, false}, {3, false}}, 2},
		{"pay keeps a depth", []probe{{3, true}, {3, true}, {3, false}, {3, false}, {3, false}}, 1 << 30},
		{"waste at a finer depth does not raise the limit", []probe{{3, false}, {3, false}, {5, false}, {5, false}}, 2},
		{"waste at a coarser depth lowers it", []probe{{5, false}, {5, false}, {2, false}, {2, false}}, 1},
		{"depths are counted apart", []probe{{3, false}, {4, false}, {5, false}}, 1 << 30},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCuts()
			for _, p := range tc.probes {
				c.judge(p.depth, p.paid)
			}
			if c.maxDepth != tc.maxDepth {
				t.Fatalf("maxDepth %d, want %d", c.maxDepth, tc.maxDepth)
			}
		})
	}
}

func TestWholeCharacters(t *testing.T) {
	cases := []struct {
		in, out string
		ok      bool
	}{
		{"abc", "abc", true},
		{"", "", true},
		{"\xe4", "\u4fff", true},           // 3-byte character, 2 missing
		{"\xe4\xb8", "\u4e3f", true},       // 1 missing
		{"a\xf0\x90", "a\U00010fff", true}, // 4-byte character
		{"\xff", "", false},
		{"\x80", "", false},
		{"a\xe4b", "", false},
	}
	for _, tc := range cases {
		out, ok := wholeCharacters(tc.in)
		if out != tc.out || ok != tc.ok {
			t.Errorf("wholeCharacters(%q) = %q, %v; want %q, %v", tc.in, out, ok, tc.out, tc.ok)
		}
	}
}
