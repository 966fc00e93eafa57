package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/pdfgen"
	"s3docs/internal/testenv"
)

// nobody is the user the access tests run clients as.
const nobody = "65534"

// publicMountpoint is an empty directory that every user can reach (the
// tests' umask makes t.TempDir private). It is removed after the daemon
// that mounts on it has stopped.
func publicMountpoint(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "s3docs-access-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	mp := filepath.Join(base, "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{base, mp} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return mp
}

// asUser runs a command as uid 65534 with the given supplementary groups
// (none: --clear-groups), and returns its combined output and error.
func asUser(t *testing.T, groups string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pre := []string{"--reuid=" + nobody, "--regid=" + nobody}
	if groups == "" {
		pre = append(pre, "--clear-groups")
	} else {
		pre = append(pre, "--groups="+groups)
	}
	out, err := exec.CommandContext(ctx, "setpriv", append(pre, args...)...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("setpriv %v hung", args)
	}
	return string(out), err
}

func requireSetpriv(t *testing.T) {
	t.Helper()
	testenv.Tool(t, "setpriv")
}

// accessTree puts a PDF and a text file into the bucket.
func accessTree(t *testing.T, w *world) {
	w.s3.Put(t, testBucket, "cases/brief.pdf", pdfgen.Bytes(pdfgen.Options{Pages: 3, Title: "brief"}))
	w.s3.Put(t, testBucket, "cases/notes.txt", []byte("notes\n"))
}

// TestOtherUsersLockedOutWithoutAllowOther: without --allow-other only the
// mounting user (root) gets in; another user gets EACCES for cat, ls and
// stat, on files, directories and .parts alike.
func TestOtherUsersLockedOutWithoutAllowOther(t *testing.T) {
	requireSetpriv(t)
	w := newWorld(t)
	accessTree(t, w)
	d := w.mount(t, mountOpts{mountpoint: publicMountpoint(t)})
	targets := map[string][]string{
		"cat file":  {"cat", d.path("cases/notes.txt")},
		"cat part":  {"cat", d.path(".parts/cases/brief.pdf/pages-1-1.pdf")},
		"ls root":   {"ls", d.mountpoint},
		"ls dir":    {"ls", d.path("cases")},
		"ls .parts": {"ls", d.path(".parts/cases/brief.pdf")},
		"stat file": {"stat", d.path("cases/notes.txt")},
		"stat root": {"stat", d.mountpoint},
	}
	for name, args := range targets {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Errorf("root: %s: %v: %s", name, err, out)
		}
		out, err := asUser(t, "", args...)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid %s: %s: %v: %q; want Permission denied", nobody, name, err, out)
		}
		t.Logf("uid %s without allow_other: %s → %v: %s", nobody, name, err, strings.TrimSpace(out))
	}
}

// TestAllowOtherAppliesOwnerAndModes: with --allow-other, --uid, --gid,
// --file-mode and --dir-mode are what stat shows, and the kernel grants
// access by them: uid 65534 in the group reads (files, .parts, the xattr),
// uid 65534 outside it does not.
func TestAllowOtherAppliesOwnerAndModes(t *testing.T) {
	requireSetpriv(t)
	w := newWorld(t)
	accessTree(t, w)
	const gid = 4242
	d := w.mount(t, mountOpts{mountpoint: publicMountpoint(t),
		extra: []string{"--allow-other", "--uid", "0", "--gid", "4242", "--file-mode", "0440", "--dir-mode", "0550"}})
	for rel, want := range map[string]os.FileMode{
		"":                                     os.ModeDir | 0o550,
		"cases":                                os.ModeDir | 0o550,
		"cases/notes.txt":                      0o440,
		".parts":                               os.ModeDir | 0o550,
		".parts/cases/brief.pdf":               os.ModeDir | 0o550,
		".parts/cases/brief.pdf/pages-1-2.pdf": 0o440,
	} {
		st, err := os.Stat(d.path(rel))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode() != want || sys.Uid != 0 || sys.Gid != gid {
			t.Errorf("%q: mode %v uid %d gid %d; want %v 0 %d", rel, st.Mode(), sys.Uid, sys.Gid, want, gid)
		}
	}
	allowed := map[string][]string{
		"cat file":  {"cat", d.path("cases/notes.txt")},
		"cat part":  {"cat", d.path(".parts/cases/brief.pdf/pages-2-3.pdf")},
		"ls root":   {"ls", d.mountpoint},
		"ls .parts": {"ls", d.path(".parts/cases/brief.pdf")},
		"stat file": {"stat", d.path("cases/notes.txt")},
		"getfattr":  {"getfattr", "--absolute-names", "--only-values", "-n", "user.s3docs.pages", d.path("cases/brief.pdf")},
	}
	for name, args := range allowed {
		out, err := asUser(t, "4242", args...)
		if err != nil {
			t.Errorf("uid %s in group %d: %s: %v: %s", nobody, gid, name, err, out)
		}
		switch name {
		case "cat file":
			if out != "notes\n" {
				t.Errorf("cat as uid %s: %q", nobody, out)
			}
		case "getfattr":
			if out != "3" {
				t.Errorf("page count xattr as uid %s: %q", nobody, out)
			}
		}
		out, err = asUser(t, "", args...)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid %s outside group %d: %s: %v: %q; want Permission denied", nobody, gid, name, err, out)
		}
	}
	// Mode 0440: even the group cannot write, and the mount is read-only
	// for root anyway.
	if out, err := asUser(t, "4242", "sh", "-c", "echo x >> "+d.path("cases/notes.txt")); err == nil || !strings.Contains(out, "ermission denied") && !strings.Contains(out, "Read-only") {
		t.Errorf("append as uid %s: %v: %q", nobody, err, out)
	}
}

// TestAllowOtherDefaultModes: with --allow-other and the default modes
// (files 0444, directories 0555) every user reads, no one writes.
func TestAllowOtherDefaultModes(t *testing.T) {
	requireSetpriv(t)
	w := newWorld(t)
	accessTree(t, w)
	d := w.mount(t, mountOpts{mountpoint: publicMountpoint(t), extra: []string{"--allow-other"}})
	out, err := asUser(t, "", "cat", d.path("cases/notes.txt"))
	if err != nil || out != "notes\n" {
		t.Fatalf("cat as uid %s: %v: %q", nobody, err, out)
	}
	out, err = asUser(t, "", "touch", d.path("cases/notes.txt"))
	if err == nil || !strings.Contains(out, "Read-only file system") && !strings.Contains(out, "Permission denied") {
		t.Fatalf("touch as uid %s: %v: %q", nobody, err, out)
	}
	t.Logf("touch as uid %s: %s", nobody, strings.TrimSpace(out))
}
