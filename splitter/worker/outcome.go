package worker

import (
	"errors"
	"fmt"
)

// Outcome says how a call to the pool failed, and whose fault that was.
// The pool works it out once, where it knows: at a worker's end (classify)
// or as a worker answers (serve). Callers switch on it, not on error types.
type Outcome uint8

const (
	// None is no failure.
	None Outcome = iota
	// Other is an error that is not a worker's: the caller's context
	// ended, or the call was malformed.
	Other

	// Not the document's fault: a later call may succeed.

	Closed       // the pool is closed
	NotStarted   // the worker did not start, or died before it was ready
	SourceFailed // reading the document's bytes failed, or took the timeout
	WriteFailed  // writing the part out failed (a full disk)

	// The document's fault, as far as the pool can tell: it was the
	// document being parsed.

	Refused       // the worker reported a failure of the document (Kind)
	Panicked      // the worker reported a panic
	OutOfMemory   // killed past its memory limit
	TimedOut      // killed at the timeout
	BrokeProtocol // killed for breaking the protocol
	Crashed       // died without saying why: a signal from outside, a runtime crash
)

var outcomeNames = [...]string{"none", "other", "closed", "not started", "source failed", "write failed",
	"refused", "panicked", "out of memory", "timed out", "broke protocol", "crashed"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome %d", o)
}

// Error is a failed call to the pool: what happened (Err, which also wraps
// the sentinel errors above and the worker's DocError), and its Outcome.
type Error struct {
	Outcome Outcome
	// Kind is the worker's name for a failure it reported (Refused,
	// Panicked): ServeOptions.Classify's, or KindPanic.
	Kind string
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// OutcomeOf returns the outcome that err carries and the kind of failure
// the worker reported, if any: None for nil, Other for an error that
// carries no outcome.
func OutcomeOf(err error) (Outcome, string) {
	var e *Error
	switch {
	case err == nil:
		return None, ""
	case errors.As(err, &e):
		return e.Outcome, e.Kind
	}
	return Other, ""
}

// classify is how a worker's session ended, for whoever waited on it: end
// is what the session saw, e how the process went. None means that nobody
// waits for an answer: the worker went when asked, idle or evicted.
func classify(end ending, e exit) Outcome {
	switch {
	case e.killed == killedClosed:
		return Closed
	case end.starting:
		return NotStarted
	case e.killed == killedSourceTimeout, end.source != nil:
		// A worker waiting for the source when time ran out was not slow
		// itself; whatever it made of a failed read is not its fault.
		return SourceFailed
	case e.killed == killedMemory:
		return OutOfMemory
	case e.killed == killedTimeout:
		return TimedOut
	case e.killed == killedProtocol:
		return BrokeProtocol
	case e.asked && e.waitErr == nil:
		// It went when asked, having said why, or with someone still
		// waiting for an answer, or with nobody waiting.
		switch {
		case end.said != nil:
			return saidOutcome(end.said)
		case end.opening || end.call != nil:
			return Crashed
		}
		return None
	case saidOutcome(end.said) == Panicked:
		return Panicked
	}
	return Crashed
}

// saidOutcome is the outcome of what a worker reported.
func saidOutcome(said error) Outcome {
	if saidKind(said) == KindPanic {
		return Panicked
	}
	return Refused
}

// saidKind is the kind of failure a worker reported, "" if none.
func saidKind(said error) string {
	var de *DocError
	if errors.As(said, &de) {
		return de.Kind
	}
	return ""
}
