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

// logrotate moves the log away and sends SIGHUP: the daemon writes on in a
// new file at the configured path.
func TestLogFileReopensOnSIGHUP(t *testing.T) {
	w := newWorld(t)
	w.s3.Put(t, testBucket, "a.pdf", []byte("a"))
	logPath := filepath.Join(t.TempDir(), "s3docs.log")
	d := w.mount(t, mountOpts{extra: []string{"--log-file", logPath}})
	waitFor := func(path, s string) {
		t.Helper()
		if !testenv.Eventually(5*time.Second, func() bool {
			b, _ := os.ReadFile(path)
			return strings.Contains(string(b), s)
		}) {
			b, _ := os.ReadFile(path)
			t.Fatalf("%s never got %q:\n%s", path, s, b)
		}
	}
	waitFor(logPath, "msg=mounted")
	if strings.Contains(d.stderr.String(), "msg=mounted") {
		t.Fatal("logged to stderr despite --log-file")
	}
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Reopened: the daemon says so in the new file, after the switch.
	waitFor(logPath, "log file reopened")
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGHUP", code)
	}
	waitFor(logPath, "signal received")
	waitFor(logPath, "msg=stopped")
	if b, _ := os.ReadFile(rotated); strings.Contains(string(b), "signal received") {
		t.Fatal("logged into the rotated file after SIGHUP")
	}
}
