package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"s3docs/internal/object"
)

// ErrTruncated is a body that ended before the bytes it promised.
var ErrTruncated = errors.New("response body cut short")

// ErrStalled is a body that sent nothing for the stall timeout.
var ErrStalled = errors.New("response body stalled")

// GetRange returns bytes [off, off+n) of version v. Every request carries
// If-Match (or, for objects without an ETag, If-Unmodified-Since), so bytes of
// two versions never mix. A body that breaks or ends early is resumed with a
// new ranged GET for the rest, within the range's one budget of failures
// (retry.go); the reader yields exactly n bytes or an error. ctx bounds
// every request and wait of the range, and its priority (pacer.WithPriority)
// is theirs.
func (s *Store) GetRange(ctx context.Context, v object.Version, off, n int64) (io.ReadCloser, error) {
	if off < 0 || n <= 0 || off+n > v.Size {
		return nil, fmt.Errorf("get %s: range [%d,+%d) outside object of %d bytes", v.Key, off, n, v.Size)
	}
	r := &rangeReader{ctx: ctx, s: s, v: v, next: off, end: off + n}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

type rangeReader struct {
	ctx  context.Context
	s    *Store
	v    object.Version
	next int64 // next byte this reader will return
	end  int64 // exclusive
	body io.ReadCloser
	// spent is the range's one budget, for its first GET and its
	// resumes alike.
	spent budget
	// openedAt is where the current body started: one that delivers its
	// credit (creditFor) before it breaks costs no attempt.
	openedAt int64
	lastFail error
	// watchdog closes a body that sends nothing for the stall timeout, which
	// makes the blocked Read fail so that the range can be resumed.
	watchdog *time.Timer
	stalled  atomic.Bool
}

func (r *rangeReader) open() error {
	in := &s3.GetObjectInput{
		Bucket: aws.String(r.s.bucket),
		Key:    aws.String(r.s.prefix + r.v.Key),
		Range:  aws.String("bytes=" + strconv.FormatInt(r.next, 10) + "-" + strconv.FormatInt(r.end-1, 10)),
	}
	if r.v.ETag != "" {
		in.IfMatch = aws.String(r.v.ETag)
	} else {
		// HTTP dates have whole seconds while stores compare their own finer
		// mtime, so "unmodified since the listed second" fails for an
		// untouched file; the next second is the tightest bound that works.
		// checkAnswer then compares Last-Modified to the second.
		in.IfUnmodifiedSince = aws.Time(r.v.ModTime.Truncate(time.Second).Add(time.Second))
	}
	var out *s3.GetObjectOutput
	err := r.s.do(r.ctx, KindGet, &r.spent, r.s.maxAttempts, func(ctx context.Context) error {
		var err error
		out, err = r.s.client.GetObject(ctx, in)
		return err
	})
	if err != nil {
		return r.s.wrap(err, "get "+r.v.Key)
	}
	if err := r.checkAnswer(out); err != nil {
		out.Body.Close()
		return err
	}
	r.body, r.openedAt = out.Body, r.next
	body := out.Body
	r.stalled.Store(false)
	r.watchdog = time.AfterFunc(r.s.stall, func() {
		r.stalled.Store(true)
		body.Close()
	})
	return nil
}

// checkAnswer guards against servers that ignore the conditional header or
// the range: both would hand us bytes we must not cache.
func (r *rangeReader) checkAnswer(out *s3.GetObjectOutput) error {
	// A body streamed without a Content-Length (chunked, HTTP/2) is taken
	// if its Content-Range is right: Read takes exactly the range's length
	// and resumes a body that ends early.
	switch want := r.end - r.next; {
	case out.ContentLength != nil && *out.ContentLength != want:
		return fmt.Errorf("get %s: server sent %d bytes for a range of %d", r.v.Key, *out.ContentLength, want)
	case out.ContentLength == nil && out.ContentRange == nil:
		return fmt.Errorf("get %s: server answered bytes %d-%d with neither Content-Length nor Content-Range", r.v.Key, r.next, r.end-1)
	}
	if r.v.ETag != "" && out.ETag != nil && quoteETag(*out.ETag) != r.v.ETag {
		return fmt.Errorf("get %s: etag %s, opened %s: %w", r.v.Key, *out.ETag, r.v.ETag, object.ErrChanged)
	}
	// The length alone does not prove the bytes are the range asked for: a
	// cache in front of the store can answer with another range of the
	// same length, or ignore the range and cut the whole object short.
	if cr := aws.ToString(out.ContentRange); cr != "" {
		first, last, total, ok := parseContentRange(cr)
		if !ok {
			return fmt.Errorf("get %s: unreadable Content-Range %q", r.v.Key, cr)
		}
		if total >= 0 && total != r.v.Size {
			return fmt.Errorf("get %s: object is %d bytes, opened at %d: %w", r.v.Key, total, r.v.Size, object.ErrChanged)
		}
		if first != r.next || last != r.end-1 {
			return fmt.Errorf("get %s: server sent bytes %d-%d for bytes %d-%d", r.v.Key, first, last, r.next, r.end-1)
		}
	} else if r.next != 0 || r.end != r.v.Size {
		// Only an answer with the whole object may come without a
		// Content-Range (a 200 to a range that covers it all).
		return fmt.Errorf("get %s: server answered bytes %d-%d without a Content-Range", r.v.Key, r.next, r.end-1)
	}
	if r.v.ETag == "" && out.LastModified != nil && !out.LastModified.Truncate(time.Second).Equal(r.v.ModTime.Truncate(time.Second)) {
		return fmt.Errorf("get %s: modified %s, opened at %s: %w", r.v.Key, out.LastModified.UTC(), r.v.ModTime.UTC(), object.ErrChanged)
	}
	return nil
}

func (r *rangeReader) Read(p []byte) (int, error) {
	for {
		if r.next >= r.end {
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.resume(); err != nil {
				return 0, err
			}
		}
		if max := r.end - r.next; int64(len(p)) > max {
			p = p[:max]
		}
		r.watchdog.Reset(r.s.stall)
		n, err := r.body.Read(p)
		r.watchdog.Stop()
		r.next += int64(n)
		if err == nil || (err == io.EOF && r.next == r.end) {
			return n, nil
		}
		if err == io.EOF {
			err = ErrTruncated
		}
		if r.stalled.Load() {
			err = fmt.Errorf("%w for %v", ErrStalled, r.s.stall)
		}
		r.closeBody()
		r.lastFail = err
		if n > 0 {
			return n, nil
		}
	}
}

// progressCredit is how many bytes a body must deliver before it breaks
// for its resume to cost no attempt. A connection cut every few MiB (a
// proxy's or middlebox's limit) still completes the range, in at most one
// GET per progressCredit bytes more than the attempt limit, while a body
// cut after a few bytes each time gives up after the attempt limit.
const progressCredit = 1 << 20

// minProgressCredit is the least a body must bring for its resume to cost
// no attempt, however short its range.
const minProgressCredit = 64 << 10

// creditFor is what a body asked for asked bytes must bring before it
// breaks for its resume to cost no attempt: progressCredit, or half of
// what it was asked for when that is less, down to minProgressCredit. The
// half: a network that cuts bodies midway cut the last MiB of a range in
// half again and again, each cut a failure, and a read failed though every
// body brought bytes (TestFlakyServerGivesExactBytes, 1 run in ~10); now
// the rest halves at no attempt, at most 4 times (1 MiB to 64 KiB).
func creditFor(asked int64) int64 {
	return min(progressCredit, max(minProgressCredit, asked-asked/2))
}

// freeResumes is the most resumes a range of n bytes makes at no attempt:
// each body brings exactly its credit and breaks.
func freeResumes(n int64) int {
	k := 0
	for rest := n; creditFor(rest) < rest; k++ {
		rest -= creditFor(rest)
	}
	return k
}

// resume asks for the rest of the range after a broken body. A body that
// brought its credit (creditFor) before it broke made its way: it costs
// nothing, and the rest is asked for at once. Any other is a failure of
// the range's budget, and waits its backoff.
func (r *rangeReader) resume() error {
	if r.next-r.openedAt < creditFor(r.end-r.openedAt) {
		r.spent.failures++
		if r.spent.failures >= r.s.maxAttempts {
			return fmt.Errorf("get %s at byte %d: giving up after %d failed attempts: %w", r.v.Key, r.next, r.spent.failures, r.lastFail)
		}
		if err := sleep(r.ctx, r.s.failureBackoff(r.spent.failures)); err != nil {
			return r.s.gaveUp(&r.spent, err)
		}
	}
	r.s.onRetry(RetryResume)
	// Debug: a resume that works is routine on a flaky network, and one
	// that fails ends in the read's error, which is logged once.
	r.s.log.Debug("resuming cut-short GET", "key", r.v.Key, "at", r.next, "failures", r.spent.failures, "err", r.lastFail)
	return r.open()
}

func (r *rangeReader) closeBody() error {
	if r.body == nil {
		return nil
	}
	r.watchdog.Stop()
	err := r.body.Close()
	r.body = nil
	return err
}

func (r *rangeReader) Close() error { return r.closeBody() }

// parseContentRange reads "bytes FIRST-LAST/TOTAL"; total is -1 for "*".
func parseContentRange(cr string) (first, last, total int64, ok bool) {
	spec, found := strings.CutPrefix(cr, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, size, found := strings.Cut(spec, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(a, 10, 64)
	last, err2 = strconv.ParseInt(b, 10, 64)
	total = -1
	if size != "*" {
		total, err3 = strconv.ParseInt(size, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first {
		return 0, 0, 0, false
	}
	return first, last, total, true
}
