package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"s3docs/chunkcache"
	"s3docs/internal/testenv"
)

// Versions of the two packages TestDebianPackage builds: the second is an
// upgrade of the first.
const (
	pkgVersion1 = "0.0.0~pkgtest1"
	pkgVersion2 = "0.0.0~pkgtest2"
)

// TestDebianPackage builds the Debian package and takes it through the life
// an operator gives it, on this machine, with the real tools: it installs
// it with scripts/install.sh (package.sh, then apt), checks it with
// dpkg-deb and lintian, verifies the installed unit with systemd-analyze,
// reads `man s3docs`, mounts through the installed mount(8) helper against
// versitygw, upgrades to a second build with dpkg -i while mounted (the
// conffile, as the operator edited it, and the cache stay), removes it with
// dpkg -r while a file is held open in the mount (no mount and no daemon
// stay), and purges it (nothing of it stays).
//
// systemd is not PID 1 on the test machines: the maintainer scripts then
// only record the unit's enablement, as debhelper's do, and that is what is
// checked of the unit beyond systemd-analyze.
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Require(t, false, "root (the test installs a Debian package)")
	}
	testenv.RequireFUSE(t)
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-query", "apt-get", "lintian", "man", "systemd-analyze", "mount", "umount", "deb-systemd-helper"} {
		testenv.Tool(t, tool)
	}
	if installed := packageStatus(t); installed != "" {
		t.Fatalf("package s3docs is installed on this machine (%s): this test installs and purges it; remove it first (dpkg -P s3docs)", installed)
	}
	t.Cleanup(func() {
		if packageStatus(t) != "" {
			out, err := testenv.Command("dpkg", "-P", "s3docs").CombinedOutput()
			if err != nil {
				t.Errorf("cleanup: dpkg -P s3docs: %v\n%s", err, out)
			}
		}
	})
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}

	// Install: build and install the first version, the one way there is.
	install := testenv.Command("bash", filepath.Join(repo, "scripts/install.sh"))
	install.Env = append(install.Env, "S3DOCS_VERSION="+pkgVersion1)
	runUmask022(t, install)
	deb1 := debPath(t, repo, pkgVersion1)
	checkDebContents(t, deb1)
	runLintian(t, deb1)
	if got := packageStatus(t); got != pkgVersion1 {
		t.Fatalf("after install.sh, dpkg has s3docs %q, want %s", got, pkgVersion1)
	}
	files := packageFiles(t)
	type installedFile struct {
		path string
		mode os.FileMode
	}
	// README links to docs/*.md: the package ships each, under its name.
	docs, err := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	if err != nil || len(docs) < 5 {
		t.Fatalf("docs/*.md of the repository: %v %v", docs, err)
	}
	var docFiles []installedFile
	for _, d := range docs {
		docFiles = append(docFiles, installedFile{"/usr/share/doc/s3docs/docs/" + filepath.Base(d) + ".gz", 0o644})
	}
	for _, f := range append([]installedFile{
		{"/usr/bin/s3docs", 0o755},
		{"/usr/sbin/mount.fuse.s3docs", 0o755},
		{"/usr/lib/systemd/system/s3docs.service", 0o644},
		{"/etc/default/s3docs", 0o600}, // it will hold credentials
		{"/usr/share/man/man1/s3docs.1.gz", 0o644},
		{"/usr/share/man/man8/mount.fuse.s3docs.8.gz", 0o644},
		{"/usr/share/doc/s3docs/README.md.gz", 0o644},
		{"/usr/share/doc/s3docs/copyright", 0o644},
		{"/usr/share/s3docs/grafana/s3docs.json", 0o644},
		{"/usr/share/s3docs/prometheus/s3docs.rules.yml", 0o644},
	}, docFiles...) {
		info, err := os.Stat(f.path)
		if err != nil {
			t.Errorf("not installed: %v", err)
		} else if info.Mode().Perm() != f.mode {
			t.Errorf("%s has mode %v, want %v", f.path, info.Mode().Perm(), f.mode)
		}
	}
	if out := installedVersion(t); !strings.HasPrefix(out, "s3docs "+pkgVersion1+" ") {
		t.Errorf("s3docs version: %q, want the package's version %s", out, pkgVersion1)
	}
	if out, err := testenv.Command(testenv.Tool(t, "systemd-analyze"), "verify", "/usr/lib/systemd/system/s3docs.service").CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
	}
	// Enabled (so that it mounts at boot once configured), not started: the
	// unit's ExecCondition skips it while S3DOCS_SOURCE is empty.
	if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/s3docs.service"); err != nil {
		t.Errorf("the unit is not enabled: %v", err)
	}
	defaults, err := os.ReadFile("/etc/default/s3docs")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^S3DOCS_SOURCE=$`).Match(defaults) {
		t.Errorf("/etc/default/s3docs names a bucket before the operator did:\n%s", defaults)
	}
	checkManPage(t)
	if t.Failed() {
		t.FailNow()
	}

	// Mount through the installed helper and binary, with the default cache
	// directory of root (the unit's, which purge removes).
	w := newWorld(t)
	data := testenv.RandomBytes(14, 20*mib+7)
	w.s3.Put(t, testBucket, "cases/brief.pdf", data)
	mp := t.TempDir()
	t.Cleanup(func() { stopDaemonsOf(t, mp) })
	opts := "endpoint_url=" + w.s3.Endpoint + ",force_path_style,region=us-east-1"
	if dir := os.Getenv("S3DOCS_TEST_LOG_DIR"); dir != "" {
		// For scripts/test.sh's check that no credentials reach a log.
		opts += ",log_file=" + filepath.Join(dir, "package-test.log")
	}
	mount := testenv.Command(testenv.Tool(t, "mount"), "-t", "fuse.s3docs", "-o", opts, testBucket, mp)
	mount.Env = append(w.s3.Env(), "LC_ALL=C.UTF-8")
	if out, err := mount.CombinedOutput(); err != nil {
		t.Fatalf("mount -t fuse.s3docs through the installed helper: %v\n%s", err, out)
	}
	pid := oneDaemon(t, mp)
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe != "/usr/bin/s3docs" {
		t.Fatalf("the daemon runs %s, want the installed /usr/bin/s3docs", exe)
	}
	if got := sha256Of(t, filepath.Join(mp, "cases/brief.pdf")); got != sha256Hex(data) {
		t.Fatal("read through the installed daemon's mount differs from the object")
	}
	chunks := cacheChunks(t)
	if len(chunks) < 3 {
		t.Fatalf("%d chunks in /var/cache/s3docs after reading 20 MiB, want at least 3", len(chunks))
	}

	// Upgrade, with the conffile edited and a mount up: both stay.
	edited := string(defaults) + "\n# edited by the operator\nS3DOCS_SOURCE=s3://docs\n"
	if err := os.WriteFile("/etc/default/s3docs", []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	build := testenv.Command("bash", filepath.Join(repo, "scripts/package.sh"))
	build.Env = append(build.Env, "S3DOCS_VERSION="+pkgVersion2)
	runUmask022(t, build)
	deb2 := debPath(t, repo, pkgVersion2)
	runUmask022(t, testenv.Command("dpkg", "-i", deb2))
	if got := packageStatus(t); got != pkgVersion2 {
		t.Fatalf("after dpkg -i of the second build, dpkg has s3docs %q, want %s", got, pkgVersion2)
	}
	if out := installedVersion(t); !strings.HasPrefix(out, "s3docs "+pkgVersion2+" ") {
		t.Errorf("s3docs version after the upgrade: %q", out)
	}
	if b, err := os.ReadFile("/etc/default/s3docs"); err != nil || string(b) != edited {
		t.Errorf("the upgrade did not keep the edited conffile: %v\n%s", err, b)
	}
	if after := cacheChunks(t); !isSubset(chunks, after) {
		t.Errorf("the upgrade lost cached chunks: before %v, after %v", chunks, after)
	}
	if got := sha256Of(t, filepath.Join(mp, "cases/brief.pdf")); got != sha256Hex(data) {
		t.Fatal("read through the mount after the upgrade differs from the object")
	}

	// A second mount, by the new binary, that nothing holds.
	idle := t.TempDir()
	t.Cleanup(func() { stopDaemonsOf(t, idle) })
	mount = testenv.Command(testenv.Tool(t, "mount"), "-t", "fuse.s3docs", "-o", opts+",cache_dir="+t.TempDir(), testBucket, idle)
	mount.Env = append(w.s3.Env(), "LC_ALL=C.UTF-8")
	if out, err := mount.CombinedOutput(); err != nil {
		t.Fatalf("mount -t fuse.s3docs after the upgrade: %v\n%s", err, out)
	}
	idlePID := oneDaemon(t, idle)

	// Remove, while a file is open in the first mount: both mounts go, the
	// daemons stop, nothing of s3docs runs.
	held, err := os.Open(filepath.Join(mp, "cases/brief.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	start := time.Now()
	runUmask022(t, testenv.Command("dpkg", "-r", "s3docs"))
	t.Logf("dpkg -r with a file held open in the mount took %v", time.Since(start).Round(10*time.Millisecond))
	for _, p := range []int{pid, idlePID} {
		if !processGone(p, 5*time.Second) {
			t.Errorf("daemon %d still runs after dpkg -r", p)
		}
	}
	// Only these two: other tests (and other programs) may have s3docs
	// mounts of their own at the same time, which are not the package's.
	for _, m := range fuseS3docsMounts(t) {
		if m == mp || m == idle {
			t.Errorf("%s is still mounted after dpkg -r", m)
		}
	}
	if pids := processesOf("/usr/bin/s3docs"); len(pids) != 0 {
		t.Errorf("processes of /usr/bin/s3docs left after dpkg -r: %v", pids)
	}
	held.Close()
	if _, err := os.Stat("/usr/bin/s3docs"); !os.IsNotExist(err) {
		t.Errorf("/usr/bin/s3docs after dpkg -r: %v", err)
	}
	if _, err := os.Stat("/etc/default/s3docs"); err != nil {
		t.Errorf("dpkg -r must keep the conffile until purge: %v", err)
	}

	// Purge: nothing of the package is left.
	runUmask022(t, testenv.Command("dpkg", "-P", "s3docs"))
	if got := packageStatus(t); got != "" {
		t.Errorf("dpkg still knows s3docs %s after dpkg -P", got)
	}
	for _, f := range files {
		info, err := os.Lstat(f)
		if err == nil && !info.IsDir() {
			t.Errorf("%s is left after dpkg -P", f)
		}
	}
	for _, p := range []string{
		"/etc/default/s3docs", "/var/cache/s3docs", "/usr/share/doc/s3docs", "/usr/share/s3docs",
		"/etc/systemd/system/multi-user.target.wants/s3docs.service",
		"/var/lib/systemd/deb-systemd-helper-enabled/s3docs.service.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/s3docs.service",
		"/var/lib/systemd/deb-systemd-helper-masked/s3docs.service",
		"/etc/systemd/system/s3docs.service",
	} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s is left after dpkg -P (%v)", p, err)
		}
	}
}

func installedVersion(t *testing.T) string {
	t.Helper()
	out, err := testenv.Command("/usr/bin/s3docs", "version").Output()
	if err != nil {
		t.Fatalf("s3docs version: %v", err)
	}
	return string(out)
}

// runUmask022 runs cmd as an operator's shell would, under umask 022, and
// fails the test with its output if it fails.
func runUmask022(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Args = append([]string{"sh", "-c", `umask 022 && exec "$@"`, "sh"}, cmd.Args...)
	cmd.Path = "/bin/sh"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args[4:], " "), err, out)
	}
}

// packageStatus is the version of s3docs that dpkg has installed (or
// half-installed, or with its conffiles left), "" if none.
func packageStatus(t *testing.T) string {
	out, err := testenv.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Version}", "s3docs").Output()
	if err != nil {
		return "" // dpkg-query fails for a package it never heard of
	}
	fields := strings.Fields(string(out))
	if len(fields) < 2 || fields[0] == "un" || fields[0] == "pn" {
		return ""
	}
	return fields[1]
}

func packageFiles(t *testing.T) []string {
	t.Helper()
	out, _ := testenv.Run(t, "dpkg-query", "-L", "s3docs")
	var files []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "/") {
			files = append(files, l)
		}
	}
	if len(files) < 10 {
		t.Fatalf("dpkg -L s3docs lists %d paths:\n%s", len(files), out)
	}
	return files
}

func debPath(t *testing.T, repo, version string) string {
	t.Helper()
	out, _ := testenv.Run(t, "dpkg", "--print-architecture")
	p := filepath.Join(repo, "dist", "s3docs_"+version+"_"+strings.TrimSpace(out)+".deb")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("scripts/package.sh did not write dist/s3docs_<version>_<arch>.deb: %v", err)
	}
	return p
}

// checkDebContents reads the package with dpkg-deb: its control fields, its
// conffiles, and the files it holds with their modes.
func checkDebContents(t *testing.T, deb string) {
	t.Helper()
	field := func(name string) string {
		out, _ := testenv.Run(t, "dpkg-deb", "-f", deb, name)
		return strings.TrimSpace(out)
	}
	if got := field("Package"); got != "s3docs" {
		t.Errorf("Package: %q", got)
	}
	if got := field("Depends"); got != "fuse3" {
		t.Errorf("Depends: %q, want fuse3 (the daemon calls no other package's program)", got)
	}
	// qpdf and poppler-utils are the tests' tools; the daemon uses neither.
	if got := field("Recommends"); got != "" {
		t.Errorf("Recommends: %q, want none", got)
	}
	dir := t.TempDir()
	testenv.Run(t, "dpkg-deb", "-e", deb, dir)
	if b, err := os.ReadFile(filepath.Join(dir, "conffiles")); err != nil || strings.TrimSpace(string(b)) != "/etc/default/s3docs" {
		t.Errorf("conffiles: %q, %v; want /etc/default/s3docs alone", b, err)
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		if info, err := os.Stat(filepath.Join(dir, script)); err != nil || info.Mode().Perm() != 0o755 {
			t.Errorf("maintainer script %s: %v", script, err)
		}
	}
	listing, _ := testenv.Run(t, "dpkg-deb", "-c", deb)
	modes := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(listing))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 6 {
			modes[strings.TrimPrefix(f[len(f)-1], ".")] = f[0] + " " + f[1]
		}
	}
	for path, want := range map[string]string{
		"/usr/bin/s3docs":                        "-rwxr-xr-x root/root",
		"/usr/sbin/mount.fuse.s3docs":            "-rwxr-xr-x root/root",
		"/usr/lib/systemd/system/s3docs.service": "-rw-r--r-- root/root",
		"/etc/default/s3docs":                    "-rw------- root/root",
		"/usr/share/man/man1/s3docs.1.gz":        "-rw-r--r-- root/root",
	} {
		if modes[path] != want {
			t.Errorf("dpkg-deb -c: %s is %q, want %q", path, modes[path], want)
		}
	}
}

// runLintian runs lintian on the package: no error and no warning, with
// the overrides the package ships (each says why).
func runLintian(t *testing.T, deb string) {
	t.Helper()
	cmd := testenv.Command(testenv.Tool(t, "lintian"), "--fail-on", "error,warning", "--info", deb)
	out, err := cmd.CombinedOutput()
	var tags []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") {
			tags = append(tags, l)
		}
	}
	if err != nil || len(tags) != 0 {
		t.Errorf("lintian %s: %v\n%s", filepath.Base(deb), err, out)
	}
}

// checkManPage reads `man s3docs` as an operator would and finds every flag
// that `s3docs mount --help` prints, with its argument.
func checkManPage(t *testing.T) {
	t.Helper()
	helpOut, err := testenv.Command("/usr/bin/s3docs", "mount", "--help").Output()
	if err != nil {
		t.Fatalf("s3docs mount --help: %v", err)
	}
	help := string(helpOut)
	cmd := testenv.Command(testenv.Tool(t, "man"), "s3docs")
	cmd.Env = append(cmd.Env, "MANPAGER=cat", "PAGER=cat", "MANWIDTH=200")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("man s3docs: %v", err)
	}
	page := string(out)
	flag := regexp.MustCompile(`^  (--[a-z-]+)( [A-Z:]+)?  `)
	n := 0
	for _, line := range strings.Split(help, "\n") {
		m := flag.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n++
		if !strings.Contains(page, m[1]+m[2]) {
			t.Errorf("man s3docs lacks %q of s3docs mount --help", m[1]+m[2])
		}
	}
	if n < 20 {
		t.Fatalf("found %d flags in s3docs mount --help:\n%s", n, help)
	}
	if out, err := testenv.Command(testenv.Tool(t, "man"), "-w", "mount.fuse.s3docs").Output(); err != nil {
		t.Errorf("man -w mount.fuse.s3docs: %v %s", err, out)
	}
}

// cacheChunks lists the chunk files of the unit's cache directory.
func cacheChunks(t *testing.T) []string {
	t.Helper()
	ranges, err := chunkcache.ReadRanges("/var/cache/s3docs")
	if err != nil {
		t.Fatalf("the cache of root's mount: %v", err)
	}
	var names []string
	for _, r := range ranges {
		if r.Kind == "chunk" {
			names = append(names, fmt.Sprintf("%s@%d", r.File, r.Offset))
		}
	}
	return names
}

func isSubset(small, big []string) bool {
	for _, s := range small {
		if !slices.Contains(big, s) {
			return false
		}
	}
	return true
}

// fuseS3docsMounts lists the mount points of type fuse.s3docs.
func fuseS3docsMounts(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if ok && strings.HasPrefix(post, "fuse.s3docs ") {
			mps = append(mps, strings.Fields(pre)[4])
		}
	}
	return mps
}

// processesOf lists the processes running exe (deleted or not).
func processesOf(exe string) []string {
	des, _ := os.ReadDir("/proc")
	var pids []string
	for _, de := range des {
		target, err := os.Readlink(filepath.Join("/proc", de.Name(), "exe"))
		if err == nil && (target == exe || target == exe+" (deleted)") && !isZombieName(de.Name()) {
			pids = append(pids, de.Name())
		}
	}
	return pids
}

func isZombieName(pid string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z")
}
