package fs

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"s3docs/internal/object"
)

// Bounds of listings. A server is not trusted to end a listing: besides
// the store's checks of each page (a truncated page must bring a new
// continuation token), a listing fails once it has taken maxListPages
// pages, or maxStalledPages truncated pages in a row that brought nothing
// new.
const (
	// DefaultPageTimeout is the one deadline of each listing request,
	// retries included.
	DefaultPageTimeout = 30 * time.Second
	// DefaultLookupTimeout is the one deadline of a lookup (its HEAD and
	// its listing together), retries included.
	DefaultLookupTimeout = 30 * time.Second
	// maxListPages: 20 million entries in one directory level.
	maxListPages    = 20000
	maxStalledPages = 100
	// maxListParts is how many key ranges of one directory are listed at
	// once, and maxListRequests how many listing requests the whole tree
	// has in flight.
	maxListParts    = 4
	maxListRequests = 4
)

// maxRune ends split boundaries: "g"+maxRune sorts after every valid UTF-8
// key that starts with g except those that go on with U+10FFFF itself.
const maxRune = "\U0010FFFF"

// lister lists one directory level in key order, as a stream: ListObjectsV2
// answers one page after the other, so a big directory is cut into key
// ranges (parts) that are listed at once, up to maxListParts, and read in
// order. What is fetched ahead of the reader is bounded by windowPages
// pages (the part being read may always fetch a page ahead), so memory
// does not grow with the directory and a listing nobody reads stops
// fetching; close ends every request in flight.
//
// Where to cut comes from the names themselves. After each page of a part,
// if there is room for another part, one probe lists from just past the
// group of names that share the page's first k bytes, for the smallest k
// that cuts the part's range (the group of "k00" in a part holding
// k000000..k099999 ends at "k00"+maxRune: the probe's page starts the part
// that holds k010000..). A probe that finds nothing ends the part there
// (then the next probe cuts finer). A probe whose page the part fetched
// too (the part had got there already, or ended right where the cut began)
// was wasted; once probes at a depth waste two more requests than they pay
// for, groups that fine hold a page or less, and the listing probes
// coarser only. Every probe's page that is kept is the first
// page of a new part, so few requests are spent on probing.
type lister struct {
	f      *FS
	prefix string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	cond     *sync.Cond // on mu: a batch, a free slot in the window, the end
	parts    []*part    // in key order; parts[0] is being read
	window   int        // pages fetched and not read, or being fetched
	pages    int        // requests made, probes included
	maxDepth int        // finest cut depth still tried
	// paid and wasted count, by depth, the probes that cut a part which
	// then kept pages, and those that cost a request for nothing.
	paid, wasted map[int]int
	err          error // first failure; ends the listing

	// The reader's state (next is not called concurrently).
	batch []entry
	last  string // position of the last entry handed out
}

// windowPages bounds the pages a listing holds ahead of its reader: about
// 32,000 entries, a few MiB.
const windowPages = 32

// part lists the entries whose positions are in (lo, hi]; hi "" means no
// upper bound. Guarded by lister.mu.
type part struct {
	lo, hi  string
	batches [][]entry // fetched, not read yet
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

// listDir starts listing the directory prefix ("" or "a/b/").
func (f *FS) listDir(prefix string) *lister {
	ctx, cancel := context.WithCancel(f.ctx)
	l := &lister{f: f, prefix: prefix, ctx: ctx, cancel: cancel, maxDepth: 1 << 30, paid: map[int]int{}, wasted: map[int]int{}}
	l.cond = sync.NewCond(&l.mu)
	// Waiters wake up when the listing ends.
	context.AfterFunc(ctx, l.broadcast)
	p := &part{}
	l.parts = []*part{p}
	l.window = 1
	l.wg.Add(1)
	go l.run(p, nil)
	return l
}

func (l *lister) broadcast() {
	l.mu.Lock()
	l.cond.Broadcast()
	l.mu.Unlock()
}

// close stops the listing and waits for its goroutines.
func (l *lister) close() {
	l.cancel()
	l.wg.Wait()
}

// next returns the next entry in key order; false at the end.
func (l *lister) next(ctx context.Context) (entry, bool, error) {
	for {
		for len(l.batch) > 0 {
			e := l.batch[0]
			l.batch = l.batch[1:]
			pos := e.pos()
			if l.last != "" && pos <= l.last {
				continue // also listed by the part before (a prefix that holds a cut)
			}
			l.last = pos
			return e, true, nil
		}
		if err := l.nextBatch(ctx); err != nil || l.batch == nil {
			return entry{}, false, err
		}
	}
}

// nextBatch waits for the next batch of the part being read; l.batch stays
// nil at the end of the listing.
func (l *lister) nextBatch(ctx context.Context) error {
	stop := context.AfterFunc(ctx, l.broadcast)
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		switch {
		case l.err != nil:
			return l.err
		case ctx.Err() != nil:
			return ctx.Err()
		case l.ctx.Err() != nil:
			// Closed, or the tree stopped: the parts may have ended
			// early, and their end is not the directory's.
			return l.ctx.Err()
		case len(l.parts) == 0:
			l.batch = nil
			return nil
		}
		p := l.parts[0]
		if len(p.batches) > 0 {
			l.batch = p.batches[0]
			p.batches = p.batches[1:]
			l.window--
			l.cond.Broadcast()
			return nil
		}
		if p.done {
			l.parts = l.parts[1:]
			l.cond.Broadcast() // the next part may fetch now
			continue
		}
		l.cond.Wait()
	}
}

// fail ends the listing with err (the first one wins).
func (l *lister) fail(err error) {
	l.mu.Lock()
	if l.err == nil && l.ctx.Err() == nil {
		l.err = err
	}
	l.mu.Unlock()
	l.cancel()
}

// reserve waits for a slot in the window for one more page of p: the part
// being read always gets one while it holds less than two pages unread
// (beyond that, a part nobody reads and no probe cuts would fetch the
// whole directory). False when the listing is over.
func (l *lister) reserve(p *part) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.ctx.Err() == nil && l.err == nil {
		if l.window < windowPages || (len(l.parts) > 0 && l.parts[0] == p && len(p.batches) < 2) {
			l.window++
			return true
		}
		l.cond.Wait()
	}
	return false
}

// fetch makes one listing request, within the tree's limit of requests in
// flight and the page deadline.
func (l *lister) fetch(req object.ListRequest) (object.Page, error) {
	l.mu.Lock()
	l.pages++
	pages := l.pages
	l.mu.Unlock()
	if pages > maxListPages {
		return object.Page{}, fmt.Errorf("list %s: more than %d pages: %w", l.prefix, maxListPages, object.ErrBadListing)
	}
	select {
	case l.f.listSem <- struct{}{}:
	case <-l.ctx.Done():
		return object.Page{}, l.ctx.Err()
	}
	defer func() { <-l.f.listSem }()
	ctx, cancel := context.WithTimeout(l.ctx, l.f.opt.PageTimeout)
	defer cancel()
	return l.f.opt.Store.ListPage(ctx, req)
}

// run lists part p, starting with page first if a probe fetched it (its
// slot in the window is reserved already).
func (l *lister) run(p *part, first *object.Page) {
	defer l.wg.Done()
	reserved := true // the first page's slot, reserved by whoever started p
	defer func() {
		l.mu.Lock()
		p.done = true
		if reserved {
			l.window--
		}
		l.cond.Broadcast()
		l.mu.Unlock()
	}()
	req := object.ListRequest{Prefix: l.prefix, Delimiter: true}
	if p.lo != "" {
		req.StartAfter = l.prefix + p.lo
	}
	stalled := 0
	for {
		if !reserved {
			if !l.reserve(p) {
				return
			}
			reserved = true
		}
		var page object.Page
		if first != nil {
			page, first = *first, nil
		} else {
			var err error
			if page, err = l.fetch(req); err != nil {
				l.fail(err)
				return
			}
		}
		more, progressed := l.take(p, page)
		reserved = false // the slot went to the batch, or was given back
		if !progressed && page.Truncated {
			if stalled++; stalled > maxStalledPages {
				l.fail(fmt.Errorf("list %s: %d pages in a row brought nothing new: %w", l.prefix, stalled, object.ErrBadListing))
				return
			}
		} else {
			stalled = 0
		}
		if !more {
			return
		}
		req.Token = page.NextToken
	}
}

// take keeps the entries of page that are p's and new, as a batch that
// holds the page's slot in the window, and may start a probe.
func (l *lister) take(p *part, page object.Page) (more, progressed bool) {
	entries := pageEntries(l.prefix, page)
	l.mu.Lock()
	defer l.mu.Unlock()
	after := p.lo
	if p.fetched != "" {
		after = p.fetched
	}
	beyond := false
	var batch []entry
	for _, e := range entries {
		pos := e.pos()
		if after != "" && pos <= after {
			continue
		}
		if p.hi != "" && pos > p.hi {
			beyond = true
			break
		}
		batch = append(batch, e)
	}
	more = page.Truncated && !beyond
	if len(batch) == 0 {
		l.window--
		if beyond && p.splitAt > 0 && p.kept == p.keptAtCut {
			// A probe cut p right where this page starts: the probe and
			// this request fetched the same page.
			l.judgeLocked(p.splitAt, false)
			p.splitAt = 0
		}
	} else {
		p.fetched = batch[len(batch)-1].pos()
		p.batches = append(p.batches, batch)
		p.kept++
		if p.splitAt > 0 && p.kept == p.keptAtCut+1 {
			l.judgeLocked(p.splitAt, true)
		}
		if more {
			l.maybeSplitLocked(p, batch[0].pos(), p.fetched)
		}
	}
	l.cond.Broadcast()
	return more, len(batch) > 0 || beyond
}

// pageEntries turns a page into entries sorted by position. A folder
// marker (the directory's own key) is not an entry.
func pageEntries(prefix string, page object.Page) []entry {
	out := make([]entry, 0, len(page.Dirs)+len(page.Files))
	for _, d := range page.Dirs {
		out = append(out, entry{name: d, dir: true})
	}
	for _, v := range page.Files {
		name, ok := strings.CutPrefix(v.Key, prefix)
		if !ok || name == "" {
			continue
		}
		out = append(out, entry{name: name, v: v})
	}
	slices.SortFunc(out, func(a, b entry) int { return cmp.Compare(a.pos(), b.pos()) })
	return out
}

// maybeSplitLocked starts a probe that may cut p's remaining range, if
// the listing has room for another part and a page. first and last are
// the positions of p's latest page.
func (l *lister) maybeSplitLocked(p *part, first, last string) {
	if p.probing || l.err != nil || l.window >= windowPages || l.fetching() >= maxListParts {
		return
	}
	k := 1
	if p.hi != "" {
		k = commonPrefix(last, p.hi) + 1
	}
	for ; k <= min(commonPrefix(first, last), l.maxDepth); k++ {
		g, ok := wholeCharacters(last[:k])
		if !ok {
			continue // S3 takes only UTF-8
		}
		b := g + maxRune
		if b <= last || (p.hi != "" && b >= p.hi) {
			continue
		}
		p.probing, p.keptAtProbe = true, p.kept
		l.window++ // for the probe's page
		l.wg.Add(1)
		go l.probe(p, b, k)
		return
	}
}

// judgeLocked counts a probe at depth as paid or wasted. Cuts that fine
// stop, finer ones too, once they have wasted two requests more than they
// paid for: one unlucky probe (a page that ended near its group's end)
// does not stop them, groups of a page or less soon do.
func (l *lister) judgeLocked(depth int, paid bool) {
	if paid {
		l.paid[depth]++
		return
	}
	l.wasted[depth]++
	if l.wasted[depth] > l.paid[depth]+1 {
		l.maxDepth = min(l.maxDepth, depth-1)
	}
}

// fetching counts the parts still fetching.
func (l *lister) fetching() int {
	n := 0
	for _, p := range l.parts {
		if !p.done {
			n++
		}
	}
	return n
}

// probe lists from b on; its page becomes a new part (b, p.hi] and p ends
// at b, unless the page shows that nothing is there or that p had it, or
// the probe failed.
func (l *lister) probe(p *part, b string, depth int) {
	defer l.wg.Done()
	page, err := l.fetch(object.ListRequest{Prefix: l.prefix, Delimiter: true, StartAfter: l.prefix + b})
	entries := pageEntries(l.prefix, page)
	l.mu.Lock()
	defer l.mu.Unlock()
	p.probing = false
	if err != nil {
		// A probe only ever cuts: p lists its range itself. A server that
		// refuses or never answers StartAfter is probed no more.
		l.window--
		l.maxDepth = 0
		l.cond.Broadcast()
		return
	}
	if !l.cutLocked(p, b, depth, entries, page.Truncated) {
		l.window--
		l.cond.Broadcast()
		return
	}
	// The new part owns the probe's page and its slot.
	q := &part{lo: b, hi: p.hi}
	p.hi, p.splitAt, p.keptAtCut = b, depth, p.kept
	l.parts = slices.Insert(l.parts, slices.Index(l.parts, p)+1, q)
	l.wg.Add(1)
	go l.run(q, &page)
}

// cutLocked says whether the probe's page at b starts a new part after p;
// if it shows that nothing is in (b, p.hi], p ends at b.
func (l *lister) cutLocked(p *part, b string, depth int, entries []entry, truncated bool) bool {
	if p.done || slices.Index(l.parts, p) < 0 {
		return false
	}
	i := 0
	for i < len(entries) && entries[i].pos() <= b {
		i++
	}
	switch {
	case i == len(entries) && truncated:
		return false // a page of what sorts before b only: says nothing
	case i == len(entries) || (p.hi != "" && entries[i].pos() > p.hi):
		if b > p.fetched {
			p.hi, p.splitAt = b, 0
		}
		return false
	case p.fetched >= entries[i].pos():
		// p has listed past b already: with its next page, groups that
		// fine hold a page or less; with more, the probe was slow.
		if p.kept-p.keptAtProbe <= 1 {
			l.judgeLocked(depth, false)
		}
		return false
	}
	return true
}

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
