package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/testenv"
	"s3docs/mountopts"
)

// The test binary doubles as the daemon: with this variable set, TestMain
// runs the command instead of the tests. The integration tests start it as
// a subprocess, exactly as a user would start s3docs.
const runMainEnv = "S3DOCS_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	// A split worker gets none of the daemon's environment, so it is known
	// by its subcommand.
	if os.Getenv(runMainEnv) == "1" || len(os.Args) > 1 && os.Args[1] == splitWorkerCommand {
		args := passthroughArgs(os.Args[1:])
		stdout, stderr, closeLog := testLogOutputs(args)
		code := run(args, stdout, stderr, os.Getenv)
		closeLog()
		os.Exit(code)
	}
	// The daemon refuses a cache directory others can read, and t.TempDir
	// makes directories 0777 &^ umask: with 077 they are private, as an
	// operator's would be.
	syscall.Umask(0o077)
	os.Exit(m.Run())
}

// passthroughArgs gives every mount --passthrough=off when the tests run with
// passthrough off (testenv.PassthroughEnv), first, so that a test's own
// --passthrough wins.
func passthroughArgs(args []string) []string {
	if testenv.Passthrough() || len(args) == 0 || args[0] != "mount" {
		return args
	}
	return append([]string{"mount", "--passthrough=off"}, args[1:]...)
}

// testLogDirEnv names a directory that receives a copy of everything each
// s3docs process started by the tests writes (daemons, detached daemons,
// fstab mounts, warm, cache), one file per process. scripts/test.sh sets it
// and then greps the files for credentials and signatures.
const testLogDirEnv = "S3DOCS_TEST_LOG_DIR"

// testLogOutputs returns stdout and stderr for run: the process's own, and
// with $S3DOCS_TEST_LOG_DIR set also a file there. A split worker's stdout
// is its protocol with the daemon and stays untouched; its stderr reaches
// the daemon's log anyway.
func testLogOutputs(args []string) (stdout, stderr io.Writer, closeLog func()) {
	dir := os.Getenv(testLogDirEnv)
	if dir == "" || len(args) == 0 || args[0] == splitWorkerCommand {
		return os.Stdout, os.Stderr, func() {}
	}
	if args[0] == "mount" {
		// `mount --detach` hands its stderr to the daemon it starts, which
		// must inherit the very descriptor (a pipe, a file, the journal);
		// that daemon copies its own output here.
		if cfg, err := mountopts.Parse(args[1:], os.Getenv); err == nil && cfg.Detach {
			return os.Stdout, os.Stderr, func() {}
		}
	}
	name := fmt.Sprintf("%s-%d-%d.log", strings.Trim(args[0], "-_"), time.Now().UnixNano(), os.Getpid())
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		// The check after the tests must not pass on missing files.
		fmt.Fprintf(os.Stderr, "s3docs test: %s: %v\n", testLogDirEnv, err)
		os.Exit(3)
	}
	return teeWriter{os.Stdout, f}, teeWriter{os.Stderr, f}, func() { f.Close() }
}

// teeWriter writes to w and to a copy; the copy gets every byte even when
// w fails (a detached daemon's stderr may be /dev/null, or a closed pipe).
type teeWriter struct {
	w    io.Writer
	copy io.Writer
}

func (t teeWriter) Write(p []byte) (int, error) {
	t.copy.Write(p)
	return t.w.Write(p)
}

const testBucket = "docs"

// world is one S3 server, optionally behind a counting proxy, with a bucket.
type world struct {
	s3    *testenv.S3
	proxy *testenv.Proxy
}

func newWorld(t *testing.T) *world {
	t.Helper()
	testenv.RequireFUSE(t)
	w := &world{s3: testenv.StartS3(t)}
	w.s3.CreateBucket(t, testBucket)
	w.proxy = testenv.NewProxy(t, w.s3.Endpoint)
	return w
}

// daemon is one running `s3docs mount`.
type daemon struct {
	t          *testing.T
	cmd        *exec.Cmd
	mountpoint string
	cacheDir   string
	stderr     *testenv.LockedBuffer
	exited     chan struct{}
	exitCode   int
}

// mountOpts are the flags of one mount; zero values get test defaults.
type mountOpts struct {
	cacheDir  string
	cacheSize string
	extra     []string
	direct    bool // talk to the server, not through the proxy
	// endpoint replaces the proxy's (or with direct, the server's) URL.
	endpoint string
	// mountpoint is an existing empty directory to mount on; "" makes one.
	mountpoint string
}

// mount starts the daemon against the world and waits until the mount
// answers. It is stopped with SIGTERM at the end of the test, which must
// make it unmount and exit 0.
func (w *world) mount(t *testing.T, o mountOpts) *daemon {
	t.Helper()
	return w.mountEnv(t, o)
}

// mountEnv is mount with extra environment variables for the daemon.
func (w *world) mountEnv(t *testing.T, o mountOpts, env ...string) *daemon {
	t.Helper()
	if o.cacheDir == "" {
		o.cacheDir = t.TempDir()
	}
	if o.cacheSize == "" {
		o.cacheSize = "1GiB"
	}
	endpoint := w.proxy.URL()
	if o.direct {
		endpoint = w.s3.Endpoint
	}
	if o.endpoint != "" {
		endpoint = o.endpoint
	}
	mp := o.mountpoint
	if mp == "" {
		mp = t.TempDir()
	}
	args := append([]string{"mount", "--endpoint-url", endpoint, "--force-path-style", "--region", "us-east-1",
		"--cache-dir", o.cacheDir, "--cache-size", o.cacheSize, "--log-level", "debug"}, o.extra...)
	args = append(args, "s3://"+testBucket, mp)
	d := startDaemon(t, append(w.s3.Env(), env...), args...)
	d.mountpoint, d.cacheDir = mp, o.cacheDir
	d.waitMounted()
	t.Cleanup(func() { d.stop() })
	return d
}

func startDaemon(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(env, runMainEnv+"=1")
	d := &daemon{t: t, cmd: cmd, stderr: &testenv.LockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout = d.stderr
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		d.exitCode = exitCodeOf(err)
		close(d.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.stderr.String())
		}
	})
	return d
}

func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func (d *daemon) waitMounted() {
	d.t.Helper()
	exited := false
	mounted := false
	testenv.Eventually(15*time.Second, func() bool {
		if mounted, _ = isMountPoint(d.mountpoint); mounted {
			return true
		}
		select {
		case <-d.exited:
			exited = true
		default:
		}
		return exited
	})
	switch {
	case mounted:
	case exited:
		d.t.Fatalf("daemon exited with %d before mounting:\n%s", d.exitCode, d.stderr.String())
	case !mounted:
		d.t.Fatalf("not mounted after 15s:\n%s", d.stderr.String())
	}
}

// stop sends SIGTERM and returns the exit code; the mount must be gone.
func (d *daemon) stop() int {
	d.t.Helper()
	select {
	case <-d.exited:
		return d.exitCode
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		syscall.Unmount(d.mountpoint, syscall.MNT_DETACH)
		d.t.Errorf("daemon did not exit within 15s of SIGTERM")
	}
	if ok, _ := isMountPoint(d.mountpoint); ok {
		syscall.Unmount(d.mountpoint, syscall.MNT_DETACH)
		d.t.Errorf("still mounted after the daemon exited")
	}
	return d.exitCode
}

// logCount waits (up to 5s) until the daemon's output holds at least want
// occurrences of s, and returns how many it holds: its output reaches the
// test through a pipe, a little after the daemon wrote it.
func (d *daemon) logCount(s string, want int) int {
	n := 0
	testenv.Eventually(5*time.Second, func() bool {
		n = strings.Count(d.stderr.String(), s)
		return n >= want
	})
	return n
}

func (d *daemon) path(key string) string { return filepath.Join(d.mountpoint, key) }

// peakRSS is the daemon's high-water resident set size in bytes.
func (d *daemon) peakRSS() int64 {
	d.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		d.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				d.t.Fatal(err)
			}
			return kb << 10
		}
	}
	d.t.Fatal("no VmHWM")
	return 0
}

// dropPageCache makes the next read of a mounted file reach the daemon.
func dropPageCache(t *testing.T) {
	t.Helper()
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		t.Fatalf("drop page cache: %v", err)
	}
}

// sha256Of runs sha256sum in a subprocess, as a legacy tool would read.
func sha256Of(t *testing.T, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sha256sum", path).Output()
	if err != nil {
		t.Fatalf("sha256sum %s: %v", path, err)
	}
	sum, _, _ := strings.Cut(string(out), " ")
	return sum
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// catToNull reads a file in a subprocess.
func catToNull(t *testing.T, path string) error {
	t.Helper()
	out, err := testenv.Command(testenv.Tool(t, "cat"), path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cat %s: %v: %s", path, err, bytes.TrimSpace(out))
	}
	return nil
}

// cacheDiskBytes is what the cache's files take, as du counts it: the
// objects' files are sparse, and take their blocks, not their sizes.
func cacheDiskBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	filepath.WalkDir(dir, func(path string, de os.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() {
			if info, err := de.Info(); err == nil {
				total += info.Sys().(*syscall.Stat_t).Blocks * 512
			}
		}
		return nil
	})
	return total
}

// checkCLIResult holds a subcommand's result to the house rules: on success
// stdout has want and stderr is empty; on failure stdout is empty and stderr
// is one line starting with prefix and naming want.
func checkCLIResult(t *testing.T, args []string, code int, out, errOut string, wantCode int, want, prefix string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%v: exit code %d, want %d (stderr %q)", args, code, wantCode, errOut)
		return
	}
	if wantCode == 0 {
		if !strings.Contains(out, want) || errOut != "" {
			t.Errorf("%v: stdout %q, stderr %q", args, out, errOut)
		}
		return
	}
	if out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, prefix) || !strings.Contains(errOut, want) {
		t.Errorf("%v: stdout %q, stderr %q; want one line with %q", args, out, errOut, want)
	}
}
