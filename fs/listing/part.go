package listing

// part lists the entries whose positions are in (lo, hi]; hi "" means no
// upper bound. Its methods change only the part itself: the stream's lock
// guards it, and what they decide about probes comes back as a judgement
// for cuts.
type part struct {
	lo, hi  string
	batches [][]Entry // fetched, not read yet
	fetched string    // position of the last entry kept, "" before any
	probing bool
	// splitAt is the depth of the probe that last cut hi. kept counts the
	// pages p kept, keptAtCut and keptAtProbe what it had kept when that
	// probe cut hi and when the probe in flight began: a cut or a probe
	// proves groups too fine only if p had not moved on since.
	splitAt     int
	kept        int
	keptAtCut   int
	keptAtProbe int
	done        bool // no more batches will come
}

// judgement is what a page says of a probe at depth: that it paid for
// itself or was wasted. Depth 0 says nothing.
type judgement struct {
	depth int
	paid  bool
}

// take keeps the entries of a page (sorted by position) that are p's and
// new, as its next batch; beyond says the page went past p's end. A page
// may settle whether the probe that last cut p paid: p kept its first
// page after the cut, or its listing ran into the cut at once (the probe
// and p fetched the same page).
func (p *part) take(entries []Entry) (batch []Entry, beyond bool, j judgement) {
	after := p.lo
	if p.fetched != "" {
		after = p.fetched
	}
	for _, e := range entries {
		pos := e.Pos()
		if after != "" && pos <= after {
			continue
		}
		if p.hi != "" && pos > p.hi {
			beyond = true
			break
		}
		batch = append(batch, e)
	}
	if len(batch) == 0 {
		if beyond && p.splitAt > 0 && p.kept == p.keptAtCut {
			j = judgement{depth: p.splitAt}
			p.splitAt = 0
		}
		return nil, beyond, j
	}
	p.fetched = batch[len(batch)-1].Pos()
	p.batches = append(p.batches, batch)
	p.kept++
	if p.splitAt > 0 && p.kept == p.keptAtCut+1 {
		j = judgement{depth: p.splitAt, paid: true}
	}
	return batch, beyond, j
}

// probing notes that a probe of p's range begins.
func (p *part) startProbe() { p.probing, p.keptAtProbe = true, p.kept }

// probed reads the page of a probe that listed from bound b on, at depth.
// It returns the new part that the page starts, (b, p.hi], p then ending
// at b; or nil when the page says nothing (only what sorts before b), says
// that nothing is in (b, p.hi] (then p ends at b), or shows that p has
// listed past b already (with its next page: groups that fine hold a page
// or less, and the probe was wasted; with more, it was slow).
func (p *part) probed(b string, depth int, entries []Entry, truncated bool) (*part, judgement) {
	i := 0
	for i < len(entries) && entries[i].Pos() <= b {
		i++
	}
	switch {
	case i == len(entries) && truncated:
		return nil, judgement{}
	case i == len(entries) || (p.hi != "" && entries[i].Pos() > p.hi):
		if b > p.fetched {
			p.hi, p.splitAt = b, 0
		}
		return nil, judgement{}
	case p.fetched >= entries[i].Pos():
		if p.kept-p.keptAtProbe <= 1 {
			return nil, judgement{depth: depth}
		}
		return nil, judgement{}
	}
	q := &part{lo: b, hi: p.hi}
	p.hi, p.splitAt, p.keptAtCut = b, depth, p.kept
	return q, judgement{}
}
