package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// bigPrefix is how many objects TestBigPrefix puts under one prefix.
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

func kinds(t *testing.T, p *testenv.Proxy) requestKinds {
	t.Helper()
	var k requestKinds
	for _, r := range p.Requests() {
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

// TestBigPrefix: 100,000 objects under one prefix. Looking one up costs
// one HEAD and at most one listing of one entry, before and after the TTL,
// never a listing of the prefix; `ls -l` of the prefix lists it once,
// without a HEAD per entry; and the daemon's memory stays bounded.
func TestBigPrefix(t *testing.T) {
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
	k := kinds(t, w.proxy)
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
