package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/pdfgen"
	"s3docs/internal/testenv"
)

const mib = 1 << 20

func TestReadsMatchObjects(t *testing.T) {
	w := newWorld(t)
	sizes := []int{0, 1, 8*mib - 1, 8 * mib, 8*mib + 1, 3*8*mib + 5}
	want := map[string][]byte{}
	for i, n := range sizes {
		key := fmt.Sprintf("sizes/obj-%d.pdf", n)
		want[key] = testenv.RandomBytes(int64(i), n)
		w.s3.Put(t, testBucket, key, want[key])
	}
	// An object put straight into the server's directory has no ETag; its
	// version is (size, Last-Modified) and it must read the same.
	raw := testenv.RandomBytes(99, 9*mib+7)
	w.s3.PutRaw(t, testBucket, "raw/no-etag.pdf", raw)
	want["raw/no-etag.pdf"] = raw

	d := w.mount(t, mountOpts{})
	for key, data := range want {
		if got := sha256Of(t, d.path(key)); got != sha256Hex(data) {
			t.Errorf("%s: sha256 through the mount %s, object %s", key, got, sha256Hex(data))
		}
		st, err := os.Stat(d.path(key))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != int64(len(data)) {
			t.Errorf("%s: size %d, want %d", key, st.Size(), len(data))
		}
	}

	// 500 random preads of the largest object, compared with the source.
	key := "sizes/obj-25165829.pdf"
	data := want[key]
	f, err := os.Open(d.path(key))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 500; i++ {
		off := r.Int64N(int64(len(data)))
		buf := make([]byte, 1+r.IntN(300<<10))
		n, err := f.ReadAt(buf, off)
		if err != nil && !(errors.Is(err, io.EOF) && off+int64(n) == int64(len(data))) {
			t.Fatalf("pread %d at %d: %v", len(buf), off, err)
		}
		if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			t.Fatalf("pread %d at %d: bytes differ", len(buf), off)
		}
	}
}

func TestListing(t *testing.T) {
	w := newWorld(t)
	// 2,500 keys in one prefix: three ListObjectsV2 pages.
	for i := 0; i < 2500; i++ {
		w.s3.PutRaw(t, testBucket, fmt.Sprintf("many/f%04d.pdf", i), []byte("x"))
	}
	w.s3.Put(t, testBucket, "cases/2024/brief.pdf", []byte("brief"))
	w.s3.Put(t, testBucket, "cases/2023/memo.pdf", []byte("memo!!"))
	w.s3.Put(t, testBucket, "top.pdf", []byte("top"))
	d := w.mount(t, mountOpts{})

	names, err := os.ReadDir(d.path("many"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2500 {
		t.Fatalf("many/ lists %d entries, want 2500", len(names))
	}
	root := readDirNames(t, d.mountpoint)
	if strings.Join(root, ",") != "cases,many,top.pdf" {
		t.Fatalf("root lists %v", root)
	}
	if got := readDirNames(t, d.path("cases")); strings.Join(got, ",") != "2023,2024" {
		t.Fatalf("cases/ lists %v", got)
	}
	st, err := os.Stat(d.path("cases/2023/memo.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 6 || st.Mode().Perm() != 0o444 || !st.Mode().IsRegular() {
		t.Fatalf("memo.pdf: size %d mode %v", st.Size(), st.Mode())
	}
	if time.Since(st.ModTime()) > time.Hour {
		t.Fatalf("memo.pdf mtime %v is not the object's Last-Modified", st.ModTime())
	}
	if _, err := os.Stat(d.path("cases/2024/nope.pdf")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}

	// ls -l needs no HEAD per entry: sizes come from the listing.
	w.proxy.Reset()
	out, err := testenv.Command(testenv.Tool(t, "ls"), "-l", d.path("many")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "\n"); n != 2501 {
		t.Fatalf("ls -l printed %d lines", n)
	}
	for _, r := range w.proxy.Requests() {
		if r.Method == "HEAD" {
			t.Fatalf("ls -l made a HEAD request: %+v", r)
		}
	}

	// Inode numbers are stable across remounts.
	ino1 := inode(t, d.path("cases/2024/brief.pdf"))
	dino1 := inode(t, d.path("cases/2024"))
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	d2 := w.mount(t, mountOpts{})
	if ino2 := inode(t, d2.path("cases/2024/brief.pdf")); ino2 != ino1 {
		t.Fatalf("file inode %d then %d", ino1, ino2)
	}
	if dino2 := inode(t, d2.path("cases/2024")); dino2 != dino1 {
		t.Fatalf("dir inode %d then %d", dino1, dino2)
	}
}

func readDirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	sort.Strings(names)
	return names
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// rangedGETs checks that every recorded object GET is ranged, conditional
// and at most one chunk long, and returns how many were made per range.
func rangedGETs(t *testing.T, p *testenv.Proxy) map[string]int {
	t.Helper()
	byRange := map[string]int{}
	for _, r := range p.GETs() {
		var from, thru int64
		if _, err := fmt.Sscanf(r.Range, "bytes=%d-%d", &from, &thru); err != nil {
			t.Fatalf("GET without a byte range: %+v", r)
		}
		if thru-from+1 > 8*mib {
			t.Fatalf("GET of %d bytes: %+v", thru-from+1, r)
		}
		if r.IfMatch == "" && r.IfUnmodifiedSince == "" {
			t.Fatalf("unconditional GET: %+v", r)
		}
		byRange[r.Path+" "+r.Range]++
	}
	return byRange
}

func TestGETsAndCacheReuse(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(1, 100*mib)
	w.s3.Put(t, testBucket, "big.pdf", data)
	cacheDir := t.TempDir()
	d := w.mount(t, mountOpts{cacheDir: cacheDir})

	w.proxy.Reset()
	if got := sha256Of(t, d.path("big.pdf")); got != sha256Hex(data) {
		t.Fatal("cold read: content differs")
	}
	w.proxy.WaitIdle(10 * time.Second)
	byRange := rangedGETs(t, w.proxy)
	if len(w.proxy.GETs()) != 13 || len(byRange) != 13 {
		t.Fatalf("cold sequential read of 100 MiB made %d GETs over %d ranges, want 13", len(w.proxy.GETs()), len(byRange))
	}

	// Page cache dropped: everything comes from the chunk cache.
	dropPageCache(t)
	w.proxy.Reset()
	if got := sha256Of(t, d.path("big.pdf")); got != sha256Hex(data) {
		t.Fatal("warm read: content differs")
	}
	if n := len(w.proxy.GETs()); n != 0 {
		t.Fatalf("warm read made %d GETs", n)
	}

	// A remount on the same cache directory reuses every chunk.
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	d2 := w.mount(t, mountOpts{cacheDir: cacheDir})
	w.proxy.Reset()
	if got := sha256Of(t, d2.path("big.pdf")); got != sha256Hex(data) {
		t.Fatal("read after remount: content differs")
	}
	if n := len(w.proxy.GETs()); n != 0 {
		t.Fatalf("read after remount made %d GETs", n)
	}
}

func TestConcurrentReadersShareFetches(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(2, 64*mib+3)
	w.s3.Put(t, testBucket, "shared.pdf", data)
	d := w.mount(t, mountOpts{})
	w.proxy.Reset()
	var wg sync.WaitGroup
	sums := make([]string, 4)
	for i := range sums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[i] = sha256Of(t, d.path("shared.pdf"))
		}()
	}
	wg.Wait()
	for i, s := range sums {
		if s != sha256Hex(data) {
			t.Fatalf("reader %d: content differs", i)
		}
	}
	w.proxy.WaitIdle(10 * time.Second)
	for rng, n := range rangedGETs(t, w.proxy) {
		if n != 1 {
			t.Errorf("%s fetched %d times", rng, n)
		}
	}
	if n := len(w.proxy.GETs()); n != 9 {
		t.Fatalf("%d GETs for 9 chunks", n)
	}
}

func TestCacheStaysBounded(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(3, 100*mib)
	w.s3.Put(t, testBucket, "big.pdf", data)
	cacheDir := t.TempDir()
	d := w.mount(t, mountOpts{cacheDir: cacheDir, cacheSize: "32MiB"})
	if got := sha256Of(t, d.path("big.pdf")); got != sha256Hex(data) {
		t.Fatal("content differs")
	}
	w.proxy.WaitIdle(10 * time.Second)
	if n := cacheDiskBytes(t, cacheDir); n > 32*mib {
		t.Fatalf("cache holds %d bytes on disk, bound is %d", n, 32*mib)
	}
}

func TestWritesAreRefused(t *testing.T) {
	w := newWorld(t)
	w.s3.Put(t, testBucket, "dir/a.pdf", []byte("hello"))
	d := w.mount(t, mountOpts{})
	file := d.path("dir/a.pdf")
	checks := map[string]func() error{
		"create":   func() error { return os.WriteFile(d.path("dir/new.pdf"), []byte("x"), 0o644) },
		"write":    func() error { _, err := os.OpenFile(file, os.O_WRONLY, 0); return err },
		"truncate": func() error { return os.Truncate(file, 0) },
		"unlink":   func() error { return os.Remove(file) },
		"rename":   func() error { return os.Rename(file, d.path("dir/b.pdf")) },
		"mkdir":    func() error { return os.Mkdir(d.path("dir/sub"), 0o755) },
		"rmdir":    func() error { return syscall.Rmdir(d.path("dir")) },
		"chmod":    func() error { return os.Chmod(file, 0o644) },
		"setxattr": func() error { return syscall.Setxattr(file, "user.x", []byte("1"), 0) },
		"symlink":  func() error { return os.Symlink("a.pdf", d.path("dir/l")) },
	}
	for name, op := range checks {
		if err := op(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: got %v, want EROFS", name, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "hello" {
		t.Fatalf("file after refused writes: %q, %v", b, err)
	}
}

func TestSIGTERMUnmountsAndExitsZero(t *testing.T) {
	w := newWorld(t)
	w.s3.Put(t, testBucket, "a.pdf", []byte("a"))
	d := w.mount(t, mountOpts{})
	if _, err := os.Stat(d.path("a.pdf")); err != nil {
		t.Fatal(err)
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if ok, _ := isMountPoint(d.mountpoint); ok {
		t.Fatal("still mounted")
	}
}

func TestOverwriteWhileOpen(t *testing.T) {
	w := newWorld(t)
	v1 := testenv.RandomBytes(10, 3*8*mib)
	w.s3.Put(t, testBucket, "doc.pdf", v1)
	d := w.mount(t, mountOpts{extra: []string{"--read-ahead", "0"}})
	f, err := os.Open(d.path("doc.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 4096)
	if _, err := f.ReadAt(head, 0); err != nil || !bytes.Equal(head, v1[:4096]) {
		t.Fatalf("first read: %v", err)
	}
	// Same size, other bytes: only the version tells them apart.
	v2 := testenv.RandomBytes(11, len(v1))
	w.s3.Put(t, testBucket, "doc.pdf", v2)

	// The rest of the open file is not cached: it must fail, never mix.
	tail := make([]byte, 4096)
	_, err = f.ReadAt(tail, int64(len(v1))-4096)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read after overwrite: %v, want EIO (bytes from v2: %v)", err, bytes.Equal(tail, v2[len(v2)-4096:]))
	}
	if d.logCount("doc.pdf", 1) == 0 {
		t.Fatal("no log line names the changed key")
	}
	f.Close()

	// A new open sees the new version, entirely.
	if got := sha256Of(t, d.path("doc.pdf")); got != sha256Hex(v2) {
		t.Fatal("reopen does not read the new version")
	}
}

func TestBadInput(t *testing.T) {
	w := newWorld(t)
	empty := t.TempDir()
	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o644)
	mounted := w.mount(t, mountOpts{})
	// The bucket is empty: the mount says so once it is up (before, it
	// would have made a bad input's one line two).
	if n := mounted.logCount("nothing under the mounted prefix yet", 1); n != 1 {
		t.Errorf("an empty bucket's mount warned %d times, want once", n)
	}
	w.s3.Put(t, testBucket, "brief.pdf", []byte("%PDF-1.4\n"))
	closedPort := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
	// A web server, not S3: it answers every request 200 with a page.
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>Welcome</body></html>")
	}))
	t.Cleanup(web.Close)

	base := func(endpoint string, rest ...string) []string {
		return append([]string{"mount", "--endpoint-url", endpoint, "--force-path-style", "--cache-dir", t.TempDir()}, rest...)
	}
	badCreds := []string{}
	for _, kv := range w.s3.Env() {
		if !strings.HasPrefix(kv, "AWS_SECRET_ACCESS_KEY=") {
			badCreds = append(badCreds, kv)
		}
	}
	badCreds = append(badCreds, "AWS_SECRET_ACCESS_KEY=wrong")
	// No credentials anywhere, and an instance metadata service that
	// refuses tokens (as one with IMDSv2 required does, or a proxy): the
	// SDK warns on its own, and the operator must still get one line.
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	t.Cleanup(imds.Close)
	noCreds := []string{"HOME=" + t.TempDir(), "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds.URL}
	for _, kv := range w.s3.Env() {
		if name, _, _ := strings.Cut(kv, "="); name != "AWS_ACCESS_KEY_ID" && name != "AWS_SECRET_ACCESS_KEY" && name != "HOME" {
			noCreds = append(noCreds, kv)
		}
	}
	logInMount := t.TempDir() // a mount point, with --log-file inside it
	fileAsCache := filepath.Join(t.TempDir(), "file")
	os.WriteFile(fileAsCache, nil, 0o600)
	readOnly := t.TempDir()
	if out, err := testenv.Command(testenv.Tool(t, "mount"), "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", readOnly).CombinedOutput(); err != nil {
		t.Fatalf("mount a read-only tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { syscall.Unmount(readOnly, syscall.MNT_DETACH) })
	withCache := func(dir string, rest ...string) []string {
		return append([]string{"mount", "--endpoint-url", w.s3.Endpoint, "--force-path-style", "--cache-dir", dir}, rest...)
	}

	cases := []struct {
		name string
		args []string
		env  []string
		want string
		code int // 0: exitUsage
	}{
		{"unknown flag", base(w.s3.Endpoint, "--no-such-flag", "s3://docs", empty), nil, "unknown flag", 0},
		{"malformed url", base(w.s3.Endpoint, "docs", empty), nil, "s3://", 0},
		{"missing mount point", base(w.s3.Endpoint, "s3://docs", filepath.Join(empty, "nope")), nil, "does not exist", 0},
		{"mount point not empty", base(w.s3.Endpoint, "s3://docs", nonEmpty), nil, "not empty", 0},
		{"already mounted", base(w.s3.Endpoint, "s3://docs", mounted.mountpoint), nil, "already mounted", 0},
		{"no such bucket", base(w.s3.Endpoint, "s3://nosuchbucket", empty), nil, "does not exist", 0},
		{"wrong credentials", base(w.s3.Endpoint, "s3://docs", empty), badCreds, "credentials", 0},
		{"no credentials", base(w.s3.Endpoint, "s3://docs", empty), noCreds, "no AWS credentials found", 0},
		{"unreachable", base(closedPort, "s3://docs", empty), nil, closedPort, 0},
		{"not an S3 endpoint", base(web.URL, "s3://docs", empty), nil, web.URL + " does not answer as S3", 0},
		{"source names an object", base(w.s3.Endpoint, "s3://docs/brief.pdf", empty), nil, "s3://docs/brief.pdf is an object, not a prefix", 0},
		{"cache directory is a file", withCache(fileAsCache, "s3://docs", empty), nil, "not a directory", 0},
		{"log file inside the mount point", base(w.s3.Endpoint, "--log-file", filepath.Join(logInMount, "s3docs.log"), "s3://docs", logInMount),
			nil, "is inside the mount point", 0},
		// Not the operator's input: the file system fails (it was exit 2).
		{"cache directory on a read-only file system", withCache(filepath.Join(readOnly, "cache"), "s3://docs", empty), nil, "read-only file system", exitFailure},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := c.env
			if env == nil {
				env = w.s3.Env()
			}
			start := time.Now()
			d := startDaemon(t, env, c.args...)
			select {
			case <-d.exited:
			case <-time.After(20 * time.Second):
				d.cmd.Process.Kill()
				t.Fatal("still running after 20s")
			}
			out := strings.TrimSpace(d.stderr.String())
			want := c.code
			if want == 0 {
				want = exitUsage
			}
			if d.exitCode != want {
				t.Fatalf("exit code %d, want %d; output:\n%s", d.exitCode, want, out)
			}
			if strings.Count(out, "\n") != 0 || !strings.Contains(out, c.want) {
				t.Fatalf("want one line containing %q, got:\n%s", c.want, out)
			}
			if strings.Contains(out, "goroutine") || strings.Contains(out, "panic") {
				t.Fatalf("stack trace:\n%s", out)
			}
			if el := time.Since(start); el > 10*time.Second {
				t.Fatalf("took %v to fail", el)
			}
		})
	}
	// The refused mount left nothing in the mount point: the next try, with
	// the log elsewhere, finds it empty.
	if des, err := os.ReadDir(logInMount); err != nil || len(des) != 0 {
		t.Fatalf("mount point after a refused --log-file: %v, %v", des, err)
	}
}

func TestTransientFaultsAreRetried(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(20, 2*8*mib+100)
	w.s3.Put(t, testBucket, "flaky.pdf", data)
	w.s3.Put(t, testBucket, "down.pdf", data[:1000])
	d := w.mount(t, mountOpts{extra: []string{"--read-ahead", "0"}})

	// Two 503s, then a body cut short, then a clean answer.
	faults := []testenv.Fault{{Status: 503}, {Status: 500}, {CutAfter: 1 * mib}}
	var mu sync.Mutex
	w.proxy.SetFault(func(r *http.Request) testenv.Fault {
		if !testenv.IsObjectGET(r) {
			return testenv.Fault{}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(faults) == 0 {
			return testenv.Fault{}
		}
		f := faults[0]
		faults = faults[1:]
		return f
	})
	if got := sha256Of(t, d.path("flaky.pdf")); got != sha256Hex(data) {
		t.Fatal("content differs after retried faults")
	}
	// No truncated chunk made it into the cache: a remount reads it all
	// back from disk with the right bytes.
	w.proxy.SetFault(nil)
	dropPageCache(t)
	if got := sha256Of(t, d.path("flaky.pdf")); got != sha256Hex(data) {
		t.Fatal("cached content differs")
	}

	// A server that keeps failing: the read fails with EIO and a log line.
	w.proxy.SetFault(func(r *http.Request) testenv.Fault {
		if testenv.IsObjectGET(r) {
			return testenv.Fault{Status: 500}
		}
		return testenv.Fault{}
	})
	_, err := os.ReadFile(d.path("down.pdf"))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read from a failing server: %v, want EIO", err)
	}
	if d.logCount("down.pdf", 1) == 0 {
		t.Fatal("no log line names the failing key")
	}
}

func TestMemoryDoesNotGrowWithFileSize(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector inflates RSS; scripts/test.sh runs this test without -race")
	}
	w := newWorld(t)
	// Written straight into the server's directory: quick to make.
	path := filepath.Join(w.s3.Root, testBucket, "huge.pdf")
	testenv.WriteRandomFile(t, path, 30, 1<<30)
	d := w.mount(t, mountOpts{direct: true, cacheSize: "2GiB"})
	if err := catToNull(t, d.path("huge.pdf")); err != nil {
		t.Fatal(err)
	}
	rss := d.peakRSS()
	t.Logf("daemon peak RSS after reading 1 GiB: %d MiB", rss/mib)
	if rss > 100*mib {
		t.Fatalf("daemon peak RSS %d MiB after reading 1 GiB", rss/mib)
	}
}

func TestMemoryWhileSplittingAGiBPDF(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector inflates RSS; scripts/test.sh runs this test without -race")
	}
	requireTools(t, "pdfinfo")
	w := newWorld(t)
	path := filepath.Join(w.s3.Root, testBucket, "huge.pdf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pdfgen.Write(f, pdfgen.Options{Pages: 400, Title: "huge", PadBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d := w.mount(t, mountOpts{direct: true, cacheSize: "3GiB", extra: []string{"--split-memory-limit", "3GiB"}})
	part := filepath.Join(d.path(".parts"), "huge.pdf", "pages-0351-0400.pdf")
	if n := pdfPages(t, part); n != 50 {
		t.Fatalf("%d pages", n)
	}
	rss := d.peakRSS()
	t.Logf("daemon peak RSS while a 1 GiB PDF was split in a worker: %d MiB", rss/mib)
	if rss > 100*mib {
		t.Fatalf("daemon peak RSS %d MiB while splitting a 1 GiB PDF", rss/mib)
	}
	if d.logCount("split worker started", 1) == 0 {
		t.Fatal("the split did not run in a worker process")
	}
}

// SIGTERM while a process holds a file open: the mount point is detached at
// once, and the daemon exits 0 within the grace period instead of waiting
// for the file to be closed.
func TestSIGTERMWithAFileOpen(t *testing.T) {
	w := newWorld(t)
	w.s3.Put(t, testBucket, "a.pdf", []byte("held open"))
	d := w.mount(t, mountOpts{})
	f, err := os.Open(d.path("a.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if el := time.Since(start); el > 12*time.Second {
		t.Fatalf("took %v to stop", el)
	}
	if !strings.Contains(d.stderr.String(), "detached lazily") {
		t.Fatalf("busy mount point not reported:\n%s", d.stderr.String())
	}
}

// SIGTERM while a read waits on a stalled server: the daemon still exits 0
// within its grace period, and the reader gets an error, not a hang.
func TestSIGTERMWithAReadInFlight(t *testing.T) {
	w := newWorld(t)
	w.s3.Put(t, testBucket, "slow.pdf", testenv.RandomBytes(60, 1000))
	d := w.mount(t, mountOpts{})
	w.proxy.SetFault(func(r *http.Request) testenv.Fault {
		if testenv.IsObjectGET(r) {
			return testenv.Fault{Delay: time.Minute}
		}
		return testenv.Fault{}
	})
	reader := testenv.Command(testenv.Tool(t, "cat"), d.path("slow.pdf"))
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	readDone := make(chan error, 1)
	go func() { readDone <- reader.Wait() }()
	// The read is in flight once its GET reached the proxy.
	testenv.WaitFor(t, 10*time.Second, "the read to reach the server", func() bool { return w.proxy.InFlight() > 0 })
	start := time.Now()
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if el := time.Since(start); el > 12*time.Second {
		t.Fatalf("took %v to stop with a read in flight", el)
	}
	select {
	case err := <-readDone:
		if err == nil {
			t.Fatal("the stalled read succeeded")
		}
	case <-time.After(10 * time.Second):
		reader.Process.Kill()
		t.Fatal("the reader still hangs after the daemon exited")
	}
}

// TestSignalDuringStartupCheck: a SIGTERM while the daemon waits on the
// server's answer to its first listing ends it at once, with exit 1 (nothing
// mounted, and not the operator's setup) and one line saying so; it read
// "cannot reach S3 endpoint ...: context canceled", exit 2.
func TestSignalDuringStartupCheck(t *testing.T) {
	testenv.RequireRoot(t)
	asked := make(chan struct{}, 1)
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	t.Cleanup(silent.Close)
	t.Cleanup(silent.CloseClientConnections)
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID=k", "AWS_SECRET_ACCESS_KEY=s", "AWS_PROFILE=")
	d := startDaemon(t, env, "mount", "--endpoint-url", silent.URL, "--force-path-style", "--region", "us-east-1",
		"--cache-dir", t.TempDir(), "s3://docs", t.TempDir())
	select {
	case <-asked:
	case <-d.exited:
		t.Fatalf("exited with %d before asking the server:\n%s", d.exitCode, d.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon never asked the server")
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		t.Fatal("still running 20 s after SIGTERM")
	}
	out := strings.TrimSpace(d.stderr.String())
	if d.exitCode != exitFailure {
		t.Errorf("exit code %d, want %d", d.exitCode, exitFailure)
	}
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, "stopped by a signal before the mount was up") {
		t.Errorf("want one line saying it was stopped, got:\n%s", out)
	}
}
