package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// TestInstallScript runs scripts/install.sh as README tells a worker's
// operator to, into a DESTDIR under umask 022, and checks what it put
// where: the binary, the unit (which systemd-analyze accepts), the mount(8)
// helper and a private /etc/default/s3docs. Then the installed helper, in a
// private mount namespace, mounts with the installed binary through `mount
// -t fuse.s3docs`, a read gives the object's bytes, and umount stops it.
// systemd is not PID 1 here, so `systemctl enable --now` itself cannot run.
func TestInstallScript(t *testing.T) {
	testenv.RequireFUSE(t)
	testenv.Tool(t, "systemd-analyze")
	dest := t.TempDir()
	old := syscall.Umask(0o022)
	cmd := testenv.Command("bash", "../../scripts/install.sh")
	cmd.Env = append(cmd.Env, "DESTDIR="+dest)
	out, err := cmd.CombinedOutput()
	syscall.Umask(old)
	if err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "systemctl enable --now s3docs") {
		t.Errorf("install.sh does not say what to run next:\n%s", out)
	}
	bin := filepath.Join(dest, "usr/local/bin/s3docs")
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{bin, 0o755},
		{filepath.Join(dest, "etc/systemd/system/s3docs.service"), 0o644},
		{filepath.Join(dest, "sbin/mount.fuse.s3docs"), 0o755},
		// It will hold credentials.
		{filepath.Join(dest, "etc/default/s3docs"), 0o600},
	} {
		info, err := os.Stat(f.path)
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if info.Mode().Perm() != f.mode {
			t.Errorf("%s has mode %v, want %v", f.path, info.Mode().Perm(), f.mode)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	defaults, err := os.ReadFile(filepath.Join(dest, "etc/default/s3docs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"S3DOCS_SOURCE=", "S3DOCS_ARGS=", "AWS_ACCESS_KEY_ID="} {
		if !strings.Contains(string(defaults), want) {
			t.Errorf("/etc/default/s3docs lacks %s:\n%s", want, defaults)
		}
	}

	// The unit as installed, pointed at the installed binary.
	unit, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/s3docs.service"))
	if err != nil {
		t.Fatal(err)
	}
	unitPath := filepath.Join(t.TempDir(), "s3docs.service")
	if err := os.WriteFile(unitPath, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/s3docs", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := testenv.Command(testenv.Tool(t, "systemd-analyze"), "verify", unitPath).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Fatalf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
	}

	// The installed helper and binary, through mount(8).
	w := newWorld(t)
	data := testenv.RandomBytes(12, 3*mib+5)
	w.s3.Put(t, testBucket, "cases/brief.pdf", data)
	ns := newHelperNSWith(t, filepath.Join(dest, "sbin/mount.fuse.s3docs"))
	env := append(w.s3.Env(), "S3DOCS_BIN="+bin)
	mp := t.TempDir()
	t.Cleanup(func() { stopDaemonsOf(t, mp) })
	opts := "_netdev,endpoint_url=" + w.s3.Endpoint + ",force_path_style,region=us-east-1,cache_dir=" + filepath.Join(t.TempDir(), "cache")
	if out, code := ns.run(t, env, "mount", "-t", "fuse.s3docs", "-o", opts, testBucket, mp); code != 0 {
		t.Fatalf("mount with the installed helper and binary: exit %d\n%s", code, out)
	}
	pid := oneDaemon(t, mp)
	got, err := ns.command(env, "cat", filepath.Join(mp, "cases/brief.pdf")).Output()
	if err != nil || sha256Hex(got) != sha256Hex(data) {
		t.Fatalf("cat through the installed daemon's mount: %v, %d bytes, want %d exact", err, len(got), len(data))
	}
	if out, code := ns.run(t, env, "umount", mp); code != 0 {
		t.Fatalf("umount: exit %d: %s", code, out)
	}
	if !processGone(pid, 15*time.Second) {
		t.Fatalf("installed daemon %d still running 15s after umount", pid)
	}
}
