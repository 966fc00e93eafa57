package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// The operator's mistakes of issue 14 (findings 3, 4, 6 and 8), each on a
// real mount.

// mountRefused starts `s3docs mount` with the world's server and the given
// cache directory and mount point, and wants it to exit 2 with one line
// naming want.
func mountRefused(t *testing.T, w *world, cacheDir, mp, want string) {
	t.Helper()
	args := []string{"mount", "--endpoint-url", w.proxy.URL(), "--force-path-style", "--region", "us-east-1",
		"--cache-dir", cacheDir, "s3://" + testBucket, mp}
	d := startDaemon(t, w.s3.Env(), args...)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		syscall.Unmount(mp, syscall.MNT_DETACH)
		t.Fatalf("%v: still running after 20s", args)
	}
	out := strings.TrimSpace(d.stderr.String())
	if d.exitCode != 2 || strings.Count(out, "\n") != 0 || !strings.Contains(out, want) {
		t.Fatalf("mount with cache dir %s on %s: exit code %d, output %q; want exit 2 and one line with %q",
			cacheDir, mp, d.exitCode, out, want)
	}
}

// Finding 3: the cache directory deleted under a running daemon. Reads of
// uncached and of formerly cached files go on, exact; the directory is
// made again and locked, so a second daemon on it is refused; the daemon
// says so once.
func TestCacheDirDeletedUnderDaemon(t *testing.T) {
	w := newWorld(t)
	sums := map[string]string{
		"a.pdf": putRandom(t, w, "a.pdf", 300, 12*mib+1),
		"b.pdf": putRandom(t, w, "b.pdf", 301, 9*mib+2),
	}
	cacheDir := filepath.Join(t.TempDir(), "cache")
	d := w.mount(t, mountOpts{cacheDir: cacheDir})
	if got := sha256Of(t, d.path("a.pdf")); got != sums["a.pdf"] {
		t.Fatal("a.pdf differs")
	}
	if err := os.RemoveAll(cacheDir); err != nil {
		t.Fatal(err)
	}
	dropPageCache(t)
	for _, key := range []string{"b.pdf", "a.pdf"} { // never cached, then cached in the deleted directory
		if r := timedSum(d.path(key), time.Minute); r.err != nil || r.sum != sums[key] {
			t.Fatalf("%s after the cache directory was deleted: %v (%s), sha256 %s", key, r.err, r.msg, r.sum)
		}
	}
	for _, sub := range []string{"objects", "blobs", "tmp"} {
		if info, err := os.Stat(filepath.Join(cacheDir, sub)); err != nil || !info.IsDir() {
			t.Fatalf("%s/ of the deleted cache directory not made again: %v", sub, err)
		}
	}
	if n := d.logCount("made it again", 1); n != 1 {
		t.Errorf("the daemon said %d times that it made the directory again, want once", n)
	}
	mountRefused(t, w, cacheDir, t.TempDir(), "in use by another s3docs process")
	// And what it holds now serves a re-read with no GET.
	w.proxy.WaitIdle(10 * time.Second)
	dropPageCache(t)
	w.proxy.Reset()
	if got := sha256Of(t, d.path("b.pdf")); got != sums["b.pdf"] {
		t.Fatal("b.pdf re-read differs")
	}
	if n := len(w.proxy.GETs()); n != 0 {
		t.Errorf("re-read from the directory made again: %d GETs", n)
	}
}

// Finding 4: --cache-dir pointed at a private directory that holds the
// user's files (in tmp/, in chunks/, beside them): refused with one line,
// and nothing in it deleted or changed. A cache of s3docs's own with
// leftovers of an interrupted run is used, and only those leftovers go.
func TestCacheDirWithOtherFilesRefused(t *testing.T) {
	w := newWorld(t)
	sum := putRandom(t, w, "a.pdf", 310, 9*mib)
	home := filepath.Join(t.TempDir(), "home")
	for path, content := range map[string]string{
		".bashrc":            "alias ll='ls -l'",
		"tmp/draft.txt":      "keep me",
		"tmp/old/notes.txt":  "keep me too",
		"chunks/recipes.txt": "and me",
	} {
		path = filepath.Join(home, path)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(home, 0o700)
	before := treeOf(t, home)
	mp := t.TempDir()
	mountRefused(t, w, home, mp, "holds files that are not s3docs's")
	if after := treeOf(t, home); after != before {
		t.Fatalf("a refused cache directory was changed:\nbefore %s\nafter  %s", before, after)
	}

	// s3docs's own cache, with what a killed daemon leaves: used, and
	// cleaned of exactly that.
	cacheDir := filepath.Join(t.TempDir(), "cache")
	d := w.mount(t, mountOpts{cacheDir: cacheDir})
	if got := sha256Of(t, d.path("a.pdf")); got != sum {
		t.Fatal("a.pdf differs")
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	leftovers := []string{
		filepath.Join(cacheDir, "tmp", strings.Repeat("ab", 20)+".12345"),
		filepath.Join(cacheDir, "tmp", "blob.678"),
		filepath.Join(cacheDir, "blobs", strings.Repeat("cd", 20)+"-100-0000abcd"), // size differs from its name
		filepath.Join(cacheDir, "objects", strings.Repeat("ef", 20)),               // an object's file without its map
		// the per-chunk layout of earlier versions: converted by deletion
		filepath.Join(cacheDir, "chunks", strings.Repeat("12", 20)+"-7-0000abcd"),
	}
	os.Mkdir(filepath.Join(cacheDir, "chunks"), 0o700)
	for _, p := range leftovers {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d2 := w.mountAt(t, mp, mountOpts{cacheDir: cacheDir})
	for _, p := range append(leftovers, filepath.Join(cacheDir, "chunks")) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("leftover %s survived the start: %v", p, err)
		}
	}
	if n := d2.logCount("cache layout of an earlier version", 1); n != 1 {
		t.Errorf("the removal of the per-chunk layout was logged %d times, want once", n)
	}
	w.proxy.Reset()
	if got := sha256Of(t, d2.path("a.pdf")); got != sum {
		t.Fatal("a.pdf differs after the restart")
	}
	if n := len(w.proxy.GETs()); n != 0 {
		t.Errorf("the restart on s3docs's own cache made %d GETs", n)
	}
}

// treeOf lists every path under dir with its size and mode.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s:%v:%d ", strings.TrimPrefix(path, dir), info.Mode(), info.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Finding 6: a cache directory inside the mount point (directly, or
// through a symlink), or a mount point inside the cache directory, is
// refused at start, and the mount point is left empty for the next mount.
func TestCacheDirInsideMountPointRefused(t *testing.T) {
	w := newWorld(t)
	sum := putRandom(t, w, "a.pdf", 320, 3*mib)
	mp := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(mp, link); err != nil {
		t.Fatal(err)
	}
	mountRefused(t, w, filepath.Join(mp, "cache"), mp, "is inside the mount point")
	mountRefused(t, w, filepath.Join(link, "cache"), mp, "is inside the mount point")
	mountRefused(t, w, mp, mp, "is inside the mount point")
	cacheDir := t.TempDir()
	inner := filepath.Join(cacheDir, "mnt")
	if err := os.Mkdir(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	mountRefused(t, w, cacheDir, inner, "is inside the cache directory")
	if names, err := os.ReadDir(mp); err != nil || len(names) != 0 {
		t.Fatalf("mount point after the refusals: %v, %v; want it empty", names, err)
	}
	d := w.mountAt(t, mp, mountOpts{cacheDir: filepath.Join(t.TempDir(), "cache")})
	if got := sha256Of(t, d.path("a.pdf")); got != sum {
		t.Fatal("a.pdf differs")
	}
}

// Finding 8: after kill -9, a new mount on the same mount point says the
// mount is dead and how to free it (stat of a dead FUSE mount's root
// succeeds on this kernel, so it used to say "already mounted"); the fix
// it prints works.
func TestDeadMountPointNamed(t *testing.T) {
	w := newWorld(t)
	sum := putRandom(t, w, "a.pdf", 330, 3*mib)
	mp := t.TempDir()
	cacheDir := filepath.Join(t.TempDir(), "cache")
	d := w.mountAt(t, mp, mountOpts{cacheDir: cacheDir})
	if got := sha256Of(t, d.path("a.pdf")); got != sum {
		t.Fatal("a.pdf differs")
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	t.Cleanup(func() { syscall.Unmount(mp, syscall.MNT_DETACH) })
	if _, err := os.Stat(mp); err != nil {
		t.Logf("stat of the dead mount point: %v", err)
	} else {
		t.Logf("stat of the dead mount point succeeds")
	}
	mountRefused(t, w, cacheDir, mp, "is a dead FUSE mount (its daemon is gone); run: fusermount3 -u "+mp)
	if out, err := testenv.Command(testenv.Tool(t, "fusermount3"), "-u", mp).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u %s: %v: %s", mp, err, out)
	}
	d2 := w.mountAt(t, mp, mountOpts{cacheDir: cacheDir})
	if got := sha256Of(t, d2.path("a.pdf")); got != sum {
		t.Fatal("a.pdf differs after the remount")
	}
	// A live mount is still "already mounted".
	mountRefused(t, w, filepath.Join(t.TempDir(), "cache"), mp, "is already mounted")
}
