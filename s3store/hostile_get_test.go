package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

// fakeCredentials gives the SDK credentials for a server that checks none.
func fakeCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_PROFILE", "")
}

// storeAt is a Store of bucket docs at a test server's url.
func storeAt(t *testing.T, url string) *Store {
	t.Helper()
	s, err := New(context.Background(), Options{Bucket: "docs", EndpointURL: url, Region: "us-east-1", ForcePathStyle: true, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lyingGetServer answers every GET of an object with answer(w, first, last),
// where bytes=first-last is the range the client asked for.
func lyingGetServer(t *testing.T, answer func(w http.ResponseWriter, first, last int64)) *Store {
	t.Helper()
	fakeCredentials(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var first, last int64
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil {
			http.Error(w, "no range", http.StatusBadRequest)
			return
		}
		answer(w, first, last)
	}))
	t.Cleanup(srv.Close)
	s, err := New(context.Background(), Options{Bucket: "docs", EndpointURL: srv.URL, Region: "us-east-1",
		ForcePathStyle: true, MaxConns: 4, MaxAttempts: 2, StallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGetRangeRefusesOtherBytes: a server (or a cache in front of it) that
// answers a ranged GET with as many bytes as asked for, but of another
// range, must not have them taken for the range asked for. The length
// matches, so only the Content-Range (or its absence on a 200 answer to a
// range that is not the whole object) gives it away.
func TestGetRangeRefusesOtherBytes(t *testing.T) {
	data := testenv.RandomBytes(11, 1000)
	v := object.Version{Key: "a.pdf", ETag: `"e"`, Size: int64(len(data)), ModTime: time.Unix(1700000000, 0)}
	cases := map[string]func(w http.ResponseWriter, first, last int64){
		// 206 with the first bytes of the object whatever was asked.
		"206 of another range": func(w http.ResponseWriter, first, last int64) {
			n := last - first + 1
			w.Header().Set("ETag", v.ETag)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", n-1, len(data)))
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[:n])
		},
		// 200 without Content-Range: the range was ignored and the body
		// cut to the length asked for.
		"200 cut to the length": func(w http.ResponseWriter, first, last int64) {
			n := last - first + 1
			w.Header().Set("ETag", v.ETag)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:n])
		},
		// 206 whose Content-Range is not even parseable.
		"206 with a garbled Content-Range": func(w http.ResponseWriter, first, last int64) {
			n := last - first + 1
			w.Header().Set("ETag", v.ETag)
			w.Header().Set("Content-Range", "bytes */garbage")
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[:n])
		},
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			s := lyingGetServer(t, answer)
			got, err := readRange(s, v, 500, 100)
			if err == nil {
				t.Fatalf("read of [500,600) gave no error; right bytes: %v", bytes.Equal(got, data[500:600]))
			}
		})
	}
}

// TestGetRangeTakesHonestAnswers: what S3 sends passes, and so does a 200
// with the whole object when the whole object was asked for.
func TestGetRangeTakesHonestAnswers(t *testing.T) {
	data := testenv.RandomBytes(12, 1000)
	v := object.Version{Key: "a.pdf", ETag: `"e"`, Size: int64(len(data)), ModTime: time.Unix(1700000000, 0)}
	honest := func(status int) func(w http.ResponseWriter, first, last int64) {
		return func(w http.ResponseWriter, first, last int64) {
			w.Header().Set("ETag", v.ETag)
			if status == http.StatusPartialContent {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
			}
			w.Header().Set("Content-Length", strconv.FormatInt(last-first+1, 10))
			w.WriteHeader(status)
			w.Write(data[first : last+1])
		}
	}
	s := lyingGetServer(t, honest(http.StatusPartialContent))
	if got, err := readRange(s, v, 500, 100); err != nil || !bytes.Equal(got, data[500:600]) {
		t.Fatalf("206: %v", err)
	}
	s = lyingGetServer(t, honest(http.StatusOK))
	if got, err := readRange(s, v, 0, v.Size); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("200 of the whole object: %v", err)
	}
}

// TestCheckRefusesAWebServer: an endpoint that is a web server, not S3 (a
// console, a load balancer's page), answers the check's listing with 200
// and HTML, which the SDK decodes as an empty listing. The mount would
// then serve an empty tree, and every name looked up as the page itself.
func TestCheckRefusesAWebServer(t *testing.T) {
	fakeCredentials(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>Welcome</body></html>")
	}))
	t.Cleanup(srv.Close)
	s := storeAt(t, srv.URL)
	_, err := s.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), srv.URL) || !strings.Contains(err.Error(), "S3") {
		t.Fatalf("check of a web server: %v, want an error naming the endpoint", err)
	}
	// A real listing, even of an empty bucket, passes.
	srv2, _ := hostileServer(t, func(int64) string { return listPage(nil, false, "") })
	s = storeAt(t, srv2.URL)
	if _, err := s.Check(context.Background()); err != nil {
		t.Fatalf("check of an empty bucket: %v", err)
	}
}

// TestGetRangeWithoutContentLength: a server or proxy that streams the
// answer without a Content-Length (chunked, or HTTP/2 without the header)
// is served: the Content-Range says what the bytes are, and the reader
// takes exactly the length of the range, resuming a body that ends early.
func TestGetRangeWithoutContentLength(t *testing.T) {
	data := testenv.RandomBytes(13, 1000)
	v := object.Version{Key: "a.pdf", ETag: `"e"`, Size: int64(len(data)), ModTime: time.Unix(1700000000, 0)}
	var answered atomic.Bool
	s := lyingGetServer(t, func(w http.ResponseWriter, first, last int64) {
		w.Header().Set("ETag", v.ETag)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.(http.Flusher).Flush() // headers out before the body: chunked, no Content-Length
		body := data[first : last+1]
		if !answered.Swap(true) {
			body = body[:len(body)/2] // the first answer ends early
		}
		w.Write(body)
	})
	got, err := readRange(s, v, 100, 800)
	if err != nil || !bytes.Equal(got, data[100:900]) {
		t.Fatalf("read without Content-Length: %v (right bytes: %v)", err, bytes.Equal(got, data[100:900]))
	}

	// Neither header: nothing says how long the body is nor what it holds
	// (here a longer object than the one opened).
	s = lyingGetServer(t, func(w http.ResponseWriter, first, last int64) {
		w.Header().Set("ETag", v.ETag)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		w.Write(append(testenv.RandomBytes(14, 10), data...))
	})
	if _, err := readRange(s, v, 0, v.Size); err == nil {
		t.Fatal("a body without Content-Length or Content-Range was taken")
	}
}

// TestHeadWithoutContentLength: a HEAD answer without the object's size
// must not make the object an empty file (every reader would get nothing,
// with no error).
func TestHeadWithoutContentLength(t *testing.T) {
	fakeCredentials(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("Last-Modified", time.Unix(1700000000, 0).UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	s := storeAt(t, srv.URL)
	if v, err := s.Head(context.Background(), "a.pdf"); err == nil {
		t.Fatalf("head without Content-Length: %+v, want an error", v)
	}
}

// TestErrorBodyIsBounded: the SDK reads an error answer's body whole into
// memory before it looks at it. A server that answers 500 with an endless
// body must not make the daemon read (and hold) it all: the client stops
// reading past a bound.
func TestErrorBodyIsBounded(t *testing.T) {
	fakeCredentials(t)
	const most = 64 << 20 // what the server sends at most, if read
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInternalServerError)
		if r.Method == http.MethodHead {
			return // the server eats a HEAD's body
		}
		junk := bytes.Repeat([]byte("<Error><Code>InternalError</Code></Error>"), 25000) // 1 MB
		for sent.Load() < most {
			n, err := w.Write(junk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	s, err := New(context.Background(), Options{Bucket: "docs", EndpointURL: srv.URL, Region: "us-east-1",
		ForcePathStyle: true, MaxConns: 4, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	v := object.Version{Key: "a.pdf", ETag: `"e"`, Size: 1000}
	if _, err := readRange(s, v, 0, v.Size); err == nil {
		t.Fatal("a 500 answer gave no error")
	}
	if _, err := s.Head(context.Background(), "a.pdf"); err == nil {
		t.Fatal("a 500 answer to HEAD gave no error")
	}
	srv.CloseClientConnections()
	if n := sent.Load(); n >= most {
		t.Fatalf("the client read %d MB of an error body", n>>20)
	}
}

// TestSDKWritesNothingToStderr: the SDK logs to stderr by default (a
// warning for every body it could not drain, which the bounds on bodies
// cause); the daemon's log is structured and may be a file.
func TestSDKWritesNothingToStderr(t *testing.T) {
	fakeCredentials(t)
	srv, _ := hostileServer(t, func(int64) string {
		return strings.Replace(listPage(nil, false, ""), "</ListBucketResult>", strings.Repeat(" ", 9<<20)+"</ListBucketResult>", 1)
	})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	s, err := New(context.Background(), Options{Bucket: "docs", EndpointURL: srv.URL, Region: "us-east-1", ForcePathStyle: true, MaxConns: 4})
	if err == nil {
		_, err = s.ListPage(context.Background(), object.ListRequest{})
	}
	os.Stderr = stderr
	w.Close()
	out, _ := io.ReadAll(r)
	if !errors.Is(err, object.ErrBadListing) {
		t.Fatalf("a page body over the bound: %v", err)
	}
	if len(out) > 0 {
		t.Fatalf("the SDK wrote to stderr: %s", out)
	}
}

// TestUnquotedETags: some stores (NetApp ONTAP, some Ceph versions) list
// ETags without the quotes their HTTP headers carry. The listing's version
// and the HEAD's must be the same version, and a GET of the listed version
// must not be taken for a change.
func TestUnquotedETags(t *testing.T) {
	fakeCredentials(t)
	data := testenv.RandomBytes(15, 1000)
	const etag = `"0123abcd"`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("list-type") {
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>docs</Name><IsTruncated>false</IsTruncated>`+
				`<Contents><Key>a.pdf</Key><Size>%d</Size><ETag>%s</ETag><LastModified>2026-01-02T03:04:05.000Z</LastModified></Contents></ListBucketResult>`,
				len(data), strings.Trim(etag, `"`))
			return
		}
		if m := r.Header.Get("If-Match"); m != "" && m != etag {
			http.Error(w, "precondition", http.StatusPreconditionFailed)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Last-Modified", "Fri, 02 Jan 2026 03:04:05 GMT")
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			return
		}
		var first, last int
		fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
		w.Header().Set("Content-Length", strconv.Itoa(last-first+1))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[first : last+1])
	}))
	t.Cleanup(srv.Close)
	s := storeAt(t, srv.URL)
	p, err := s.ListPage(context.Background(), object.ListRequest{})
	if err != nil || len(p.Files) != 1 {
		t.Fatalf("list: %+v, %v", p, err)
	}
	listed := p.Files[0]
	headed, err := s.Head(context.Background(), "a.pdf")
	if err != nil {
		t.Fatal(err)
	}
	if listed.Identity() != headed.Identity() {
		t.Fatalf("listed as %s, headed as %s: one version seen as two", listed.Identity(), headed.Identity())
	}
	if got, err := readRange(s, listed, 100, 200); err != nil || !bytes.Equal(got, data[100:300]) {
		t.Fatalf("read of the listed version: %v", err)
	}
}

// TestCheckNamesAWrongRegion: a request signed for another region is
// refused by S3 (and versitygw) with AuthorizationHeaderMalformed, whose
// message names the region expected; the operator gets that, in one
// sentence, not the SDK's layers of request ids.
func TestCheckNamesAWrongRegion(t *testing.T) {
	fakeCredentials(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AuthorizationHeaderMalformed</Code>`+
			`<Message>The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-1'</Message>`+
			`<RequestId>R1</RequestId><HostId>H1</HostId></Error>`)
	}))
	t.Cleanup(srv.Close)
	s, err := New(context.Background(), Options{Bucket: "docs", EndpointURL: srv.URL, Region: "eu-west-1", ForcePathStyle: true, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "wrong region") || !strings.Contains(err.Error(), "expecting 'us-east-1'") ||
		strings.Contains(err.Error(), "RequestID") {
		t.Fatalf("check with a wrong region: %v", err)
	}
}

// TestHugeHeadersRefused: Go's client takes up to 10 MB of response
// headers by default, held while they are parsed; a hostile server could
// make each of the daemon's requests in flight (GETs, listings, lookups)
// cost that. S3's headers are a few KB (user metadata is at most 2 KB).
func TestHugeHeadersRefused(t *testing.T) {
	fakeCredentials(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 8 {
			w.Header().Set(fmt.Sprintf("X-Amz-Meta-Pad%d", i), strings.Repeat("p", 1<<20))
		}
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("Content-Length", "10")
	}))
	t.Cleanup(srv.Close)
	s, err := New(context.Background(), Options{Bucket: "docs", EndpointURL: srv.URL, Region: "us-east-1",
		ForcePathStyle: true, MaxConns: 4, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Head(context.Background(), "a.pdf"); err == nil {
		t.Fatalf("a HEAD answered with 8 MB of headers was taken: %+v", v.ETag)
	}
}

// TestCheckBodyIsBounded: the startup check's listing is bounded like every
// other listing page: a server that answers it with an endless listing must
// not have it read (and decoded into memory) for the check's whole deadline.
func TestCheckBodyIsBounded(t *testing.T) {
	fakeCredentials(t)
	const most = 64 << 20
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>docs</Name><IsTruncated>false</IsTruncated>`)
		entries := strings.Repeat("<Contents><Key>k</Key><Size>1</Size></Contents>", 20000) // about 1 MB
		for sent.Load() < most {
			n, err := io.WriteString(w, entries)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
		fmt.Fprint(w, "</ListBucketResult>")
	}))
	t.Cleanup(srv.Close)
	s := storeAt(t, srv.URL)
	if _, err := s.Check(context.Background()); err == nil {
		t.Fatal("an endless listing passed the check")
	}
	srv.CloseClientConnections()
	if n := sent.Load(); n >= most {
		t.Fatalf("the check read %d MB of its listing", n>>20)
	}
}

// TestHugeETagRefused: a HEAD's ETag is kept for as long as the file is
// known; one of 100 KB per file, from a hostile server, would make the
// daemon's memory grow with it.
func TestHugeETagRefused(t *testing.T) {
	fakeCredentials(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"`+strings.Repeat("e", 100<<10)+`"`)
		w.Header().Set("Content-Length", "10")
	}))
	t.Cleanup(srv.Close)
	s := storeAt(t, srv.URL)
	if v, err := s.Head(context.Background(), "a.pdf"); err == nil {
		t.Fatalf("a HEAD with an ETag of %d bytes was taken", len(v.ETag))
	}
}
