package chunkcache

import (
	"context"
	"errors"
	"time"
)

// The retry policy of a read, and the one deadline above it.
//
// A read(2) of an uncached range waits for the download of the chunk (or
// piece) that holds it: one ranged GET, which the store (s3store/retry.go)
// tries again for as long as the deadline allows when it is throttled,
// and up to its budget of failures (5, shared by the GET and its resumes of
// a body cut short) when it fails. That is the only layer of retries
// against the store: a download that failed is not tried again here (it
// was, three times, when each layer retried on its own: up to 75 requests
// for one chunk). Two local causes remain: a reader that finds its cache
// entry evicted or corrupt between the download and its open opens it
// again (reopenAttempts, no request), and a download whose cache directory
// was deleted and made again under it is fetched once more
// (dirLostAttempts).
//
// So one chunk costs at most s3store's MaxRequestsPerRange(chunk size,
// ReadTimeout) requests: with the defaults (8 MiB, 2 minutes) 49: 33
// throttled answers (each request waits longer after each, up to 4 s), 5
// failures, and 11 resumes of bodies that broke after bringing their
// credit (7 of 1 MiB, then 4 halving the last MiB down to 64 KiB).
//
// What bounds them in time is Options.ReadTimeout, one deadline for the
// whole download (the store's requests, waits and resumes run under its
// context). The reader itself gives up readGrace after that, which only
// matters when one read waits for two downloads in turn. A download that
// failed is remembered for failedRangeMemory: the kernel asks again at once
// for a range whose readahead failed (a 4 KiB read of the same page), and
// must get the error at once rather than wait out another deadline. After
// that, a read tries the object store again. A background download's
// failure (readahead that no reader joined) is not remembered: no reader
// saw it, so no kernel asks again, and the first reader to want that
// range (perhaps just as the store is back) tries the store itself.
//
// So a read(2) returns within ReadTimeout + readGrace whatever the server
// does (throttling it all along, or accepting connections and never
// answering), and a server that refuses connections or answers errors
// fails it after the store's backoffs, about 4 seconds.
const (
	// dirLostAttempts is how many times a download is tried when the
	// cache directory was lost under it and made again.
	dirLostAttempts = 2
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
	now := d.now()
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

// readDeadline gives one read its deadline: ReadTimeout for the downloads
// it waits for, and readGrace for itself.
func (c *Cache) readDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opt.ReadTimeout+readGrace)
}
