package object

import "errors"

// These are the conditions the file system turns into errno values. Stores and
// caches wrap them with %w so that the cause and the key stay in the message.
var (
	// ErrNotFound: no such object or bucket.
	ErrNotFound = errors.New("not found")
	// ErrChanged: the object is no longer the version that was opened
	// (If-Match / If-Unmodified-Since failed, or the answer disagrees with it).
	ErrChanged = errors.New("object changed since it was opened")
	// ErrDenied: the store refused our credentials or access (403). Not
	// worth retrying; reads fail with EIO like other store failures.
	ErrDenied = errors.New("access denied by the store")
	// ErrBadListing: the server's listing cannot be trusted to end (a
	// repeated or missing continuation token, a page that does not move
	// on, more pages than any directory has). Not worth retrying.
	ErrBadListing = errors.New("the server's listing is broken")
)

// LoggedError is a failure that its source has logged once already (a
// broken PDF, remembered by the splitter): the file system answers it on
// every lookup, but logs it only at debug level, so that one broken
// document makes one log line however often it is asked for.
type LoggedError struct{ Err error }

func (e *LoggedError) Error() string { return e.Err.Error() }
func (e *LoggedError) Unwrap() error { return e.Err }
