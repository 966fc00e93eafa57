package listing

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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
	// maxListPages: 20 million entries in one directory level.
	maxListPages    = 20000
	maxStalledPages = 100
	// maxListParts is how many key ranges of one directory are listed at
	// once, and maxListRequests how many listing requests a Lister has in
	// flight.
	maxListParts    = 4
	maxListRequests = 4
)

// Store is what a listing needs of the object store.
type Store interface {
	// ListPage makes one listing request (ListObjectsV2). A truncated page
	// must carry a continuation token other than the one asked with.
	ListPage(ctx context.Context, req object.ListRequest) (object.Page, error)
}

// Lister lists the directories of one store, with one bound on the
// requests in flight across all its listings.
type Lister struct {
	store       Store
	pageTimeout time.Duration
	requests    chan struct{} // a slot per request in flight
}

// New returns a Lister of store whose requests each have pageTimeout
// (DefaultPageTimeout if 0) for their deadline.
func New(store Store, pageTimeout time.Duration) *Lister {
	if pageTimeout <= 0 {
		pageTimeout = DefaultPageTimeout
	}
	return &Lister{store: store, pageTimeout: pageTimeout, requests: make(chan struct{}, maxListRequests)}
}

// Stream is one listing of one directory level, in key order. What is
// fetched ahead of the reader is bounded by the window (the part being
// read may always fetch a page ahead), so memory does not grow with the
// directory and a listing nobody reads stops fetching; Close ends every
// request in flight.
//
// Its goroutines (one per part, one per probe) and its reader share one
// lock. Whoever changes the state under it wakes every waiter as it lets
// go (unlock), or before it waits itself, and every waiter checks again
// what it waits for: the reader a batch of the part being read, a part a
// slot in the window.
type Stream struct {
	lr       *Lister
	prefix   string
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	requests atomic.Int64 // made, probes included

	mu     sync.Mutex
	cond   *sync.Cond // on mu
	parts  []*part    // in key order; parts[0] is being read
	window window
	cuts   cuts
	err    error // first failure; ends the listing

	// The reader's state (Next is not called concurrently).
	batch []Entry
	last  string // position of the last entry handed out
}

// List starts listing the directory prefix ("" or "a/b/"). It stops when
// ctx ends (Next then fails: a listing cut short is not the directory's
// end) or at Close.
func (lr *Lister) List(ctx context.Context, prefix string) *Stream {
	ctx, cancel := context.WithCancel(ctx)
	s := &Stream{lr: lr, prefix: prefix, ctx: ctx, cancel: cancel, window: window{limit: windowPages}, cuts: newCuts()}
	s.cond = sync.NewCond(&s.mu)
	// Waiters wake up when the listing ends.
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.unlock()
	})
	p := &part{}
	s.parts = []*part{p}
	s.window.acquire(true)
	s.start(p, nil)
	return s
}

// unlock wakes every waiter, then lets go of the lock.
func (s *Stream) unlock() {
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Close stops the listing and waits for its goroutines.
func (s *Stream) Close() {
	s.cancel()
	s.wg.Wait()
}

// Next returns the next entry in key order; false at the end.
func (s *Stream) Next(ctx context.Context) (Entry, bool, error) {
	for {
		for len(s.batch) > 0 {
			e := s.batch[0]
			s.batch = s.batch[1:]
			pos := e.Pos()
			if s.last != "" && pos <= s.last {
				continue // also listed by the part before (a prefix that holds a cut)
			}
			s.last = pos
			return e, true, nil
		}
		if err := s.nextBatch(ctx); err != nil || s.batch == nil {
			return Entry{}, false, err
		}
	}
}

// nextBatch waits for the next batch of the part being read; s.batch stays
// nil at the end of the listing.
func (s *Stream) nextBatch(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.unlock()
	for {
		switch {
		case s.err != nil:
			return s.err
		case ctx.Err() != nil:
			return ctx.Err()
		case s.ctx.Err() != nil:
			// Closed, or the tree stopped: the parts may have ended
			// early, and their end is not the directory's.
			return s.ctx.Err()
		case len(s.parts) == 0:
			s.batch = nil
			return nil
		}
		p := s.parts[0]
		if len(p.batches) > 0 {
			s.batch = p.batches[0]
			p.batches = p.batches[1:]
			s.window.release()
			return nil
		}
		if p.done {
			s.parts = s.parts[1:]
			// The next part may fetch ahead now: wake it before this
			// waits (unlock would, but only on the way out).
			s.cond.Broadcast()
			continue
		}
		s.cond.Wait()
	}
}

// fail ends the listing with err (the first one wins).
func (s *Stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil && s.ctx.Err() == nil {
		s.err = err
	}
	s.unlock()
	s.cancel()
}

// reserve waits for a slot in the window for one more page of p: the part
// being read always gets one while it holds less than two pages unread
// (beyond that, a part nobody reads and no probe cuts would fetch the
// whole directory). False when the listing is over.
func (s *Stream) reserve(p *part) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.ctx.Err() == nil && s.err == nil {
		if s.window.acquire(len(s.parts) > 0 && s.parts[0] == p && len(p.batches) < 2) {
			return true
		}
		s.cond.Wait()
	}
	return false
}

// fetch makes one listing request, within the Lister's bound on requests
// in flight and the page deadline.
func (s *Stream) fetch(req object.ListRequest) (object.Page, error) {
	if n := s.requests.Add(1); n > maxListPages {
		return object.Page{}, fmt.Errorf("list %s: more than %d pages: %w", s.prefix, maxListPages, object.ErrBadListing)
	}
	select {
	case s.lr.requests <- struct{}{}:
	case <-s.ctx.Done():
		return object.Page{}, s.ctx.Err()
	}
	defer func() { <-s.lr.requests }()
	ctx, cancel := context.WithTimeout(s.ctx, s.lr.pageTimeout)
	defer cancel()
	return s.lr.store.ListPage(ctx, req)
}

// start lists part p in a goroutine of its own, starting with page first
// if a probe fetched it. p's first slot in the window is taken already.
func (s *Stream) start(p *part, first *object.Page) {
	s.wg.Add(1)
	go s.run(p, first)
}

// run lists part p, page after page, each in a slot of the window.
func (s *Stream) run(p *part, first *object.Page) {
	defer s.wg.Done()
	reserved := true // the first page's slot, taken by whoever started p
	defer func() {
		s.mu.Lock()
		p.done = true
		if reserved {
			s.window.release()
		}
		s.unlock()
	}()
	req := object.ListRequest{Prefix: s.prefix, Delimiter: true}
	if p.lo != "" {
		req.StartAfter = s.prefix + p.lo
	}
	stalled := 0
	for {
		if !reserved {
			if !s.reserve(p) {
				return
			}
			reserved = true
		}
		var page object.Page
		if first != nil {
			page, first = *first, nil
		} else {
			var err error
			if page, err = s.fetch(req); err != nil {
				s.fail(err)
				return
			}
		}
		more, progressed := s.take(p, page)
		reserved = false // the slot went to the batch, or was given back
		if !progressed && page.Truncated {
			if stalled++; stalled > maxStalledPages {
				s.fail(fmt.Errorf("list %s: %d pages in a row brought nothing new: %w", s.prefix, stalled, object.ErrBadListing))
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
func (s *Stream) take(p *part, page object.Page) (more, progressed bool) {
	entries := pageEntries(s.prefix, page)
	s.mu.Lock()
	defer s.unlock()
	batch, beyond, j := p.take(entries)
	if j.depth > 0 {
		s.cuts.judge(j.depth, j.paid)
	}
	more = page.Truncated && !beyond
	if len(batch) == 0 {
		s.window.release()
	} else if more {
		s.maybeProbeLocked(p, batch[0].Pos(), p.fetched)
	}
	return more, len(batch) > 0 || beyond
}

// maybeProbeLocked starts a probe that may cut p's remaining range, if
// the listing has room for another part and a page. first and last are
// the positions of p's latest page.
func (s *Stream) maybeProbeLocked(p *part, first, last string) {
	if p.probing || s.err != nil || s.window.full() || s.fetching() >= maxListParts {
		return
	}
	b, depth, ok := s.cuts.next(first, last, p.hi)
	if !ok {
		return
	}
	p.startProbe()
	s.window.acquire(false) // for the probe's page; cannot fail: not full above, under the same lock
	s.wg.Add(1)
	go s.probe(p, b, depth)
}

// fetching counts the parts still fetching.
func (s *Stream) fetching() int {
	n := 0
	for _, p := range s.parts {
		if !p.done {
			n++
		}
	}
	return n
}

// probe lists from b on; its page becomes a new part (b, p.hi] and p ends
// at b, unless the page shows that nothing is there or that p had it, or
// the probe failed.
func (s *Stream) probe(p *part, b string, depth int) {
	defer s.wg.Done()
	page, err := s.fetch(object.ListRequest{Prefix: s.prefix, Delimiter: true, StartAfter: s.prefix + b})
	entries := pageEntries(s.prefix, page)
	s.mu.Lock()
	defer s.unlock()
	p.probing = false
	if err != nil {
		// A probe only ever cuts: p lists its range itself. A server that
		// refuses or never answers StartAfter is probed no more.
		s.window.release()
		s.cuts.stop()
		return
	}
	if p.done || slices.Index(s.parts, p) < 0 {
		s.window.release()
		return
	}
	q, j := p.probed(b, depth, entries, page.Truncated)
	if j.depth > 0 {
		s.cuts.judge(j.depth, j.paid)
	}
	if q == nil {
		s.window.release()
		return
	}
	// The new part owns the probe's page and its slot.
	s.parts = slices.Insert(s.parts, slices.Index(s.parts, p)+1, q)
	s.start(q, &page)
}
