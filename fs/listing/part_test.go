package listing

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// entries makes sorted entries of names; a name ending in "/" is a
// directory.
func entries(names ...string) []Entry {
	var out []Entry
	for _, n := range names {
		if d, ok := strings.CutSuffix(n, "/"); ok {
			out = append(out, Entry{Name: d, Dir: true})
		} else {
			out = append(out, Entry{Name: n})
		}
	}
	return out
}

func positions(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Pos())
	}
	return out
}

// What a part keeps of a page, and what the page says of the probe that
// last cut the part.
func TestPartTake(t *testing.T) {
	cases := []struct {
		name   string
		p      part
		page   []Entry
		batch  []string
		beyond bool
		j      judgement
		after  part // the fields take changes
	}{
		{name: "the first page of the first part",
			p:     part{},
			page:  entries("a", "b/", "c"),
			batch: []string{"a", "b/", "c"},
			after: part{fetched: "c", kept: 1}},
		{name: "what the part has listed, or sorts before its range, is not new",
			p:     part{lo: "a", fetched: "b/"},
			page:  entries("a", "b/", "c", "d"),
			batch: []string{"c", "d"},
			after: part{lo: "a", fetched: "d", kept: 1}},
		{name: "a page that goes past the part's end",
			p:      part{hi: "c"},
			page:   entries("a", "c", "d"),
			batch:  []string{"a", "c"},
			beyond: true,
			after:  part{hi: "c", fetched: "c", kept: 1}},
		{name: "nothing new: no batch",
			p:     part{fetched: "c", kept: 2},
			page:  entries("b", "c"),
			after: part{fetched: "c", kept: 2}},
		{name: "the first page after a cut pays for the probe",
			p:     part{hi: "k", fetched: "b", splitAt: 3, kept: 2, keptAtCut: 2},
			page:  entries("c", "d"),
			batch: []string{"c", "d"},
			j:     judgement{depth: 3, paid: true},
			after: part{hi: "k", fetched: "d", splitAt: 3, kept: 3, keptAtCut: 2}},
		{name: "later pages say nothing of it",
			p:     part{hi: "k", fetched: "d", splitAt: 3, kept: 3, keptAtCut: 2},
			page:  entries("e"),
			batch: []string{"e"},
			after: part{hi: "k", fetched: "e", splitAt: 3, kept: 4, keptAtCut: 2}},
		{name: "a part that runs into the cut at once: the probe fetched its page",
			p:      part{hi: "k", fetched: "j", splitAt: 3, kept: 2, keptAtCut: 2},
			page:   entries("l", "m"),
			beyond: true,
			j:      judgement{depth: 3},
			after:  part{hi: "k", fetched: "j", kept: 2, keptAtCut: 2}},
		{name: "running into the cut after pages of its own says nothing",
			p:      part{hi: "k", fetched: "j", splitAt: 3, kept: 3, keptAtCut: 2},
			page:   entries("l"),
			beyond: true,
			after:  part{hi: "k", fetched: "j", splitAt: 3, kept: 3, keptAtCut: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			batch, beyond, j := p.take(tc.page)
			if got := positions(batch); !slices.Equal(got, tc.batch) || beyond != tc.beyond || j != tc.j {
				t.Fatalf("take = %q, %v, %+v; want %q, %v, %+v", got, beyond, j, tc.batch, tc.beyond, tc.j)
			}
			if len(batch) > 0 && !slices.Equal(positions(p.batches[len(p.batches)-1]), tc.batch) {
				t.Fatalf("the batch was not queued: %v", p.batches)
			}
			p.batches = nil
			if !reflect.DeepEqual(p, tc.after) {
				t.Fatalf("part %+v, want %+v", p, tc.after)
			}
		})
	}
}

// What a probe's page from b means for the part it would cut.
func TestPartProbed(t *testing.T) {
	const b = "k0" + MaxRune
	cases := []struct {
		name      string
		p         part
		page      []Entry
		truncated bool
		newPart   *part // nil: no cut
		j         judgement
		after     part
	}{
		{name: "a page of what sorts before b only says nothing",
			p:         part{fetched: "k000100", kept: 1},
			page:      entries("k000100", "k000200"),
			truncated: true,
			after:     part{fetched: "k000100", kept: 1}},
		{name: "nothing past b: the part ends there",
			p:     part{fetched: "k000100", kept: 1, splitAt: 1},
			page:  entries("k000100"),
			after: part{hi: b, fetched: "k000100", kept: 1}},
		{name: "nothing past b before the part's end: it ends at b",
			p:     part{hi: "m", fetched: "k000100", kept: 1},
			page:  entries("n"),
			after: part{hi: b, fetched: "k000100", kept: 1}},
		{name: "the part had listed past b when the probe began: wasted",
			p:     part{fetched: "l", kept: 3, keptAtProbe: 3},
			page:  entries("k1"),
			j:     judgement{depth: 2},
			after: part{fetched: "l", kept: 3, keptAtProbe: 3}},
		{name: "listed past b with its next page: the probe was wasted",
			p:     part{fetched: "l", kept: 4, keptAtProbe: 3},
			page:  entries("k1"),
			j:     judgement{depth: 2},
			after: part{fetched: "l", kept: 4, keptAtProbe: 3}},
		{name: "listed past b with more: the probe was only slow",
			p:     part{fetched: "l", kept: 5, keptAtProbe: 3},
			page:  entries("k1"),
			after: part{fetched: "l", kept: 5, keptAtProbe: 3}},
		{name: "names past b: a new part from b to the old end",
			p:       part{hi: "m", fetched: "k000100", kept: 2, keptAtProbe: 2},
			page:    entries("k1", "k2"),
			newPart: &part{lo: b, hi: "m"},
			after:   part{hi: b, fetched: "k000100", kept: 2, keptAtProbe: 2, splitAt: 2, keptAtCut: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			q, j := p.probed(b, 2, tc.page, tc.truncated)
			if j != tc.j {
				t.Errorf("judgement %+v, want %+v", j, tc.j)
			}
			switch {
			case (q == nil) != (tc.newPart == nil):
				t.Errorf("new part %+v, want %+v", q, tc.newPart)
			case q != nil && !reflect.DeepEqual(*q, *tc.newPart):
				t.Errorf("new part %+v, want %+v", *q, *tc.newPart)
			}
			if !reflect.DeepEqual(p, tc.after) {
				t.Errorf("part %+v, want %+v", p, tc.after)
			}
		})
	}
}

// The window holds at most its limit of pages, but the page the reader
// waits for always gets a slot.
func TestWindow(t *testing.T) {
	type op struct {
		acquire bool // else release
		ahead   bool
		ok      bool // acquire's answer
		held    int  // after the op
		full    bool
	}
	cases := []struct {
		name string
		ops  []op
	}{
		{"up to the limit", []op{
			{acquire: true, ok: true, held: 1},
			{acquire: true, ok: true, held: 2},
			{acquire: true, ok: true, held: 3, full: true},
			{acquire: true, ok: false, held: 3, full: true},
		}},
		{"a release makes room", []op{
			{acquire: true, ok: true, held: 1},
			{acquire: true, ok: true, held: 2},
			{acquire: true, ok: true, held: 3, full: true},
			{held: 2},
			{acquire: true, ok: true, held: 3, full: true},
		}},
		{"the reader's page goes beyond the limit", []op{
			{acquire: true, ok: true, held: 1},
			{acquire: true, ok: true, held: 2},
			{acquire: true, ok: true, held: 3, full: true},
			{acquire: true, ahead: true, ok: true, held: 4, full: true},
			{acquire: true, ok: false, held: 4, full: true},
			{held: 3, full: true},
			{acquire: true, ok: false, held: 3, full: true},
			{held: 2},
			{acquire: true, ok: true, held: 3, full: true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := window{limit: 3}
			for i, o := range tc.ops {
				if o.acquire {
					if ok := w.acquire(o.ahead); ok != o.ok {
						t.Fatalf("op %d: acquire(%v) = %v, want %v", i, o.ahead, ok, o.ok)
					}
				} else {
					w.release()
				}
				if w.held != o.held || w.full() != o.full {
					t.Fatalf("op %d: %d held (full %v), want %d (%v)", i, w.held, w.full(), o.held, o.full)
				}
			}
		})
	}
}
