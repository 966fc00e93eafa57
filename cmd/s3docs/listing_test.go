package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// bigPrefix is how many objects TestMemoryAndLookupsOfABigPrefix puts
// under one prefix.
const bigPrefix = 100000

// putFlat writes n objects flat/k000000.txt… straight into the server's
// directory (no ETag: such objects must work too), each holding its name
// and a newline. Much faster than n PUTs.
func putFlat(t *testing.T, w *world, n int) {
	t.Helper()
	dir := filepath.Join(w.s3.Root, testBucket, "flat")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("k%06d.txt", i)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d objects written in %v", n, time.Since(start))
}

// requestKinds counts what reached the server: HEADs, listings of one
// entry (a lookup's), listing pages.
type requestKinds struct{ heads, probes, pages int }

// kinds counts the requests recorded by p; HEADs only of keys under
// headPrefix, if set.
func kinds(t *testing.T, p *testenv.Proxy, headPrefix ...string) requestKinds {
	t.Helper()
	var k requestKinds
	for _, r := range p.Requests() {
		if r.Method == "HEAD" && len(headPrefix) > 0 && !strings.HasPrefix(r.Path, headPrefix[0]) {
			continue
		}
		q, err := url.ParseQuery(r.RawQuery)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Method == "HEAD":
			k.heads++
		case q.Get("list-type") == "2" && q.Get("max-keys") == "1":
			k.probes++
		case q.Get("list-type") == "2":
			k.pages++
		}
	}
	return k
}

// settle waits for requests that were called off to be recorded, then
// forgets them all.
func settle(t *testing.T, p *testenv.Proxy) {
	t.Helper()
	if !p.WaitIdle(30 * time.Second) {
		t.Fatal("requests still running after 30s")
	}
	p.Reset()
}

// TestMemoryAndLookupsOfABigPrefix: 100,000 objects under one prefix.
// Looking one up costs one HEAD and at most one listing of one entry,
// before and after the TTL, never a listing of the prefix; `ls -l` of the
// prefix lists it once, without a HEAD per entry; and the daemon's peak
// RSS stays within 64 MiB (checked without -race: scripts/test.sh runs
// the TestMemory tests again without it).
func TestMemoryAndLookupsOfABigPrefix(t *testing.T) {
	w := newWorld(t)
	putFlat(t, w, bigPrefix)
	odd := []string{"sp ace.txt", "per%cent.txt", "plus+sign.txt", "q?mark.txt", "hash#.txt", "amp&eq=.txt", "文書.txt", "emoji😀.txt", "tilde~.txt"}
	for _, name := range odd {
		w.s3.Put(t, testBucket, "odd/"+name, []byte(name))
	}
	ttl := 3 * time.Second
	d := w.mount(t, mountOpts{extra: []string{"--metadata-ttl", ttl.String()}})

	lookup := func(what, rel string, want []byte) {
		t.Helper()
		if _, err := os.Stat(d.path("flat")); err != nil {
			t.Fatal(err)
		}
		settle(t, w.proxy)
		b, err := os.ReadFile(d.path(rel))
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("%s: %q, %v", what, b, err)
		}
		// A listing called off is recorded when the server is done with it.
		w.proxy.WaitIdle(30 * time.Second)
		k := kinds(t, w.proxy)
		t.Logf("%s: %+v", what, k)
		// The GET of the content is the read's, not the lookup's.
		if k.heads != 1 || k.probes > 1 || k.pages != 0 {
			t.Fatalf("%s cost %d HEADs, %d one-entry listings, %d listing pages", what, k.heads, k.probes, k.pages)
		}
	}
	lookup("a cold open", "flat/k050000.txt", []byte("k050000.txt\n"))
	time.Sleep(ttl + time.Second)
	lookup("an open after the TTL", "flat/k050000.txt", []byte("k050000.txt\n"))
	lookup("another name", "flat/k099999.txt", []byte("k099999.txt\n"))
	for _, name := range odd {
		b, err := os.ReadFile(d.path("odd/" + name))
		if err != nil || string(b) != name {
			t.Errorf("%q: %q, %v", name, b, err)
		}
	}
	if _, err := os.Stat(d.path("flat/k100000.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing name: %v", err)
	}

	// ls -l on a fresh mount with the default TTL: with 3 s, a machine
	// this busy may take longer than that between listing an entry and
	// ls's stat of it, which then looks it up again.
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	d = w.mount(t, mountOpts{})
	settle(t, w.proxy)
	start := time.Now()
	out, err := testenv.Command(testenv.Tool(t, "ls"), "-l", d.path("flat")).Output()
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if n := strings.Count(string(out), "\n"); n != bigPrefix+1 {
		t.Fatalf("ls -l printed %d lines, want %d", n, bigPrefix+1)
	}
	w.proxy.WaitIdle(30 * time.Second)
	// HEADs of the entries, not of flat itself: ls may take longer than
	// the TTL here, and then flat is looked up again.
	k := kinds(t, w.proxy, "/"+testBucket+"/flat/")
	t.Logf("ls -l of %d entries: %v, %+v; daemon RSS now %d MiB, peak %d MiB", bigPrefix, took, k, vmRSS(t, d.cmd.Process.Pid)/mib, d.peakRSS()/mib)
	pages := bigPrefix / 1000
	if k.heads != 0 || k.pages < pages || k.pages > pages+pages/4 {
		t.Fatalf("ls -l cost %d HEADs and %d listing pages (%d pages of entries)", k.heads, k.pages, pages)
	}
	if !raceEnabled {
		if rss := d.peakRSS(); rss > 64*mib {
			t.Fatalf("daemon peak RSS %d MiB after ls -l of %d entries", rss/mib, bigPrefix)
		}
	}
}

// brokenLister stands in front of the server and answers the listings of
// the prefixes loop/ and endless/ itself, as a buggy or hostile server
// would; everything else reaches the server.
type brokenLister struct {
	srv   *httptest.Server
	calls atomic.Int64 // listings of loop/ and endless/ answered
}

func newBrokenLister(t *testing.T, target string) *brokenLister {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	b := &brokenLister{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		prefix := q.Get("prefix")
		if r.Method != http.MethodGet || q.Get("list-type") != "2" || q.Get("max-keys") == "1" ||
			(prefix != "loop/" && prefix != "endless/") {
			rp.ServeHTTP(w, r)
			return
		}
		n := b.calls.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		if prefix == "loop/" {
			// IsTruncated with the same token, whatever was asked.
			fmt.Fprint(w, listResult(prefix, []string{"a.pdf"}, "same-token"))
			return
		}
		// A new name and a new token every time, slowly, for ever.
		time.Sleep(5 * time.Millisecond)
		fmt.Fprint(w, listResult(prefix, []string{fmt.Sprintf("k%09d.pdf", n)}, fmt.Sprintf("token-%d", n)))
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func listResult(prefix string, names []string, token string) string {
	var s strings.Builder
	fmt.Fprintf(&s, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>%s</Name><Prefix>%s</Prefix><IsTruncated>true</IsTruncated><NextContinuationToken>%s</NextContinuationToken>`, testBucket, prefix, token)
	for _, name := range names {
		fmt.Fprintf(&s, `<Contents><Key>%s%s</Key><Size>1</Size><ETag>"e"</ETag><LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>`, prefix, name)
	}
	s.WriteString("</ListBucketResult>")
	return s.String()
}

// outputWithin is cmd.CombinedOutput, killing cmd after limit (a guard
// against hangs, not a performance bound).
func outputWithin(cmd *exec.Cmd, limit time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	if !timer.Stop() {
		err = fmt.Errorf("still running after %v: %w", limit, err)
	}
	return out.Bytes(), err
}

// TestBrokenListingServer (issue 14, finding 1): a listing that never ends
// is an error, not all the daemon's memory; and fetching stops when its
// reader is gone.
func TestBrokenListingServer(t *testing.T) {
	w := newWorld(t)
	w.s3.Put(t, testBucket, "loop/real.pdf", []byte("x"))
	w.s3.Put(t, testBucket, "endless/real.pdf", []byte("x"))
	broken := newBrokenLister(t, w.s3.Endpoint)
	d := w.mount(t, mountOpts{endpoint: broken.srv.URL})
	rssBefore := vmRSS(t, d.cmd.Process.Pid)
	ls := testenv.Tool(t, "ls")

	// The same continuation token again: EIO at the second page.
	start := time.Now()
	out, err := outputWithin(testenv.Command(ls, d.path("loop")), time.Minute)
	if err == nil || !strings.Contains(string(out), "Input/output error") {
		t.Fatalf("ls of a listing that repeats its token: %v: %s", err, out)
	}
	t.Logf("ls failed after %v and %d listings: %s", time.Since(start), broken.calls.Load(), bytes.TrimSpace(out))
	// The first page, the second, and the probes the first page started.
	if n := broken.calls.Load(); n > 5 {
		t.Fatalf("%d listings for a token repeated at the second", n)
	}
	if d.logCount("repeated the continuation token", 1) != 1 {
		t.Fatalf("no log line says why:\n%s", d.stderr.String())
	}

	// A listing that goes on for ever, read and then given up: fetching
	// stops with the reader.
	broken.calls.Store(0)
	cmd := testenv.Command(ls, d.path("endless"))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for broken.calls.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if broken.calls.Load() < 200 {
		t.Fatalf("only %d listings in a minute", broken.calls.Load())
	}
	cmd.Process.Kill()
	cmd.Wait()
	time.Sleep(time.Second)
	stopped := broken.calls.Load()
	time.Sleep(2 * time.Second)
	if n := broken.calls.Load(); n != stopped {
		t.Fatalf("%d listings after the reader was gone", n-stopped)
	}
	rss := vmRSS(t, d.cmd.Process.Pid)
	t.Logf("%d listings answered while ls read; daemon RSS %d MiB before, %d MiB after", stopped, rssBefore/mib, rss/mib)
	if rss > rssBefore+64*mib {
		t.Fatalf("daemon RSS grew from %d to %d MiB", rssBefore/mib, rss/mib)
	}
	// The mount still serves.
	if b, err := os.ReadFile(d.path("loop/real.pdf")); err != nil || string(b) != "x" {
		t.Fatalf("after the broken listings: %q, %v", b, err)
	}
}

// TestStalledServerLookupsEnd (issue 14, finding 2, for metadata): against
// a server that accepts requests and never answers them, a lookup and a
// listing each fail with EIO at their one deadline (--read-timeout, here
// 30 s, retries included), not after retries of their own or never.
func TestStalledServerLookupsEnd(t *testing.T) {
	w := newWorld(t)
	w.s3.Put(t, testBucket, "dir/a.pdf", []byte("a"))
	d := w.mount(t, mountOpts{extra: []string{"--read-timeout", "30s"}})
	if _, err := os.Stat(d.path("dir")); err != nil {
		t.Fatal(err)
	}
	w.proxy.SetFault(func(r *http.Request) testenv.Fault { return testenv.Fault{Delay: time.Hour} })
	type result struct {
		what string
		err  error
		took time.Duration
	}
	results := make(chan result, 2)
	for what, op := range map[string]func() error{
		"stat":    func() error { _, err := os.Stat(d.path("dir/a.pdf")); return err },
		"readdir": func() error { _, err := os.ReadDir(d.path("dir")); return err },
	} {
		go func() {
			start := time.Now()
			err := op()
			results <- result{what, err, time.Since(start)}
		}()
	}
	for range 2 {
		select {
		case r := <-results:
			t.Logf("%s: %v after %v", r.what, r.err, r.took)
			if !errors.Is(r.err, syscall.EIO) {
				t.Errorf("%s: %v, want EIO", r.what, r.err)
			}
			// The deadline is 30 s: not before, and not once per attempt
			// (that would be 90 s and more); the margin is for a busy machine.
			if r.took < 25*time.Second || r.took > 60*time.Second {
				t.Errorf("%s gave up after %v; its deadline is 30 s", r.what, r.took)
			}
		case <-time.After(3 * time.Minute):
			t.Fatal("a lookup or a listing still waits after 3 minutes")
		}
	}
	w.proxy.SetFault(nil)
}
