package chunkcache

import (
	"context"
	"sync"

	"s3docs/internal/pacer"
)

// slots bound the GETs in flight (Options.MaxConcurrentGets). A free slot
// goes to a foreground waiter before a background one (readahead,
// warming), then first come first served: while the store throttles,
// background downloads queue for their turn in the pacer holding slots,
// and must not keep a reader's download from getting one.
type slots struct {
	mu      sync.Mutex
	free    int
	waiting []*slotWaiter // in arrival order
}

type slotWaiter struct {
	prio  pacer.Priority // nil: foreground
	ready chan struct{}  // closed when the slot is granted
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire waits for a slot for a GET of priority prio (nil: foreground).
func (s *slots) acquire(ctx context.Context, prio pacer.Priority) error {
	s.mu.Lock()
	if s.free > 0 && len(s.waiting) == 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	w := &slotWaiter{prio: prio, ready: make(chan struct{})}
	s.waiting = append(s.waiting, w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-w.ready:
		// Granted meanwhile: hand it on.
		s.free++
		s.grantLocked()
	default:
		for i, x := range s.waiting {
			if x == w {
				s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
				break
			}
		}
	}
	return ctx.Err()
}

func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.free++
	s.grantLocked()
}

// grantLocked hands free slots to the best waiters.
func (s *slots) grantLocked() {
	for s.free > 0 && len(s.waiting) > 0 {
		best := 0
		for i, w := range s.waiting {
			if w.prio == nil || !w.prio.Background() {
				best = i
				break
			}
		}
		w := s.waiting[best]
		s.waiting = append(s.waiting[:best], s.waiting[best+1:]...)
		s.free--
		close(w.ready)
	}
}
