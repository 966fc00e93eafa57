package chunkcache

import (
	"context"
	"errors"
	"time"

	"s3docs/internal/object"
)

// The retry policy of a read, layer by layer, and the one deadline above it.
//
// A read(2) of an uncached range waits for the download of the chunk (or
// piece) that holds it. Four layers can try again, each for its own reason:
//
//  1. The S3 client (s3store: sdkMaxAttempts attempts per request, backoff
//     up to sdkMaxBackoff; a request with no response headers after
//     responseHeaderTimeout, or no connection after dialTimeout, is an
//     attempt that failed) rides out a refused connection or a 5xx burst.
//  2. A body cut short or silent for the stall timeout is resumed with a GET
//     for the rest of the range (s3store: up to sdkMaxAttempts GETs per
//     range that fail, a body that brought 1 MiB before it broke not
//     counted), so that 7 MiB already received are not fetched again.
//  3. The download of a chunk is tried fetchAttempts times (backoff
//     fetchBackoff, 2·fetchBackoff), for failures longer than the client's
//     own retries. Changed or deleted objects and refused credentials are
//     never retried.
//  4. A reader that finds its cache entry evicted or corrupt between the
//     download and its open opens it again, reopenAttempts times.
//
// None of these counts in time: what bounds them is Options.ReadTimeout, one
// deadline for the whole download, every layer's retries included (the
// client and the resumes run under its context). The reader itself gives up
// readGrace after that, which only matters when one read waits for two
// downloads in turn. A download that failed is remembered for
// failedRangeMemory: the kernel asks again at once for a range whose
// readahead failed (a 4 KiB read of the same page), and must get the error
// at once rather than wait out another deadline. After that, a read tries
// the object store again.
//
// So a read(2) returns within ReadTimeout + readGrace whatever the server
// does (accepting connections and never answering included), and a server
// that refuses connections or answers errors fails it after the client's
// and the download's backoffs, about 5 seconds.
const (
	// fetchAttempts is how many times a chunk download is tried.
	fetchAttempts = 3
	// fetchBackoff is the wait before the second attempt; the third waits
	// twice as long.
	fetchBackoff = 250 * time.Millisecond
	// reopenAttempts bounds how often a reader opens an entry again that
	// was evicted or found corrupt under it.
	reopenAttempts = 4
	// readGrace is how much longer than ReadTimeout a reader waits, so
	// that it sees the download's own error rather than its own timeout.
	readGrace = time.Second
	// failedRangeMemory is how long a failed download fails reads of its
	// chunk at once. The kernel asks again within milliseconds of the
	// failure (its retry of the failed readahead, the other requests of
	// the same read(2)), so a second covers it with room for a loaded
	// machine; and a reader that tries again a little later (a user, a
	// worker's retry once the server is back) reaches the object store.
	failedRangeMemory = time.Second
	// maxFailedRanges bounds the memory of failed downloads.
	maxFailedRanges = 4096
)

// failure is a download that failed, remembered until until.
type failure struct {
	err   error
	until time.Time
}

// recentFailureLocked is the error of a download of chunk key that failed
// less than failedRangeMemory ago, or nil. Called with d.mu held.
func (d *downloads) recentFailureLocked(key string, now time.Time) error {
	f, ok := d.failed[key]
	if !ok {
		return nil
	}
	if now.After(f.until) {
		delete(d.failed, key)
		return nil
	}
	return f.err
}

// noteFailure remembers (or, for err nil, forgets) the outcome of a
// download of chunk key. A download ended by Close (ctx ended) or by a full
// disk says nothing about the range: it is not remembered.
func (d *downloads) noteFailure(ctx context.Context, key string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil || errors.Is(err, errClosed) || uncachedFailure(err) || ctx.Err() != nil {
		delete(d.failed, key)
		return
	}
	now := time.Now()
	if len(d.failed) >= maxFailedRanges {
		for k, f := range d.failed {
			if now.After(f.until) {
				delete(d.failed, k)
			}
		}
		if len(d.failed) >= maxFailedRanges {
			clear(d.failed)
		}
	}
	d.failed[key] = failure{err: err, until: now.Add(failedRangeMemory)}
}

// transient: worth another attempt. A changed or deleted object is not, nor
// a refusal of our credentials.
func transient(err error) bool {
	return !errors.Is(err, object.ErrChanged) && !errors.Is(err, object.ErrNotFound) &&
		!errors.Is(err, object.ErrDenied)
}

// readDeadline gives one read its deadline: ReadTimeout for the downloads
// it waits for, and readGrace for itself.
func (c *Cache) readDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opt.ReadTimeout+readGrace)
}
