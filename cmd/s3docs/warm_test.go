package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// execS3docs runs the command in a subprocess (the test binary through
// TestMain), as an operator would, and returns its exit code and outputs.
// Its stderr is a pipe, not a terminal.
func execS3docs(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.Dir = dir
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("s3docs %v: still running after 2 minutes:\n%s", args, errOut.String())
	}
	return exitCodeOf(err), out.String(), errOut.String()
}

// chunkRanges are the GETs that fetch every chunk of an object of size n.
func chunkRanges(key string, n int64) []string {
	var out []string
	for off := int64(0); off < n; off += 8 * mib {
		out = append(out, fmt.Sprintf("/%s/%s bytes=%d-%d", testBucket, key, off, min(off+8*mib, n)-1))
	}
	return out
}

func TestWarm(t *testing.T) {
	w := newWorld(t)
	keys := []string{"warm/a.pdf", "warm/b.pdf", "warm/sub/c.pdf"}
	data := map[string][]byte{}
	for i, k := range keys {
		data[k] = testenv.RandomBytes(int64(40+i), 20*mib)
		w.s3.Put(t, testBucket, k, data[k])
	}
	w.s3.Put(t, testBucket, "cold/d.pdf", testenv.RandomBytes(50, mib))
	d := w.mount(t, mountOpts{})

	w.proxy.Reset()
	code, out, errOut := execS3docs(t, "", "warm", "--mount", d.mountpoint, "warm")
	if code != 0 {
		t.Fatalf("exit code %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !regexp.MustCompile(`^warm: warmed 3 files, 60\.0 MiB in \S+ \(\S+ \S+/s\)\n$`).MatchString(out) {
		t.Fatalf("summary: %q", out)
	}
	if strings.ContainsAny(errOut, "\r\x1b") {
		t.Fatalf("terminal control characters in output to a pipe: %q", errOut)
	}

	w.proxy.WaitIdle(10 * time.Second)
	byRange := rangedGETs(t, w.proxy)
	for _, k := range keys {
		for _, rng := range chunkRanges(k, 20*mib) {
			if byRange[rng] == 0 {
				t.Errorf("warm made no GET %s; it made %v", rng, byRange)
			}
		}
	}
	for rng := range byRange {
		if strings.Contains(rng, "cold/") {
			t.Errorf("warm of warm/ fetched %s", rng)
		}
	}

	// Through the mount again, with the page cache gone: the daemon's disk
	// cache has it all.
	dropPageCache(t)
	w.proxy.Reset()
	for _, k := range keys {
		if got := sha256Of(t, d.path(k)); got != sha256Hex(data[k]) {
			t.Fatalf("%s: content differs", k)
		}
	}
	if n := len(w.proxy.GETs()); n != 0 {
		t.Fatalf("reading warmed files made %d GETs", n)
	}

	// An absolute path and a path relative to the current directory, without
	// --mount; already cached, so no GET.
	code, out, errOut = execS3docs(t, d.path("warm"), "warm", d.path("warm/a.pdf"), "sub/c.pdf")
	if code != 0 || !strings.HasPrefix(out, "warm: warmed 2 files, 40.0 MiB") {
		t.Fatalf("exit code %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if n := len(w.proxy.GETs()); n != 0 {
		t.Fatalf("warming cached files made %d GETs", n)
	}

	// Bad PATHs inside and outside the mount are refused before any read.
	outside := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--mount", d.mountpoint, "nope.pdf"}, "no such file or directory"},
		{[]string{"--mount", d.mountpoint, "../../.."}, "is not inside an s3docs mount"},
		{[]string{"--mount", d.mountpoint, "warm", outside}, outside + " is not inside an s3docs mount"},
		{[]string{"--mount", outside, "warm"}, "--mount: " + outside + " is not inside an s3docs mount"},
	} {
		code, out, errOut := execS3docs(t, "", append([]string{"warm"}, c.args...)...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("warm %v: exit code %d, stdout %q, stderr %q; want 2 and one line with %q",
				c.args, code, out, errOut, c.want)
		}
	}
}

func TestWarmReportsFailuresAndProgress(t *testing.T) {
	w := newWorld(t)
	good := []string{"docs/1.pdf", "docs/3.pdf"}
	for i, k := range good {
		w.s3.Put(t, testBucket, k, testenv.RandomBytes(int64(60+i), 24*mib))
	}
	w.s3.Put(t, testBucket, "docs/2-bad.pdf", testenv.RandomBytes(62, mib))
	d := w.mount(t, mountOpts{})
	// Slow GETs make the run outlast a progress interval; one object's GETs
	// fail for good.
	w.proxy.SetFault(func(r *http.Request) testenv.Fault {
		switch {
		case !testenv.IsObjectGET(r):
			return testenv.Fault{}
		case strings.Contains(r.URL.Path, "bad"):
			return testenv.Fault{Status: http.StatusForbidden}
		}
		return testenv.Fault{Delay: 1200 * time.Millisecond}
	})
	w.proxy.Reset()
	code, out, errOut := execS3docs(t, "", "warm", "--jobs", "1", "--mount", d.mountpoint, "docs")
	if code != 1 {
		t.Fatalf("exit code %d, want 1\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !regexp.MustCompile(`^warm: warmed 2 of 3 files, 48\.0 MiB in \S+ \(\S+ \S+/s\); 1 failed\n$`).MatchString(out) {
		t.Fatalf("summary: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	var errLines []string
	progress := regexp.MustCompile(`^warm: \S+ \S+ of 4[89]\.0 MiB \(\d+%\), \d+(\.\d)? \S+/s, ETA \S+$`)
	progressLines := 0
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "s3docs: warm: "):
			errLines = append(errLines, l)
		case progress.MatchString(l):
			progressLines++
		default:
			t.Errorf("unexpected output line %q", l)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], d.path("docs/2-bad.pdf")) {
		t.Fatalf("want one error line naming the bad file, got %q", errLines)
	}
	if progressLines == 0 {
		t.Fatalf("no periodic progress line in %q", errOut)
	}
	// The failure did not stop the files after it.
	w.proxy.WaitIdle(10 * time.Second)
	byRange := rangedGETs(t, w.proxy)
	for _, k := range good {
		for _, rng := range chunkRanges(k, 24*mib) {
			if byRange[rng] == 0 {
				t.Errorf("no GET %s", rng)
			}
		}
	}
}

func TestWarmUsage(t *testing.T) {
	outside := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"warm", "--help"}, 0, "Usage: s3docs warm"},
		{[]string{"warm"}, 2, "no PATH given"},
		{[]string{"warm", "--jobs", "0", outside}, 2, "--jobs 0"},
		{[]string{"warm", "--no-such-flag", outside}, 2, "no-such-flag"},
		{[]string{"warm", outside}, 2, outside + " is not inside an s3docs mount"},
		{[]string{"warm", "/proc/self"}, 2, "is not inside an s3docs mount"},
		{[]string{"warm", "--mount", outside, "x"}, 2, "--mount: " + outside + " is not inside an s3docs mount"},
	} {
		code, out, errOut := execS3docs(t, "", c.args...)
		checkCLIResult(t, c.args, code, out, errOut, c.code, c.want, "s3docs: warm: ")
	}
}

func TestParseMountTable(t *testing.T) {
	const table = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:22 / /proc rw,nosuid shared:12 - proc proc rw
40 22 0:35 / /mnt/s3docs rw,nosuid,nodev,relatime shared:20 - fuse.s3docs s3://docs rw,user_id=0,group_id=0
41 40 0:36 / /mnt/s3docs/inner rw - tmpfs tmpfs rw
42 22 0:37 / /mnt/two\040words rw - fuse.s3docs s3://docs rw
43 22 0:38 / /mnt/stacked rw - tmpfs tmpfs rw
44 43 0:39 / /mnt/stacked rw - fuse.s3docs s3://docs rw
`
	mounts, err := parseMountTable(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 7 || mounts[2] != (mountEntry{"/mnt/s3docs", "fuse.s3docs"}) {
		t.Fatalf("parsed %+v", mounts)
	}
	for _, c := range []struct {
		path, dir, fsType string
	}{
		{"/", "/", "ext4"},
		{"/etc/passwd", "/", "ext4"},
		{"/mnt/s3docs", "/mnt/s3docs", "fuse.s3docs"},
		{"/mnt/s3docs/cases/a.pdf", "/mnt/s3docs", "fuse.s3docs"},
		{"/mnt/s3docsX/a.pdf", "/", "ext4"},
		{"/mnt/s3docs/inner/x", "/mnt/s3docs/inner", "tmpfs"},
		{"/mnt/two words/a.pdf", "/mnt/two words", "fuse.s3docs"},
		{"/mnt/stacked/a.pdf", "/mnt/stacked", "fuse.s3docs"}, // the later mount is on top
		{"/proc/self", "/proc", "proc"},
	} {
		m, ok := mountOf(mounts, c.path)
		if !ok || m.dir != c.dir || m.fsType != c.fsType {
			t.Errorf("mountOf(%q) = %+v, %v; want %s %s", c.path, m, ok, c.dir, c.fsType)
		}
	}
	if _, ok := mountOf(mounts[1:2], "/etc"); ok {
		t.Error("a path under no mount point found one")
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, c := range []struct {
		args  []string
		mount string
		paths []string
	}{
		{[]string{"a", "b"}, "", []string{"a", "b"}},
		{[]string{"--mount", "/m", "a"}, "/m", []string{"a"}},
		{[]string{"a", "--mount", "/m", "b"}, "/m", []string{"a", "b"}},
		{[]string{"a", "--mount=/m"}, "/m", []string{"a"}},
		{[]string{"--", "--mount", "-x"}, "", []string{"--mount", "-x"}},
		{[]string{"a", "--", "-x"}, "", []string{"a", "-x"}},
	} {
		fset := flag.NewFlagSet("t", flag.ContinueOnError)
		mount := fset.String("mount", "", "")
		paths, err := parseInterspersed(fset, c.args)
		if err != nil || *mount != c.mount || !slices.Equal(paths, c.paths) {
			t.Errorf("%q: mount %q paths %q err %v; want %q %q", c.args, *mount, paths, err, c.mount, c.paths)
		}
	}
}

func TestProgressLine(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, 3 << 30, 0, "0 B of 3.0 GiB (0%), 0 B/s, ETA unknown"},
		{1288490188, 3650722201, 3 * time.Second, "1.2 GiB of 3.4 GiB (35%), 409.6 MiB/s, ETA 6s"},
		{100 * mib, 100 * mib, 2 * time.Second, "100.0 MiB of 100.0 MiB (100%), 50.0 MiB/s, ETA 0s"},
		{10 * mib, 1 << 40, time.Second, "10.0 MiB of 1.0 TiB (0%), 10.0 MiB/s, ETA 29h7m37s"},
		{2000, 1000, time.Second, "2.0 KiB of 1000 B (100%), 2.0 KiB/s, ETA 0s"}, // a file grew since listed
	} {
		if got := progressLine(c.done, c.total, c.elapsed); got != c.want {
			t.Errorf("progressLine(%d, %d, %v) = %q, want %q", c.done, c.total, c.elapsed, got, c.want)
		}
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		20 * mib: "20.0 MiB", 1 << 50: "1.0 PiB", 1 << 62: "4.0 EiB"} {
		if got := iecBytes(n); got != want {
			t.Errorf("iecBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
