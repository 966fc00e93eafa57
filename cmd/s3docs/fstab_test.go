package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// helperScript is the shipped mount(8) helper.
func helperScript(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../scripts/mount.fuse.s3docs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeExecutable writes a shell script with mode 0755.
func writeExecutable(t *testing.T, path, script string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// fakeS3docs prints how it was called, one line per argument, so a test
// sees exactly what the helper would run.
const fakeS3docs = `echo "bin=$0"; for a in "$@"; do echo "arg=$a"; done` + "\n"

func argLines(bin string, args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "bin=%s\n", bin)
	for _, a := range args {
		fmt.Fprintf(&b, "arg=%s\n", a)
	}
	return b.String()
}

// TestMountHelperArgs checks the translation from mount(8)'s helper command
// line (SOURCE MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTS] [-t TYPE] [-N NS],
// see libmount's exec_helper) to `s3docs mount --detach`.
func TestMountHelperArgs(t *testing.T) {
	script := helperScript(t)
	bin := filepath.Join(t.TempDir(), "s3docs")
	writeExecutable(t, bin, fakeS3docs)

	tests := []struct {
		name     string
		args     []string
		want     []string // s3docs's arguments; nil: not run
		wantCode int
		wantErr  string
	}{
		{name: "as mount(8) calls it", args: []string{"docs", "/mnt/s3docs", "-o", "rw,allow_other,cache_size=10GiB,_netdev"},
			want: []string{"mount", "--detach", "-o", "rw,allow_other,cache_size=10GiB,_netdev", "--", "s3://docs", "/mnt/s3docs"}},
		{name: "all of mount(8)'s flags", args: []string{"s3://docs/cases", "/m", "-s", "-n", "-v", "-o", "rw", "-t", "fuse.s3docs"},
			want: []string{"mount", "--detach", "-o", "rw", "--", "s3://docs/cases", "/m"}},
		{name: "bare bucket with prefix", args: []string{"docs/cases/2024", "/m"},
			want: []string{"mount", "--detach", "--", "s3://docs/cases/2024", "/m"}},
		{name: "options joined and repeated", args: []string{"docs", "/m", "-orw", "-o", "uid=0"},
			want: []string{"mount", "--detach", "-o", "rw,uid=0", "--", "s3://docs", "/m"}},
		{name: "spaces survive", args: []string{"docs", "/mnt/with space", "-o", "cache_dir=/var/a b"},
			want: []string{"mount", "--detach", "-o", "cache_dir=/var/a b", "--", "s3://docs", "/mnt/with space"}},
		{name: "mount point like a flag", args: []string{"docs", "-m"},
			want: []string{"mount", "--detach", "--", "s3://docs", "-m"}},
		{name: "fake mount", args: []string{"docs", "/m", "-f", "-o", "rw"}},
		{name: "namespace", args: []string{"docs", "/m", "-N", "/proc/1/fd/3"}, wantCode: 2,
			wantErr: "mount.fuse.s3docs: mounting in another mount namespace (-N) is not supported\n"},
		{name: "no mount point", args: []string{"docs"}, wantCode: 2,
			wantErr: "mount.fuse.s3docs: usage: mount.fuse.s3docs SOURCE MOUNTPOINT [-o OPTIONS] (run by mount(8) for type fuse.s3docs)\n"},
		{name: "unknown flag", args: []string{"docs", "/m", "-x"}, wantCode: 2, wantErr: "mount.fuse.s3docs: unexpected argument -x\n"},
		{name: "other type", args: []string{"docs", "/m", "-t", "fuse.sshfs"}, wantCode: 2,
			wantErr: "mount.fuse.s3docs: unexpected file system type fuse.sshfs\n"},
		{name: "-o without value", args: []string{"docs", "/m", "-o"}, wantCode: 2, wantErr: "mount.fuse.s3docs: -o needs a value\n"},
		{name: "empty source", args: []string{"", "/m"}, wantCode: 2,
			wantErr: "mount.fuse.s3docs: empty source: want BUCKET[/PREFIX] or s3://BUCKET[/PREFIX]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(script, tt.args...)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "S3DOCS_BIN=" + bin}
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			code := exitCodeOf(cmd.Run())
			if code != tt.wantCode || stderr.String() != tt.wantErr {
				t.Fatalf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tt.wantCode, tt.wantErr)
			}
			want := ""
			if tt.want != nil {
				want = argLines(bin, tt.want...)
			}
			if stdout.String() != want {
				t.Errorf("ran\n%s\nwant\n%s", stdout.String(), want)
			}
		})
	}
}

// TestMountHelperFindsBinary checks where the helper looks for s3docs when
// $S3DOCS_BIN is not set: next to itself (through symlinks), then $PATH.
func TestMountHelperFindsBinary(t *testing.T) {
	script, err := os.ReadFile(helperScript(t))
	if err != nil {
		t.Fatal(err)
	}
	install := t.TempDir()
	helper := filepath.Join(install, "mount.fuse.s3docs")
	if err := os.WriteFile(helper, script, 0o755); err != nil {
		t.Fatal(err)
	}
	sbin := t.TempDir()
	link := filepath.Join(sbin, "mount.fuse.s3docs")
	if err := os.Symlink(helper, link); err != nil {
		t.Fatal(err)
	}
	pathDir := t.TempDir()
	writeExecutable(t, filepath.Join(pathDir, "s3docs"), fakeS3docs)
	want := func(bin string) string { return argLines(bin, "mount", "--detach", "--", "s3://docs", "/m") }
	check := func(name, helper, path, wantOut string) {
		t.Helper()
		cmd := exec.Command(helper, "docs", "/m")
		cmd.Env = []string{"PATH=" + path}
		out, err := cmd.Output()
		if err != nil || string(out) != wantOut {
			t.Errorf("%s: got %q (%v), want %q", name, out, err, wantOut)
		}
	}

	installed := ""
	for _, p := range []string{"/usr/local/bin/s3docs", "/usr/bin/s3docs", "/bin/s3docs"} {
		if _, err := os.Stat(p); err == nil {
			installed = p
		}
	}
	if installed != "" {
		t.Logf("%s exists; not checking the case where nothing is found", installed)
	} else {
		cmd := exec.Command(helper, "docs", "/m")
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if code := exitCodeOf(err); code != 2 || !strings.Contains(string(out), "mount.fuse.s3docs: cannot find the s3docs binary") {
			t.Errorf("no binary anywhere: exit %d, %q", code, out)
		}
	}
	check("in PATH", helper, "/usr/bin:/bin:"+pathDir, want(filepath.Join(pathDir, "s3docs")))

	writeExecutable(t, filepath.Join(install, "s3docs"), fakeS3docs)
	check("next to the helper", helper, "/usr/bin:/bin:"+pathDir, want(filepath.Join(install, "s3docs")))
	check("next to the symlinked helper", link, "/usr/bin:/bin:"+pathDir, want(filepath.Join(install, "s3docs")))
}

// helperNS is a private mount namespace in which mount(8) finds
// mount.fuse.s3docs in /sbin. mount(8) looks for helpers only in /sbin,
// /sbin/fs.d and /sbin/fs (never $PATH), and installing into the real /sbin
// would leave a file behind if the test died; an overlay of /sbin seen only
// in this namespace vanishes with it. Commands run in it through nsenter; a
// daemon started there keeps the namespace alive and its mount in it.
type helperNS struct {
	pid int
}

func newHelperNS(t *testing.T) *helperNS {
	t.Helper()
	return newHelperNSWith(t, helperScript(t))
}

// newHelperNSWith is newHelperNS with the helper at script (an installed
// copy, say).
func newHelperNSWith(t *testing.T, script string) *helperNS {
	t.Helper()
	for _, tool := range []string{"unshare", "nsenter", "mount", "umount"} {
		testenv.Tool(t, tool)
	}
	sbin, err := filepath.EvalSymlinks("/sbin")
	if err != nil {
		t.Fatal(err)
	}
	layer := t.TempDir()
	scriptText, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layer, "mount.fuse.s3docs"), scriptText, 0o755); err != nil {
		t.Fatal(err)
	}
	// mount(8) records userspace options (_netdev, users) in
	// /run/mount/utab; a tmpfs there keeps those of the test's mounts apart
	// from the machine's.
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
		`mount -t overlay s3docs-test-sbin -o "lowerdir=$1:$2" "$2" &&
		{ ! [ -d /run/mount ] || mount -t tmpfs s3docs-test-utab /run/mount; } &&
		echo ready && exec sleep 3600`, "sh", layer, sbin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testenv.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
		io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		testenv.Require(t, l == "ready\n", "an overlay of "+sbin+" in a private mount namespace: "+stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("mount namespace not ready after 20s: %s", stderr.String())
	}
	return &helperNS{pid: cmd.Process.Pid}
}

// run runs a command in the namespace and returns its combined output and
// exit code. mount(8) passes env on to the helper and the daemon.
func (ns *helperNS) run(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	out, err := ns.command(env, name, args...).CombinedOutput()
	return string(out), exitCodeOf(err)
}

func (ns *helperNS) command(env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"--target", strconv.Itoa(ns.pid), "--mount", "--", name}, args...)...)
	cmd.Env = env
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// mounted reports whether dir is a mount point in the namespace.
func (ns *helperNS) mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", ns.pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeMountinfo(f[4]) == dir {
			return true
		}
	}
	return false
}

// TestFstabMount mounts through mount(8) as an operator would: `mount -t
// fuse.s3docs`, `mount MOUNTPOINT` and `mount -a` from an fstab line, each
// followed by a read through the mount and `umount`, which must stop the
// daemon; and failures, which must exit non-zero with the reason.
func TestFstabMount(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(11, 2*mib+3)
	w.s3.Put(t, testBucket, "cases/brief.pdf", data)
	ns := newHelperNS(t)
	env := append(w.s3.Env(), runMainEnv+"=1", "S3DOCS_BIN="+os.Args[0])
	// Every option mount(8), systemd or an fstab habit may add, among ours.
	// The cache directory is quoted because t.TempDir names may hold commas
	// (one subtest's name does, on purpose).
	opts := func(cacheDir string) string {
		return "_netdev,allow_other,nofail,users,nodev,nosuid,noexec,auto,x-systemd.automount,x-systemd.mount-timeout=30," +
			"endpoint_url=" + w.s3.Endpoint + ",force_path_style,region=us-east-1,cache_dir=\"" + cacheDir + "\"" +
			",cache_size=1GiB,log_level=debug"
	}
	writeFstab := func(t *testing.T, source, mp string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "fstab")
		line := fmt.Sprintf("# s3docs test\n%s %s fuse.s3docs %s 0 0\n", source, mp, opts(t.TempDir()))
		if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// mountAndCheck runs one mount command whose output goes to a file, as
	// the journal's socket would under systemd: the daemon keeps it, so its
	// last log lines show how it stopped.
	mountAndCheck := func(t *testing.T, mp, file string, args ...string) {
		t.Helper()
		t.Cleanup(func() { stopDaemonsOf(t, mp) })
		logPath := filepath.Join(t.TempDir(), "log")
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cmd := ns.command(env, "mount", args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("mount %q: %v:\n%s", args, err, b)
		}
		t.Logf("mount %q returned after %v", args, time.Since(start).Round(time.Millisecond))
		if !ns.mounted(t, mp) {
			t.Fatalf("%s not mounted once mount returned", mp)
		}
		pid := oneDaemon(t, mp)
		out, err := ns.command(env, "cat", filepath.Join(mp, file)).Output()
		if err != nil || sha256Hex(out) != sha256Hex(data) {
			t.Fatalf("cat %s through the mount: %v, %d bytes, content differs: %v", file, err, len(out), sha256Hex(out) != sha256Hex(data))
		}
		if out, code := ns.run(t, env, "umount", mp); code != 0 {
			t.Fatalf("umount: exit %d: %s", code, out)
		}
		if !processGone(pid, 15*time.Second) {
			t.Fatalf("daemon %d still running 15s after umount", pid)
		}
		if ns.mounted(t, mp) {
			t.Fatal("still mounted after umount")
		}
		lines := readLines(t, logPath)
		joined := strings.Join(lines, "\n")
		for _, want := range []string{"msg=mounted", "msg=\"unmounted from outside\"", "msg=stopped"} {
			if !strings.Contains(joined, want) {
				t.Errorf("daemon log lacks %s:\n%s", want, joined)
			}
		}
	}

	t.Run("mount -t fuse.s3docs", func(t *testing.T) {
		mp := t.TempDir()
		mountAndCheck(t, mp, "cases/brief.pdf", "-t", "fuse.s3docs", "-o", opts(t.TempDir()), testBucket, mp)
	})
	t.Run("mount MOUNTPOINT from fstab", func(t *testing.T) {
		mp := t.TempDir()
		mountAndCheck(t, mp, "cases/brief.pdf", "--fstab", writeFstab(t, testBucket, mp), mp)
	})
	t.Run("mount -a from fstab, source with prefix", func(t *testing.T) {
		mp := t.TempDir()
		mountAndCheck(t, mp, "brief.pdf", "-a", "--fstab", writeFstab(t, "s3://"+testBucket+"/cases", mp))
	})

	for _, tt := range []struct {
		name, source, extra string
		wantCode            int
		wantOut             string
	}{
		{name: "missing bucket", source: "no-such-bucket", wantCode: exitUsage,
			wantOut: `s3docs: bucket "no-such-bucket" does not exist at ` + w.s3.Endpoint + "\n"},
		{name: "bad option value", source: testBucket, extra: ",cache_size=10XB", wantCode: exitUsage,
			wantOut: `s3docs: mount option cache_size: invalid size "10XB" (use e.g. 64MiB, 10GiB, 10G)` + "\n"},
		{name: "unknown option", source: testBucket, extra: ",cache_sise=1G", wantCode: exitUsage,
			wantOut: `s3docs: unknown mount option "cache_sise"` + "\n"},
		{name: "bad source", source: "Docs", wantCode: exitUsage,
			wantOut: `s3docs: malformed source "s3://Docs": bucket name "Docs" may contain only lowercase letters, digits, dots and hyphens` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mp := t.TempDir()
			t.Cleanup(func() { stopDaemonsOf(t, mp) })
			out, code := ns.run(t, env, "mount", "-t", "fuse.s3docs", "-o", opts(t.TempDir())+tt.extra, tt.source, mp)
			if code != tt.wantCode || out != tt.wantOut {
				t.Errorf("exit %d, output %q; want %d, %q", code, out, tt.wantCode, tt.wantOut)
			}
			if ns.mounted(t, mp) {
				t.Error("mounted")
			}
			if pids := daemonsOf(mp); len(pids) != 0 {
				t.Errorf("daemons left: %v", pids)
			}
		})
	}
}
