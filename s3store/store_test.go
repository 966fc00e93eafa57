package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

const bucket = "docs"

type world struct {
	s3    *testenv.S3
	proxy *testenv.Proxy
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{s3: testenv.StartS3(t)}
	w.s3.CreateBucket(t, bucket)
	w.proxy = testenv.NewProxy(t, w.s3.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", w.s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", w.s3.SecretKey)
	t.Setenv("AWS_PROFILE", "")
	return w
}

func (w *world) store(t *testing.T, mutate ...func(*Options)) *Store {
	t.Helper()
	o := Options{Bucket: bucket, EndpointURL: w.proxy.URL(), Region: "us-east-1", ForcePathStyle: true, MaxConns: 16,
		MaxAttempts: 3, StallTimeout: 500 * time.Millisecond}
	for _, m := range mutate {
		m(&o)
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func head(t *testing.T, s *Store, key string) object.Version {
	t.Helper()
	v, err := s.Head(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readRange(s *Store, v object.Version, off, n int64) ([]byte, error) {
	r, err := s.GetRange(context.Background(), v, off, n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestGetRangeIsRangedAndConditional(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(1, 3<<20)
	w.s3.Put(t, bucket, "a.pdf", data)
	s := w.store(t)
	v := head(t, s, "a.pdf")
	if v.ETag == "" || v.Size != int64(len(data)) {
		t.Fatalf("head: %+v", v)
	}
	w.proxy.Reset()
	got, err := readRange(s, v, 1000, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[1000:1000+1<<20]) {
		t.Fatal("bytes differ")
	}
	gets := w.proxy.GETs()
	if len(gets) != 1 || gets[0].Range != fmt.Sprintf("bytes=1000-%d", 1000+1<<20-1) || gets[0].IfMatch != v.ETag {
		t.Fatalf("GETs: %+v", gets)
	}
}

func TestCutBodiesAreResumed(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(2, 3<<20)
	w.s3.Put(t, bucket, "a.pdf", data)
	s := w.store(t)
	v := head(t, s, "a.pdf")
	w.proxy.Reset()
	w.proxy.SetFault(testenv.FailN(2, testenv.Fault{CutAfter: 100_000}))
	got, err := readRange(s, v, 0, v.Size)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes differ after resumes")
	}
	gets := w.proxy.GETs()
	want := []string{"bytes=0-3145727", "bytes=100000-3145727", "bytes=200000-3145727"}
	if len(gets) != len(want) {
		t.Fatalf("%d GETs, want %d: %+v", len(gets), len(want), gets)
	}
	for i, g := range gets {
		if g.Range != want[i] || g.IfMatch != v.ETag {
			t.Errorf("GET %d: range %q if-match %q", i, g.Range, g.IfMatch)
		}
	}
}

func TestCutBodiesGiveUp(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(3, 1<<20)
	w.s3.Put(t, bucket, "a.pdf", data)
	s := w.store(t)
	v := head(t, s, "a.pdf")
	w.proxy.SetFault(func(r *http.Request) testenv.Fault {
		if testenv.IsObjectGET(r) {
			return testenv.Fault{CutAfter: 1000}
		}
		return testenv.Fault{}
	})
	if _, err := readRange(s, v, 0, v.Size); err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("want giving up, got %v", err)
	}
}

// TestBodiesCutAfterProgressComplete: a connection cut every 1.5 MiB (a
// proxy's limit) made 8 MiB ranges unreadable (the attempt limit ran out
// though every GET brought bytes); a body that delivered progressCredit
// bytes costs no attempt, so the range completes, in one GET per cut.
func TestBodiesCutAfterProgressComplete(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(4, 8<<20)
	w.s3.Put(t, bucket, "a.pdf", data)
	s := w.store(t) // MaxAttempts 3
	v := head(t, s, "a.pdf")
	w.proxy.Reset()
	w.proxy.SetFault(func(r *http.Request) testenv.Fault {
		if testenv.IsObjectGET(r) {
			return testenv.Fault{CutAfter: 3 << 19}
		}
		return testenv.Fault{}
	})
	got, err := readRange(s, v, 0, v.Size)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes differ after resumes")
	}
	// 8 MiB in pieces of 1.5 MiB: 6 GETs, none wasted.
	if n := len(w.proxy.GETs()); n != 6 {
		t.Errorf("%d GETs, want 6", n)
	}
}

func TestStalledBodyIsResumed(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(4, 2<<20)
	w.s3.Put(t, bucket, "a.pdf", data)
	s := w.store(t)
	v := head(t, s, "a.pdf")
	w.proxy.SetFault(testenv.FailN(1, testenv.Fault{StallAfter: 64 << 10}))
	start := time.Now()
	got, err := readRange(s, v, 0, v.Size)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes differ after a stall")
	}
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Fatalf("stall was not waited out (%v)", el)
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(5, 1000)
	w.s3.Put(t, bucket, "a.pdf", data)
	s := w.store(t)
	v := head(t, s, "a.pdf")
	w.proxy.SetFault(testenv.FailN(2, testenv.Fault{Status: 503}))
	got, err := readRange(s, v, 0, v.Size)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after two 503s: %v", err)
	}
	w.proxy.SetFault(func(r *http.Request) testenv.Fault {
		if testenv.IsObjectGET(r) {
			return testenv.Fault{Status: 500}
		}
		return testenv.Fault{}
	})
	if _, err := readRange(s, v, 0, v.Size); err == nil {
		t.Fatal("a server that keeps failing gave no error")
	}
}

func TestChangedObject(t *testing.T) {
	w := newWorld(t)
	w.s3.Put(t, bucket, "a.pdf", []byte("version one"))
	s := w.store(t)
	v := head(t, s, "a.pdf")
	w.s3.Put(t, bucket, "a.pdf", []byte("version two"))
	if _, err := readRange(s, v, 0, v.Size); !errors.Is(err, object.ErrChanged) {
		t.Fatalf("got %v, want ErrChanged", err)
	}
	if _, err := s.Head(context.Background(), "missing.pdf"); !errors.Is(err, object.ErrNotFound) {
		t.Fatalf("head of a missing key: %v", err)
	}
}

func TestObjectWithoutETag(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(6, 5000)
	w.s3.PutRaw(t, bucket, "raw/a.pdf", data)
	s := w.store(t)
	l, err := s.ListPage(context.Background(), object.ListRequest{Prefix: "raw/", Delimiter: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Files) != 1 || l.Files[0].ETag != "" || l.Files[0].Key != "raw/a.pdf" {
		t.Fatalf("listing: %+v", l)
	}
	v := l.Files[0]
	got, err := readRange(s, v, 10, 100)
	if err != nil || !bytes.Equal(got, data[10:110]) {
		t.Fatalf("read: %v", err)
	}
	if g := w.proxy.GETs(); g[len(g)-1].IfUnmodifiedSince == "" {
		t.Fatal("GET without If-Unmodified-Since")
	}
	// Rewritten later, same size: the version (size, Last-Modified) differs.
	w.s3.PutRaw(t, bucket, "raw/a.pdf", testenv.RandomBytes(7, 5000))
	w.s3.SetModTime(t, bucket, "raw/a.pdf", v.ModTime.Add(5*time.Second))
	if _, err := readRange(s, v, 0, 100); !errors.Is(err, object.ErrChanged) {
		t.Fatalf("got %v, want ErrChanged", err)
	}
}

func TestCheckExplainsSetupMistakes(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.store(t).Check(ctx); err != nil {
		t.Fatalf("good setup: %v", err)
	}
	if _, err := w.store(t, func(o *Options) { o.Bucket = "nosuch" }).Check(ctx); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing bucket: %v", err)
	}
	closed := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
	if _, err := w.store(t, func(o *Options) { o.EndpointURL = closed }).Check(ctx); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("unreachable: %v", err)
	}
	// A source naming an object, not a prefix, would mount an empty tree.
	w.s3.Put(t, bucket, "cases/brief.pdf", []byte("%PDF-1.4"))
	if _, err := w.store(t, func(o *Options) { o.Prefix = "cases/brief.pdf/" }).Check(ctx); err == nil || !strings.Contains(err.Error(), "is an object, not a prefix") {
		t.Fatalf("object as prefix: %v", err)
	}
	// A prefix with nothing under it is said to be empty (the mount warns),
	// one with an object is not.
	if empty, err := w.store(t, func(o *Options) { o.Prefix = "later/" }).Check(ctx); err != nil || !empty {
		t.Fatalf("empty prefix: empty=%v, %v", empty, err)
	}
	if empty, err := w.store(t, func(o *Options) { o.Prefix = "cases/" }).Check(ctx); err != nil || empty {
		t.Fatalf("prefix of one object: empty=%v, %v", empty, err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	if _, err := w.store(t).Check(ctx); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("wrong secret: %v", err)
	}
}
