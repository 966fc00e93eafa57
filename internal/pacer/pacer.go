// Package pacer paces a daemon's requests to its object store. Every
// request waits for its turn here, whatever its kind, and reports how it
// was answered. While the store answers, requests go at once (within a
// window that opens as answers come, so that a daemon that starts cold
// does not send a burst); once the store throttles (503 SlowDown, 429),
// all requests are spaced at one allowed rate that narrows on throttled
// answers and widens while none come (control.go). Requests waiting for
// their turn go in order of priority: foreground before background
// (readahead, warming), then first come first served.
package pacer

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Priority says whether a request is background work, which waits while
// foreground requests are waiting. It is asked when the request's turn
// comes, so it may change while the request waits (a reader joins a
// readahead's download).
type Priority interface {
	Background() bool
}

type priorityKey struct{}

// WithPriority returns ctx carrying p; requests made under ctx wait as p
// says. Without one, a request is foreground.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// Background is the priority of background work.
var Background Priority = background{}

type background struct{}

func (background) Background() bool { return true }

func priorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}

// IsBackground says whether requests made under ctx are background work,
// now.
func IsBackground(ctx context.Context) bool {
	p := priorityOf(ctx)
	return p != nil && p.Background()
}

// Outcome is how a request was answered.
type Outcome uint8

const (
	// Answered: the store answered (successfully or not: a 404 is news
	// of the object, not of the store's load).
	Answered Outcome = iota
	// Throttled: the store asked for fewer requests.
	Throttled
	// Failed: no answer (a network error, a timeout); says nothing of the
	// store's load.
	Failed
)

// Pacer paces requests. It is safe for concurrent use; Close stops its
// timer.
type Pacer struct {
	log *slog.Logger

	mu      sync.Mutex
	c       *control
	waiting []*waiter // in arrival order
	flight  map[uint64]time.Time
	nextID  uint64
	timer   *time.Timer
	closed  bool
}

type waiter struct {
	prio  Priority
	ready chan Ticket // buffered: the grant never blocks
}

func (w *waiter) background() bool { return w.prio != nil && w.prio.Background() }

// Ticket is the permission to send one request; Done returns it.
type Ticket struct {
	id     uint64
	sentAt time.Time
}

// New returns a pacer; log gets one line when throttling starts and one
// when it ends.
func New(cfg Config, log *slog.Logger) *Pacer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	return &Pacer{log: log, c: newControl(cfg, rng), flight: map[uint64]time.Time{}}
}

// Wait waits for the turn of one request made under ctx (see
// WithPriority), or for ctx to end.
func (p *Pacer) Wait(ctx context.Context) (Ticket, error) {
	w := &waiter{prio: priorityOf(ctx), ready: make(chan Ticket, 1)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return Ticket{}, context.Canceled
	}
	p.waiting = append(p.waiting, w)
	p.dispatchLocked(time.Now())
	p.mu.Unlock()
	select {
	case t := <-w.ready:
		return t, nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case t := <-w.ready:
		// Granted meanwhile: not sent, so not in flight either.
		delete(p.flight, t.id)
		p.dispatchLocked(time.Now())
	default:
		p.removeLocked(w)
	}
	return Ticket{}, ctx.Err()
}

// Done reports the outcome of the request t allowed.
func (p *Pacer) Done(t Ticket, o Outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	delete(p.flight, t.id)
	if o != Failed {
		if p.c.answered(now, t.sentAt, o == Throttled) {
			p.log.Warn("S3 is throttling requests (503 SlowDown or 429): pacing every request of this daemon",
				"allowed_rate", roundRate(p.c.rate(now)))
		}
	}
	p.dispatchLocked(now)
}

// Rate is the rate of requests allowed now, per second: +Inf when requests
// are not paced.
func (p *Pacer) Rate() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endIfCalmLocked(time.Now())
	return p.c.rate(time.Now())
}

// Close stops the pacer's timer; requests still waiting wait for their
// contexts.
func (p *Pacer) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
	}
}

// dispatchLocked grants the turn to as many waiting requests as may go
// now, best first, and sets the timer for the next event: a turn, or the
// end of a throttling episode.
func (p *Pacer) dispatchLocked(now time.Time) {
	p.endIfCalmLocked(now)
	var wake time.Time
	for len(p.waiting) > 0 {
		at := p.c.nextAt(now, p.flightTimes())
		if at.After(now) || at.IsZero() {
			wake = at
			break
		}
		w := p.takeBestLocked()
		p.nextID++
		t := Ticket{id: p.nextID, sentAt: now}
		p.flight[t.id] = now
		p.c.sent(now)
		w.ready <- t
	}
	if calm := p.c.calmAt(); !calm.IsZero() && (wake.IsZero() || calm.Before(wake)) {
		wake = calm
	}
	p.armLocked(wake)
}

func (p *Pacer) endIfCalmLocked(now time.Time) {
	if ended, ep := p.c.endIfCalm(now); ended {
		p.log.Info("S3 throttling is over: requests are not paced any more",
			"lasted", now.Sub(ep.start).Round(time.Second), "throttled", ep.throttled,
			"answered", ep.answered, "sent", ep.sent, "lowest_rate", roundRate(ep.lowest))
	}
}

func (p *Pacer) flightTimes() []time.Time {
	if len(p.flight) == 0 {
		return nil
	}
	ts := make([]time.Time, 0, len(p.flight))
	for _, t := range p.flight {
		ts = append(ts, t)
	}
	return ts
}

// takeBestLocked removes and returns the first foreground waiter, or the
// first waiter if all are background.
func (p *Pacer) takeBestLocked() *waiter {
	best := 0
	for i, w := range p.waiting {
		if !w.background() {
			best = i
			break
		}
	}
	w := p.waiting[best]
	p.waiting = append(p.waiting[:best], p.waiting[best+1:]...)
	return w
}

func (p *Pacer) removeLocked(w *waiter) {
	for i, x := range p.waiting {
		if x == w {
			p.waiting = append(p.waiting[:i], p.waiting[i+1:]...)
			return
		}
	}
}

// armLocked sets the timer to run dispatch at at, or stops it for the
// zero time: at is the first moment something can change without a
// request or an answer (which dispatch anyway). A fire that is no longer
// needed only dispatches for nothing.
func (p *Pacer) armLocked(at time.Time) {
	switch {
	case p.closed || at.IsZero():
		if p.timer != nil {
			p.timer.Stop()
		}
	case p.timer == nil:
		p.timer = time.AfterFunc(time.Until(at), p.fire)
	default:
		p.timer.Reset(time.Until(at))
	}
}

func (p *Pacer) fire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dispatchLocked(time.Now())
}

// roundRate rounds a rate for a log line.
func roundRate(r float64) float64 {
	if math.IsInf(r, 1) {
		return r
	}
	return math.Round(r*100) / 100
}
