package s3store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"s3docs/internal/pacer"
)

// The store's retries, the only ones on the way of a request (the SDK's
// own are off, and the chunk cache does not try a download again).
//
// Every request, whatever its kind, first waits for its turn in the
// daemon's one pacer (internal/pacer), which reports how the store
// answered. An answer is one of:
//
//   - throttled (503 SlowDown or ServiceUnavailable, 429, the SDK's
//     throttle codes): the store asks for fewer requests. The pacer slows
//     the whole daemon down; the request waits throttleBackoff (growing
//     with each of its throttled answers) and its turn again, and so on
//     for as long as its context allows: the read's deadline
//     (--read-timeout), a lookup's or a listing page's. Throttling is
//     never a reason to give up early.
//   - failed (another 5xx, a refused or reset connection, a timeout):
//     tried again after failureBackoff, up to MaxAttempts failures in all
//     (about 4 s: a dead or broken store fails reads fast).
//   - final (403, 404, 412, any other answer): returned at once.
//
// A range (GetRange) has one budget for its first GET and its resumes:
// a body cut short or stalled counts as a failure unless it brought its
// credit first (creditFor: 1 MiB, or half of what it was asked for, at
// least 64 KiB). So one range of n bytes costs at most
// MaxRequestsPerRange(n, d) requests within a deadline d.

// Retry timing; Options can shorten them for tests.
const (
	// defaultFailureBackoff is the wait before the second try after a
	// failure; it doubles with each failure, and each wait is drawn
	// between half of it and all of it. 250 ms, 0.5, 1, 2 s: the fifth
	// failure comes 1.9-3.75 s after the first.
	defaultFailureBackoff = 250 * time.Millisecond
	// defaultThrottleBackoff is a request's wait after its first
	// throttled answer; it doubles with each, up to maxThrottleBackoff,
	// and each wait is drawn between half of it and all of it: 0.5-1 s,
	// 1-2, 2-4, then 4-8 s. The pacer spaces the daemon's requests
	// anyway: this bounds how often one request asks again
	// (MaxRequestsPerRange), and the draw keeps a fleet throttled at
	// once from asking again at once.
	defaultThrottleBackoff = time.Second
	maxThrottleBackoff     = 8 * time.Second
)

// Request kinds, for metrics.
const (
	KindGet  = "get"
	KindHead = "head"
	KindList = "list"
)

// Request outcomes, for metrics: ok is any answer about the object (a
// 404 or 412 included), throttled a throttled answer, error a failure or
// a refusal.
const (
	OutcomeOK        = "ok"
	OutcomeThrottled = "throttled"
	OutcomeError     = "error"
)

// Retry reasons, for metrics.
const (
	RetryThrottled   = "throttled"    // a throttled answer
	RetryServerError = "server_error" // a 5xx answer other than throttling
	RetryNetwork     = "network"      // no answer: connection refused or reset, timeout
	RetryResume      = "resume"       // a body cut short or stalled, asked for again from where it stopped
)

// budget is what one operation has spent: its failures and throttled
// answers. A range's GETs and resumes share one.
type budget struct {
	failures, throttles int
	lastThrottle        error
}

// class is how an attempt ended.
type class uint8

const (
	classOK class = iota
	classThrottled
	classFailed
	classFinal
)

var (
	isRetryable = retry.IsErrorRetryables(retry.DefaultRetryables)
	isThrottle  = retry.IsErrorThrottles(retry.DefaultThrottles)
)

func classify(err error) class {
	switch status := httpStatus(err); {
	case err == nil:
		return classOK
	case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests ||
		isThrottle.IsErrorThrottle(err) == aws.TrueTernary:
		return classThrottled
	case isRetryable.IsErrorRetryable(err) == aws.TrueTernary:
		return classFailed
	}
	return classFinal
}

// outcomeOf labels a request's outcome for metrics.
func outcomeOf(c class, err error) string {
	switch c {
	case classOK:
		return OutcomeOK
	case classThrottled:
		return OutcomeThrottled
	}
	switch httpStatus(err) {
	case http.StatusNotFound, http.StatusPreconditionFailed, http.StatusNotModified:
		return OutcomeOK
	}
	return OutcomeError
}

// do makes one request (call) of kind with its retries, spending b.
// maxFailures bounds b.failures. The error of the last attempt is
// returned, wrapped with what was spent when the context ended first.
func (s *Store) do(ctx context.Context, kind string, b *budget, maxFailures int, call func(context.Context) error) error {
	for {
		t, err := s.pace.Wait(ctx)
		if err != nil {
			return s.gaveUp(b, err)
		}
		err = call(ctx)
		c := classify(err)
		if ctx.Err() != nil && c != classOK && httpStatus(err) == 0 {
			// Ended by our own deadline or cancellation: not the store's
			// answer. An answer that came as the context ended is the
			// store's, and is counted below: a throttled one then fails
			// with the deadline, saying the store throttled.
			s.pace.Done(t, pacer.Failed)
			s.onRequest(kind, OutcomeError)
			return s.gaveUp(b, err)
		}
		switch {
		case c == classThrottled:
			s.pace.Done(t, pacer.Throttled)
		case httpStatus(err) != 0 || c == classOK || c == classFinal:
			s.pace.Done(t, pacer.Answered)
		default:
			s.pace.Done(t, pacer.Failed)
		}
		s.onRequest(kind, outcomeOf(c, err))
		switch c {
		case classOK, classFinal:
			return err
		case classThrottled:
			b.throttles++
			b.lastThrottle = err
			wait := s.throttleBackoff(b.throttles)
			s.log.Debug("throttled: waiting to ask again", "kind", kind, "throttled", b.throttles, "wait", wait, "err", err)
			if err := sleep(ctx, wait); err != nil {
				return s.gaveUp(b, err)
			}
			s.onRetry(RetryThrottled)
		case classFailed:
			b.failures++
			if b.failures >= maxFailures {
				if b.failures == 1 {
					return err // tried once, as asked
				}
				return fmt.Errorf("giving up after %d failed attempts: %w", b.failures, err)
			}
			s.log.Debug("request failed: trying again", "kind", kind, "failures", b.failures, "err", err)
			if err := sleep(ctx, s.failureBackoff(b.failures)); err != nil {
				return s.gaveUp(b, err)
			}
			if httpStatus(err) >= 500 {
				s.onRetry(RetryServerError)
			} else {
				s.onRetry(RetryNetwork)
			}
		}
	}
}

// gaveUp is the error of an operation whose context ended while it was
// throttled, or failing, or waiting: the deadline is what failed it, and
// the store's last throttled answer says why it came to that.
func (s *Store) gaveUp(b *budget, err error) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if b.throttles > 0 {
		return fmt.Errorf("still throttled by the store at the deadline (%d throttled answers; last: %v): %w",
			b.throttles, b.lastThrottle, err)
	}
	if r := s.pace.Rate(); !math.IsInf(r, 1) {
		return fmt.Errorf("waited for its turn past the deadline: the store throttles, and requests are paced at %.2f/s: %w", r, err)
	}
	return err
}

// failureBackoff is the wait after a request's n-th failure: half of
// defaultFailureBackoff·2^(n-1) and a random part of the other half, so
// that daemons failing together do not come back together.
func (s *Store) failureBackoff(n int) time.Duration {
	d := s.failBase << min(n-1, 10)
	return d/2 + rand.N(d/2+1)
}

// throttleBackoff is a request's wait after its n-th throttled answer:
// half of throttleCap(n) and a random part of the other half.
func (s *Store) throttleBackoff(n int) time.Duration {
	d := s.throttleCap(n)
	return d/2 + rand.N(d/2+1)
}

func (s *Store) throttleCap(n int) time.Duration {
	return min(s.throttleBase<<min(n-1, 20), s.throttleMax)
}

// ThrottledWithin is the most throttled answers one operation can get
// within d: its k-th comes only after the waits of the k-1 before it, each
// at least half its cap.
func (s *Store) ThrottledWithin(d time.Duration) int {
	k := 0
	for waited := time.Duration(0); waited < d; k++ {
		waited += s.throttleCap(k+1) / 2
	}
	return k
}

// MaxRequestsPerRange is the most requests GetRange makes for a range of
// n bytes within a deadline d: its throttled answers (ThrottledWithin),
// its failures (failed requests and bodies cut before their credit,
// MaxAttempts in all, the last of which gives up), and the GETs whose
// bodies broke after bringing their credit (freeResumes: for 8 MiB, 7 of
// 1 MiB and 4 halving the last MiB down to 64 KiB), the last GET, which
// completes it, taking the place of the failure that would have given up.
// For an 8 MiB chunk and the defaults: 33 + 5 + 11 = 49 within 2 minutes,
// 5 + 5 + 11 = 21 within 10 s.
func (s *Store) MaxRequestsPerRange(n int64, d time.Duration) int {
	return s.ThrottledWithin(d) + s.maxAttempts + freeResumes(n)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
