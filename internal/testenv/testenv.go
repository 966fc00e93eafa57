// Package testenv is test support for the integration and fault tests of the
// other packages: it checks for dependencies (root, /dev/fuse, versitygw),
// starts a real S3 server (versitygw, posix backend) on a free loopback port,
// puts objects through the S3 API or straight into the server's directory,
// and puts a recording, fault-injecting HTTP proxy in front of it.
//
// It is imported only by _test.go files. It holds no package-level mutable
// state: everything lives in values tied to one test and released in
// t.Cleanup.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI, where a missing dependency must
// fail the test rather than skip it. CI is considered set unless $CI is empty,
// "0" or "false" (most CI systems set CI=true).
func InCI() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("CI"))) {
	case "", "0", "false", "no":
		return false
	}
	return true
}

// Require fails the test (in CI, see InCI) or skips it (otherwise) when ok is
// false. what says what is missing, e.g. "versitygw in $PATH".
func Require(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("missing test dependency (CI is set, so this fails instead of skipping): %s", what)
		return
	}
	t.Skipf("skipping, missing test dependency: %s (with CI=true this fails)", what)
}

// RequireRoot requires an effective user id of 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "root (euid 0)")
}

// RequireFUSE requires root and a /dev/fuse that can be opened read-write.
func RequireFUSE(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err == nil {
		_ = f.Close()
	}
	what := "/dev/fuse openable read-write"
	if err != nil {
		what += ": " + err.Error()
	}
	Require(t, err == nil, what)
}

// VersitygwPath returns the path of the versitygw binary, looked up in $PATH,
// then in $(go env GOBIN) and every $(go env GOPATH)/bin, then in $HOME/go/bin.
// When it is not found, the test fails or skips (see Require).
func VersitygwPath(t testing.TB) string {
	t.Helper()
	const name = "versitygw"
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	var dirs []string
	if goBin, err := exec.LookPath("go"); err == nil {
		out, err := exec.Command(goBin, "env", "GOBIN", "GOPATH").Output()
		if err == nil {
			lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
			if len(lines) > 0 && lines[0] != "" {
				dirs = append(dirs, lines[0])
			}
			if len(lines) > 1 {
				for _, gp := range filepath.SplitList(lines[1]) {
					if gp != "" {
						dirs = append(dirs, filepath.Join(gp, "bin"))
					}
				}
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	dirs = slices.Compact(dirs)
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	Require(t, false, "versitygw binary (looked in $PATH, "+strings.Join(dirs, ", ")+
		"); install it with: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another
// process may take it before the caller binds it; StartS3 retries for that.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("testenv: close port probe: %v", err)
	}
	return port
}

// PassthroughEnv names the variable that runs the tests with FUSE
// passthrough off: with S3DOCS_TEST_PASSTHROUGH=off every mount a test makes
// (the daemons of cmd/s3docs get --passthrough=off, fs's trees no probe) reads
// through the daemon, as on a kernel without passthrough. scripts/test.sh runs
// the tests of those packages a second time so.
const PassthroughEnv = "S3DOCS_TEST_PASSTHROUGH"

// Passthrough says whether the tests' mounts may use FUSE passthrough (see
// PassthroughEnv): true unless the variable is "off".
func Passthrough() bool { return os.Getenv(PassthroughEnv) != "off" }
