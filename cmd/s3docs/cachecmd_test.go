package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"s3docs/chunkcache"
	"s3docs/internal/testenv"
)

// runInProcess runs the command in this process: status and clear need no
// process of their own, and the daemon they look at is one anyway.
func runInProcess(args ...string) (code int, stdout, stderr string) {
	var out, errOut strings.Builder
	code = run(args, &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

func wantLines(t *testing.T, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(`(?m)^` + p + `$`).MatchString(out) {
			t.Errorf("no line matching %q in:\n%s", p, out)
		}
	}
}

func TestCacheStatusAndClear(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(70, 20*mib)
	w.s3.Put(t, testBucket, "a.pdf", data)
	cacheDir := t.TempDir()
	d := w.mount(t, mountOpts{cacheDir: cacheDir})
	if got := sha256Of(t, d.path("a.pdf")); got != sha256Hex(data) {
		t.Fatal("content differs")
	}
	w.proxy.WaitIdle(10 * time.Second)

	// While mounted: in use, and the bound read from the daemon.
	code, out, errOut := runInProcess("cache", "status", "--cache-dir", cacheDir)
	if code != 0 {
		t.Fatalf("status: exit code %d: %s", code, errOut)
	}
	pid := d.cmd.Process.Pid
	wantLines(t, out,
		`entries: +1 \(1 object files, 0 blobs\)`,
		`bytes: +20\.0 MiB \(20975616\)`, // its chunks, and a block of its map
		fmt.Sprintf(`in use: +yes, by process %d`, pid),
		fmt.Sprintf(`bound: +1GiB \(--cache-size of process %d\)`, pid))

	code, out, errOut = runInProcess("cache", "clear", "--cache-dir", cacheDir)
	if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 ||
		!strings.Contains(errOut, "in use") || !strings.Contains(errOut, "unmount it first") {
		t.Fatalf("clear while mounted: exit code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if st, err := chunkcache.ReadStatus(cacheDir); err != nil || st.Entries != 1 {
		t.Fatalf("a refused clear changed the cache: %+v, %v", st, err)
	}

	if code := d.stop(); code != 0 {
		t.Fatalf("daemon exit code %d", code)
	}
	code, out, errOut = runInProcess("cache", "status", "--cache-dir", cacheDir)
	if code != 0 {
		t.Fatalf("status: exit code %d: %s", code, errOut)
	}
	wantLines(t, out,
		"cache dir: +"+regexp.QuoteMeta(cacheDir),
		`entries: +1 \(.*\)`,
		`bytes: +20\.0 MiB \(20975616\)`,
		`temporary: +0 files, 0 B .*`,
		`invalid: +0 files, 0 B .*`,
		`in use: +no`,
		`bound: +set by --cache-size of the daemon`)

	code, out, errOut = runInProcess("cache", "clear", "--cache-dir", cacheDir)
	if code != 0 || errOut != "" {
		t.Fatalf("clear: exit code %d, stderr %q", code, errOut)
	}
	wantLines(t, out, `cache clear: removed 1 entries \(20\.0 MiB\), 0 temporary and 0 invalid files from .*`)
	_, out, _ = runInProcess("cache", "status", "--cache-dir", cacheDir)
	wantLines(t, out, `entries: +0 \(.*\)`, `bytes: +0 B \(0\)`)

	// A daemon starts on the cleared directory and fetches again.
	d2 := w.mount(t, mountOpts{cacheDir: cacheDir})
	w.proxy.Reset()
	if got := sha256Of(t, d2.path("a.pdf")); got != sha256Hex(data) {
		t.Fatal("content differs after clear")
	}
	w.proxy.WaitIdle(10 * time.Second)
	if n := len(rangedGETs(t, w.proxy)); n != 3 {
		t.Fatalf("%d chunk GETs after clear, want 3", n)
	}
}

// TestCacheCommandLocally needs no mount: a Cache opened in this process
// holds the lock as a daemon would.
func TestCacheCommandLocally(t *testing.T) {
	dir := t.TempDir()
	c, err := chunkcache.Open(chunkcache.Options{MaxConcurrentGets: 16, ReadTimeout: time.Minute, Dir: dir, MaxBytes: 1 << 20, ChunkSize: 64 << 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A blob of ours of the wrong size (deleted at the next start).
	os.WriteFile(filepath.Join(dir, "blobs", fmt.Sprintf("%040x-9-00000000", 1)), []byte("12345"), 0o600)

	code, out, errOut := runInProcess("cache", "status", "--cache-dir", dir)
	if code != 0 {
		t.Fatalf("status: exit code %d: %s", code, errOut)
	}
	// The test binary was not started as "s3docs mount": no bound to read.
	wantLines(t, out,
		`entries: +0 \(.*\)`,
		`invalid: +1 files, 4\.0 KiB .*`,
		fmt.Sprintf(`in use: +yes, by process %d`, os.Getpid()),
		`bound: +set by --cache-size of the daemon`)
	if code, _, errOut := runInProcess("cache", "clear", "--cache-dir", dir); code != 2 || !strings.Contains(errOut, "in use") {
		t.Fatalf("clear while open: exit code %d, stderr %q", code, errOut)
	}
	c.Close()
	// A file that is not s3docs's: status says so, clear refuses and
	// deletes nothing.
	junk := filepath.Join(dir, "objects", "junk")
	os.WriteFile(junk, []byte("12345"), 0o600)
	code, out, errOut = runInProcess("cache", "status", "--cache-dir", dir)
	if code != 0 {
		t.Fatalf("status: exit code %d: %s", code, errOut)
	}
	wantLines(t, out, `foreign: +1 files or directories not made by s3docs, such as objects/junk: .*`)
	args := []string{"cache", "clear", "--cache-dir", dir}
	code, out, errOut = runInProcess(args...)
	checkCLIResult(t, args, code, out, errOut, 2, "holds files that are not s3docs's (objects/junk)", "s3docs: cache clear: ")
	if _, err := os.Stat(junk); err != nil {
		t.Fatalf("clear deleted a file that is not s3docs's: %v", err)
	}
	os.Remove(junk)
	if code, out, errOut := runInProcess("cache", "clear", "--cache-dir", dir); code != 0 ||
		!strings.Contains(out, "removed 0 entries (0 B), 0 temporary and 1 invalid files") {
		t.Fatalf("clear: exit code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestCacheUsage(t *testing.T) {
	notCache := t.TempDir()
	missing := filepath.Join(notCache, "nope")
	// A typo naming a file is the operator's to fix, as it is for mount (2).
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cache", "--help"}, 0, "s3docs cache status"},
		{[]string{"cache", "status", "--help"}, 0, "s3docs cache clear"},
		{[]string{"cache"}, 2, "missing subcommand"},
		{[]string{"cache", "stats"}, 2, `unknown subcommand "stats"`},
		{[]string{"cache", "status", "--bogus"}, 2, "bogus"},
		{[]string{"cache", "status", "--cache-dir", notCache, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"cache", "status", "--cache-dir", missing}, 2, missing + " does not exist"},
		{[]string{"cache", "clear", "--cache-dir", missing}, 2, missing + " does not exist"},
		{[]string{"cache", "status", "--cache-dir", notCache}, 2, "not an s3docs cache directory"},
		{[]string{"cache", "clear", "--cache-dir", notCache}, 2, "not an s3docs cache directory"},
		{[]string{"cache", "status", "--cache-dir", file}, 2, file + " is not a directory"},
		{[]string{"cache", "clear", "--cache-dir", file}, 2, file + " is not a directory"},
	} {
		code, out, errOut := runInProcess(c.args...)
		checkCLIResult(t, c.args, code, out, errOut, c.code, c.want, "s3docs: cache")
	}
}
