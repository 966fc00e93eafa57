package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"s3docs/internal/object"
	"s3docs/internal/pacer"
	"s3docs/internal/testenv"
)

// scriptServer answers every request with answer(w, r, n), n counting from
// 1, and makes a Store of it with short backoffs.
func scriptServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int), mutate ...func(*Options)) (*Store, func() int) {
	t.Helper()
	fakeCredentials(t)
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		answer(w, r, n)
	}))
	t.Cleanup(srv.Close)
	// The pacer at 50 requests a second at least: these tests are of
	// one request's retries (internal/pacer's of the pacing).
	o := Options{Bucket: "docs", EndpointURL: srv.URL, Region: "us-east-1", ForcePathStyle: true, MaxConns: 4,
		FailureBackoff: 10 * time.Millisecond, ThrottleBackoff: 10 * time.Millisecond, Pacing: pacer.Config{MinRate: 50}}
	for _, m := range mutate {
		m(&o)
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, func() int {
		mu.Lock()
		defer mu.Unlock()
		return calls
	}
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>m</Message></Error>`, code)
}

// serveRange answers a ranged GET of data from its Range header, cutting
// the body after cut bytes when cut > 0.
func serveRange(w http.ResponseWriter, r *http.Request, data []byte, cut int64) {
	var first, last int64
	fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last)
	w.Header().Set("Content-Length", fmt.Sprint(last-first+1))
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
	w.Header().Set("ETag", `"e"`)
	w.WriteHeader(http.StatusPartialContent)
	body := data[first : last+1]
	if cut > 0 && cut < int64(len(body)) {
		w.Write(body[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection closes mid-body
	}
	w.Write(body)
}

// Throttling is not a failure: a GET, a HEAD and a listing page answered
// 503 SlowDown (or 429) every time wait and ask again until their
// deadline, however long that is, and then say that the store throttled
// them; one that is throttled a while gets its answer.
func TestThrottledUntilTheDeadline(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		s, calls := scriptServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			s3Error(w, status, "SlowDown")
		})
		v := object.Version{Key: "a.pdf", ETag: `"e"`, Size: 100}
		const deadline = 1500 * time.Millisecond
		for name, op := range map[string]func(ctx context.Context) error{
			"get": func(ctx context.Context) error {
				r, err := s.GetRange(ctx, v, 0, 100)
				if err == nil {
					r.Close()
				}
				return err
			},
			"head": func(ctx context.Context) error { _, err := s.Head(ctx, "a.pdf"); return err },
			"list": func(ctx context.Context) error { _, err := s.ListPage(ctx, object.ListRequest{}); return err },
		} {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			before := calls()
			start := time.Now()
			err := op(ctx)
			took := time.Since(start)
			cancel()
			sent := calls() - before
			t.Logf("%d %s: %d requests, failed after %v: %v", status, name, sent, took.Round(time.Millisecond), err)
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "throttled") {
				t.Errorf("%d %s: %v, want the deadline, saying the store throttled", status, name, err)
			}
			if took < deadline-50*time.Millisecond {
				t.Errorf("%d %s: gave up after %v, before its deadline %v", status, name, took, deadline)
			}
			if sent < 3 || sent > s.ThrottledWithin(deadline) {
				t.Errorf("%d %s: %d requests within %v, want 3 to %d", status, name, sent, deadline, s.ThrottledWithin(deadline))
			}
		}
		if r := s.AllowedRate(); math.IsInf(r, 1) {
			t.Errorf("%d: the daemon's rate is not limited after throttled answers", status)
		}
	}
	// Throttled for a while, then answered: the read gets its bytes.
	data := testenv.RandomBytes(1, 100)
	s, calls := scriptServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 6 {
			s3Error(w, http.StatusServiceUnavailable, "SlowDown")
			return
		}
		serveRange(w, r, data, 0)
	})
	got, err := readRange(s, object.Version{Key: "a.pdf", ETag: `"e"`, Size: 100}, 0, 100)
	if err != nil || string(got) != string(data) || calls() != 7 {
		t.Fatalf("after 6 throttled answers: %d requests, %v", calls(), err)
	}
}

// A store that fails (500 to everything, or nothing listening) fails a
// request after MaxAttempts tries, in seconds, whatever its deadline; a
// refusal (403), a missing or changed object fail at once.
// A throttled answer that arrives as the deadline passes is still the
// store's answer: the operation fails with the deadline, saying the store
// throttled (TestThrottledUntilTheDeadline once got the bare 429 instead,
// in a -race -count=3 run beside two CPU burners).
func TestThrottledAnswerAtTheDeadline(t *testing.T) {
	s, _ := scriptServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		t.Error("no request should reach the server")
	})
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		throttled := &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      errors.New("api error SlowDown"),
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := s.do(ctx, KindGet, &budget{}, s.maxAttempts, func(ctx context.Context) error {
			<-ctx.Done() // the answer comes just as the deadline passes
			return throttled
		})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "throttled") {
			t.Errorf("%d at the deadline: %v, want the deadline, saying the store throttled", status, err)
		}
	}
}

func TestFailuresFailFast(t *testing.T) {
	s, calls := scriptServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		s3Error(w, http.StatusInternalServerError, "InternalError")
	}, func(o *Options) { o.FailureBackoff = 0 }) // the daemon's backoff
	v := object.Version{Key: "a.pdf", ETag: `"e"`, Size: 100}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := s.GetRange(ctx, v, 0, 100)
	took := time.Since(start)
	t.Logf("500 to everything: %d requests, failed after %v: %v", calls(), took.Round(time.Millisecond), err)
	if err == nil || calls() != defaultMaxAttempts || took > 10*time.Second {
		t.Errorf("500 to everything: %d requests in %v (%v), want %d in a few seconds", calls(), took, err, defaultMaxAttempts)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	rs, err := New(context.Background(), Options{Bucket: "docs", EndpointURL: refused, Region: "us-east-1", ForcePathStyle: true, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	start = time.Now()
	_, err = rs.Head(ctx, "a.pdf")
	took = time.Since(start)
	t.Logf("connection refused: failed after %v: %v", took.Round(time.Millisecond), err)
	if err == nil || took > 10*time.Second {
		t.Errorf("connection refused: %v after %v", err, took)
	}
	for status, want := range map[int]error{
		http.StatusForbidden:          object.ErrDenied,
		http.StatusNotFound:           object.ErrNotFound,
		http.StatusPreconditionFailed: object.ErrChanged,
	} {
		code := map[int]string{403: "AccessDenied", 404: "NoSuchKey", 412: "PreconditionFailed"}[status]
		s, calls := scriptServer(t, func(w http.ResponseWriter, r *http.Request, n int) { s3Error(w, status, code) })
		if _, err := s.GetRange(ctx, v, 0, 100); !errors.Is(err, want) || calls() != 1 {
			t.Errorf("%d: %d requests, %v", status, calls(), err)
		}
	}
}

// The worst case of requests for one range, stated by MaxRequestsPerRange:
// a store that fails every way there is (failures, bodies cut short,
// bodies cut after bringing their credit, throttling) gets at most
// that many requests within the deadline. Without throttling the bound is
// reached exactly.
func TestWorstCaseRequestsPerRange(t *testing.T) {
	const n = 8 << 20
	data := testenv.RandomBytes(2, n)
	v := object.Version{Key: "a.pdf", ETag: `"e"`, Size: n}
	// adversary: throttles for throttleFor, then cuts each
	// body after exactly its credit (creditFor) while more than that is
	// left, then fails all but the last attempt the range's budget has,
	// alternating 500s and bodies cut after one byte, then answers.
	adversary := func(throttleFor time.Duration) (func(w http.ResponseWriter, r *http.Request, n int), func() (throttled int)) {
		var mu sync.Mutex
		throttled, failed := 0, 0
		var start time.Time
		return func(w http.ResponseWriter, r *http.Request, _ int) {
				mu.Lock()
				defer mu.Unlock()
				var first, last int64
				fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last)
				if start.IsZero() {
					start = time.Now()
				}
				switch {
				case time.Since(start) < throttleFor:
					throttled++
					s3Error(w, http.StatusServiceUnavailable, "SlowDown")
				case last-first+1 > creditFor(last-first+1):
					mu.Unlock()
					defer mu.Lock()
					serveRange(w, r, data, creditFor(last-first+1))
				case failed < defaultMaxAttempts-1:
					failed++
					if failed%2 == 1 {
						s3Error(w, http.StatusInternalServerError, "InternalError")
						return
					}
					mu.Unlock()
					defer mu.Lock()
					serveRange(w, r, data, 1)
				default:
					mu.Unlock()
					defer mu.Lock()
					serveRange(w, r, data, 0)
				}
			}, func() int {
				mu.Lock()
				defer mu.Unlock()
				return throttled
			}
	}
	// No throttling: the bound exactly.
	answer, _ := adversary(0)
	s, calls := scriptServer(t, answer)
	got, err := readRange(s, v, 0, n)
	if err != nil || string(got) != string(data) {
		t.Fatalf("read: %v", err)
	}
	if bound := s.MaxRequestsPerRange(n, 0); calls() != bound {
		t.Errorf("%d requests, want the bound %d exactly", calls(), bound)
	}
	t.Logf("without throttling: %d requests (bound %d)", calls(), s.MaxRequestsPerRange(n, 0))
	// Throttled for most of the deadline, then the rest: within the
	// bound.
	const deadline = 2 * time.Second
	answer, throttled := adversary(deadline - 500*time.Millisecond)
	s, calls = scriptServer(t, answer)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	r, err := s.GetRange(ctx, v, 0, n)
	if err == nil {
		_, err = io.Copy(io.Discard, r)
		r.Close()
	}
	bound := s.MaxRequestsPerRange(n, deadline)
	t.Logf("throttled: %d requests, %d of them throttled (bound %d: %d throttled within %v): %v",
		calls(), throttled(), bound, s.ThrottledWithin(deadline), deadline, err)
	if calls() > bound || throttled() > s.ThrottledWithin(deadline) {
		t.Errorf("%d requests (%d throttled), over the bound %d (%d)", calls(), throttled(), bound, s.ThrottledWithin(deadline))
	}
	if err == nil && calls()-throttled() != s.MaxRequestsPerRange(n, 0) {
		t.Errorf("%d requests besides the throttled ones, want %d", calls()-throttled(), s.MaxRequestsPerRange(n, 0))
	}
	// The daemon's figures, as docs/semantics.md states them: 49 requests for a
	// chunk within 2 minutes, 21 within 10 s.
	d, err := New(context.Background(), Options{Bucket: "docs", EndpointURL: "http://127.0.0.1:1", MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if a, b := d.MaxRequestsPerRange(8<<20, 2*time.Minute), d.MaxRequestsPerRange(8<<20, 10*time.Second); a != 49 || b != 21 {
		t.Errorf("worst cases %d and %d, docs/semantics.md says 49 and 21", a, b)
	}
}

// Every request is counted by kind and outcome, and every retry by reason.
func TestRequestsAreObserved(t *testing.T) {
	data := testenv.RandomBytes(3, 3<<20)
	var mu sync.Mutex
	seen := map[string]int{}
	s, _ := scriptServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 1:
			s3Error(w, http.StatusServiceUnavailable, "SlowDown")
		case 2:
			s3Error(w, http.StatusInternalServerError, "InternalError")
		case 3:
			serveRange(w, r, data, 2<<20) // cut after 2 MiB: resumed at once
		case 4:
			serveRange(w, r, data, 0)
		default:
			w.WriteHeader(http.StatusNotFound) // a HEAD of a missing key
		}
	}, func(o *Options) {
		o.OnRequest = func(kind, outcome string) { mu.Lock(); seen[kind+" "+outcome]++; mu.Unlock() }
		o.OnRetry = func(reason string) { mu.Lock(); seen["retry "+reason]++; mu.Unlock() }
	})
	if _, err := readRange(s, object.Version{Key: "a.pdf", ETag: `"e"`, Size: 3 << 20}, 0, 3<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(context.Background(), "missing.pdf"); !errors.Is(err, object.ErrNotFound) {
		t.Fatal(err)
	}
	want := map[string]int{"get throttled": 1, "get error": 1, "get ok": 2, "head ok": 1,
		"retry throttled": 1, "retry server_error": 1, "retry resume": 1}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("observed %v, want %v", seen, want)
	}
}

// A network that cuts bodies midway, several times running, near the end of
// a range: each cut body brought half of what it was asked for, so the rest
// halves at no attempt and the range completes. With a flat 1 MiB credit
// the last MiB of a chunk cut in half five times running was five failures
// and the read failed (TestFlakyServerGivesExactBytes in CI).
func TestBodiesCutMidwayComplete(t *testing.T) {
	const n = 2<<20 + 1 // a chunk's tail, as in that failure
	data := testenv.RandomBytes(5, n)
	v := object.Version{Key: "a.pdf", ETag: `"e"`, Size: n}
	const cuts = 5
	var mu sync.Mutex
	served := 0
	s, calls := scriptServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		mu.Lock()
		served++
		cut := served <= cuts
		mu.Unlock()
		var first, last int64
		fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last)
		if cut {
			asked := last - first + 1
			serveRange(w, r, data, asked-asked/2)
			return
		}
		serveRange(w, r, data, 0)
	}, func(o *Options) { o.MaxAttempts = 3 })
	got, err := readRange(s, v, 0, n)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read with bodies cut midway: %v", err)
	}
	if c := calls(); c != cuts+1 {
		t.Errorf("%d requests, want %d: one per cut and the last", c, cuts+1)
	}
	// Cut after less than half (and under 1 MiB) each time, a body makes
	// no progress that counts: the range still gives up.
	s, _ = scriptServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		var first, last int64
		fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last)
		serveRange(w, r, data, (last-first+1)/3)
	}, func(o *Options) { o.MaxAttempts = 3 })
	if _, err := readRange(s, v, 0, n); err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("bodies cut after a third each time: want giving up, got %v", err)
	}
}
