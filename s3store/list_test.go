package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"s3docs/internal/object"
)

// listAll pages through one level with continuation tokens.
func listAll(t *testing.T, s *Store, req object.ListRequest) (dirs []string, files []object.Version, pages int) {
	t.Helper()
	for {
		p, err := s.ListPage(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		dirs = append(dirs, p.Dirs...)
		files = append(files, p.Files...)
		if !p.Truncated {
			return dirs, files, pages
		}
		req.Token = p.NextToken
	}
}

func TestListPages(t *testing.T) {
	w := newWorld(t)
	for i := 0; i < 2100; i++ {
		w.s3.PutRaw(t, bucket, fmt.Sprintf("p/many/%04d.pdf", i), []byte("x"))
	}
	w.s3.PutRaw(t, bucket, "p/sub/deep/x.pdf", []byte("x"))
	w.s3.Put(t, bucket, "p/top.pdf", []byte("xy"))
	w.s3.Put(t, bucket, "p/marker/", nil)
	s := w.store(t, func(o *Options) { o.Prefix = "p/" })

	_, files, pages := listAll(t, s, object.ListRequest{Prefix: "many/", Delimiter: true})
	if len(files) != 2100 || pages != 3 {
		t.Fatalf("many/: %d files in %d pages", len(files), pages)
	}
	for i, v := range files {
		if want := fmt.Sprintf("many/%04d.pdf", i); v.Key != want || v.Size != 1 {
			t.Fatalf("file %d: %+v, want %s", i, v, want)
		}
	}
	dirs, files, _ := listAll(t, s, object.ListRequest{Prefix: "", Delimiter: true})
	if strings.Join(dirs, ",") != "many,marker,sub" || len(files) != 1 || files[0].Key != "top.pdf" || files[0].Size != 2 || files[0].ETag == "" {
		t.Fatalf("root: dirs %v files %+v", dirs, files)
	}

	// StartAfter starts past any string, present or not, relative to the
	// store's prefix.
	p, err := s.ListPage(context.Background(), object.ListRequest{Prefix: "many/", Delimiter: true, StartAfter: "many/1999.pdf\U0010FFFF", MaxKeys: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files) != 5 || p.Files[0].Key != "many/2000.pdf" || !p.Truncated || p.NextToken == "" {
		t.Fatalf("after many/1999.pdf: %+v", p)
	}

	// A lookup's listing of one key: a folder marker counts.
	for prefix, want := range map[string]bool{"marker/": true, "sub/": true, "top.pdf/": false, "nothing/": false} {
		p, err := s.ListPage(context.Background(), object.ListRequest{Prefix: prefix, MaxKeys: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(p.Files)+len(p.Dirs) > 0; got != want {
			t.Errorf("%s: something under it %v, want %v (%+v)", prefix, got, want, p)
		}
	}
}

// hostileServer answers every ListObjectsV2 with body(n), n counting from 1.
func hostileServer(t *testing.T, body func(n int64) string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, body(n))
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func listPage(keys []string, truncated bool, token string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>docs</Name>`)
	fmt.Fprintf(&b, "<IsTruncated>%v</IsTruncated>", truncated)
	if token != "" {
		fmt.Fprintf(&b, "<NextContinuationToken>%s</NextContinuationToken>", token)
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "<Contents><Key>%s</Key><Size>1</Size><ETag>\"e\"</ETag></Contents>", k)
	}
	b.WriteString("</ListBucketResult>")
	return b.String()
}

func TestListPageDistrustsTheServer(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_PROFILE", "")
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("k%04d", i)
	}
	huge := strings.Repeat("x", 9000)
	cases := []struct {
		name string
		body func(n int64) string
		req  object.ListRequest
	}{
		{"repeated token", func(int64) string { return listPage([]string{"a"}, true, "same") }, object.ListRequest{Token: "same"}},
		{"no token", func(int64) string { return listPage([]string{"a"}, true, "") }, object.ListRequest{}},
		{"more keys than asked", func(int64) string { return listPage(many[:3], true, "t") }, object.ListRequest{MaxKeys: 2}},
		{"more keys than S3 sends", func(int64) string { return listPage(many, true, "t") }, object.ListRequest{}},
		{"huge ETag", func(int64) string {
			return strings.Replace(listPage([]string{"a"}, false, ""), `<ETag>"e"</ETag>`, "<ETag>"+strings.Repeat("e", 2000)+"</ETag>", 1)
		}, object.ListRequest{}},
		{"huge body", func(int64) string {
			keys := make([]string, 1000) // 9 MB
			for i := range keys {
				keys[i] = fmt.Sprintf("%s%04d", huge, i)
			}
			return listPage(keys, false, "")
		}, object.ListRequest{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, calls := hostileServer(t, c.body)
			s, err := New(context.Background(), Options{Bucket: "docs", EndpointURL: srv.URL, Region: "us-east-1", ForcePathStyle: true, MaxConns: 4, MaxAttempts: 3})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err = s.ListPage(ctx, c.req)
			if !errors.Is(err, object.ErrBadListing) {
				t.Fatalf("got %v, want ErrBadListing", err)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("%d requests, want 1: a broken listing is not retried", n)
			}
		})
	}
	// An entry without a size is not an empty file: its size is -1, which
	// the file system skips.
	srv, _ := hostileServer(t, func(int64) string {
		return strings.Replace(listPage([]string{"a", "b"}, false, ""), "<Key>a</Key><Size>1</Size>", "<Key>a</Key>", 1)
	})
	s, err := New(context.Background(), Options{Bucket: "docs", EndpointURL: srv.URL, Region: "us-east-1", ForcePathStyle: true, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.ListPage(context.Background(), object.ListRequest{})
	if err != nil || len(p.Files) != 2 || p.Files[0].Size >= 0 || p.Files[1].Size != 1 {
		t.Fatalf("entry without a size: %+v, %v", p, err)
	}
	// A server that ignores the prefix: what is outside it is left out,
	// and never shows inside the mount's prefix.
	srv, _ = hostileServer(t, func(int64) string {
		return strings.Replace(listPage([]string{"p/d/in.pdf", "top.pdf", "p/dx.pdf"}, false, ""), "</ListBucketResult>",
			"<CommonPrefixes><Prefix>p/d/sub/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>q/</Prefix></CommonPrefixes></ListBucketResult>", 1)
	})
	s, err = New(context.Background(), Options{Bucket: "docs", Prefix: "p/", EndpointURL: srv.URL, Region: "us-east-1", ForcePathStyle: true, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	p, err = s.ListPage(context.Background(), object.ListRequest{Prefix: "d/", Delimiter: true})
	if err != nil || len(p.Files) != 1 || p.Files[0].Key != "d/in.pdf" || len(p.Dirs) != 1 || p.Dirs[0] != "sub" {
		t.Fatalf("a listing beyond its prefix: %+v, %v", p, err)
	}
	// A well-formed answer passes.
	srv, _ = hostileServer(t, func(int64) string { return listPage([]string{"a", "b"}, true, "next") })
	s, err = New(context.Background(), Options{Bucket: "docs", EndpointURL: srv.URL, Region: "us-east-1", ForcePathStyle: true, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	p, err = s.ListPage(context.Background(), object.ListRequest{Token: "first"})
	if err != nil || len(p.Files) != 2 || p.NextToken != "next" || !p.Truncated {
		t.Fatalf("%+v, %v", p, err)
	}
}
