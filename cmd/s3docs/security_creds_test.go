package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// secretMarkers are what must never be in a log line or a metric: the
// credentials and the parts of a SigV4 signature, in a header or a URL.
func secretMarkers(extra ...string) []string {
	return append([]string{"X-Amz-Signature", "Signature=", "Authorization", "Credential=", "AWS4-HMAC-SHA256"}, extra...)
}

func checkNoSecrets(t *testing.T, what, text string, markers []string) {
	t.Helper()
	for _, m := range markers {
		if i := strings.Index(text, m); i >= 0 {
			t.Errorf("%s holds %q: …%s…", what, m, text[max(0, i-200):min(len(text), i+200)])
		}
	}
}

// envWith is env with name set to value (replacing it).
func envWith(env []string, name, value string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}

// preadWithin reads n bytes of f at off, failing the test if the read hangs.
func preadWithin(t *testing.T, f *os.File, off int64, n int) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := f.ReadAt(make([]byte, n), off)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(90 * time.Second):
		t.Fatalf("read of %s at %d hung for 90s", f.Name(), off)
		return nil
	}
}

// TestCredentialsNeverLogged runs daemons at debug level with wrong
// credentials, against a server that answers 403, and against a server
// that is down, and scrapes /metrics: neither the keys, nor a signature,
// nor an endpoint password appears in any output.
func TestCredentialsNeverLogged(t *testing.T) {
	w := newWorld(t)
	data := testenv.RandomBytes(61, 20*mib)
	w.s3.Put(t, testBucket, "a.pdf", data)
	w.s3.Put(t, testBucket, "dir/b.pdf", []byte("b"))
	badSecret := "s3docs-wrong-secret-7c1f0e2a9b"
	badKey := "S3DOCSWRONGKEYID4242"
	password := "s3docs-endpoint-pa55word-5e9d"
	markers := secretMarkers(w.s3.SecretKey, w.s3.AccessKey, badSecret, badKey, password)

	// Wrong secret, then wrong key id: refused at startup in one line.
	for _, c := range []struct {
		name, env, value, want string
	}{
		{"wrong secret", "AWS_SECRET_ACCESS_KEY", badSecret, "SignatureDoesNotMatch"},
		// versitygw answers an unknown key id 404 XAdminUserNotFound, not
		// 403 InvalidAccessKeyId as AWS does.
		{"wrong key id", "AWS_ACCESS_KEY_ID", badKey, "s3docs: "},
	} {
		w.proxy.Reset()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, os.Args[0], "mount", "--endpoint-url", w.proxy.URL(), "--force-path-style",
			"--region", "us-east-1", "--cache-dir", t.TempDir(), "--log-level", "debug", "s3://"+testBucket, t.TempDir())
		cmd.Env = append(envWith(w.s3.Env(), c.env, c.value), runMainEnv+"=1")
		out, err := cmd.CombinedOutput()
		cancel()
		if code := exitCodeOf(err); code != exitUsage || !strings.Contains(string(out), c.want) {
			t.Fatalf("%s: exit %d (%v), output %q; want exit 2 naming %s", c.name, code, err, out, c.want)
		}
		checkNoSecrets(t, c.name+" output", string(out), markers)
		reqs := w.proxy.Requests()
		t.Logf("%s: %d requests, first answered %d; output %q", c.name, len(reqs), reqs[0].Status, strings.TrimSpace(string(out)))
	}

	// A mount whose endpoint carries a password (the SDK ignores it), then
	// a server that answers 403 to everything, then one that is down.
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	endpoint := strings.Replace(w.proxy.URL(), "http://", "http://s3docs:"+password+"@", 1)
	w.proxy.Reset()
	d := w.mount(t, mountOpts{endpoint: endpoint,
		extra: []string{"--metrics-addr", addr, "--read-ahead", "0", "--metadata-ttl", "0"}})
	// Opened before the faults: with --metadata-ttl 0 an open lists.
	f, err := os.Open(d.path("a.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := preadWithin(t, f, 0, 4096); err != nil {
		t.Fatalf("read before the faults: %v", err)
	}
	w.proxy.WaitIdle(10 * time.Second)
	okReqs := len(w.proxy.Requests())

	for _, code := range []string{"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"} {
		w.proxy.Reset()
		w.proxy.SetFault(func(r *http.Request) testenv.Fault { return testenv.Fault{Status: 403, Code: code} })
		err := preadWithin(t, f, 9*mib, 4096) // chunk 1: not cached
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s: read of an uncached chunk: %v, want EIO", code, err)
		}
		_, lerr := os.ReadDir(d.path("dir"))
		if !errors.Is(lerr, syscall.EIO) {
			t.Errorf("%s: listing: %v, want EIO", code, lerr)
		}
		gets := len(w.proxy.GETs())
		reqs := w.proxy.Requests()
		t.Logf("403 %s: read → %v, ls → %v; %d requests (%d object GETs), all answered %d", code, err, lerr, len(reqs), gets, reqs[len(reqs)-1].Status)
	}
	w.proxy.SetFault(nil)

	w.proxy.SetDown(true)
	start := time.Now()
	err = preadWithin(t, f, 17*mib, 4096) // chunk 2: not cached
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("server down: read of an uncached chunk: %v, want EIO", err)
	}
	_, lerr := os.ReadDir(d.path("dir"))
	if !errors.Is(lerr, syscall.EIO) {
		t.Errorf("server down: listing: %v, want EIO", lerr)
	}
	t.Logf("server down: read → %v, ls → %v after %v; %d connections reset", err, lerr, time.Since(start).Round(time.Millisecond), w.proxy.Resets())
	w.proxy.SetDown(false)
	// A range that just failed fails at once for a second (the kernel
	// retries a failed read at once): try again after that.
	// Not waiting for an event: the daemon's memory of the failure lapses.
	time.Sleep(1500 * time.Millisecond)
	if err := preadWithin(t, f, 17*mib, 4096); err != nil {
		t.Errorf("read once the server is back: %v", err)
	}

	metrics := scrape(t, "http://"+addr+"/metrics")
	checkNoSecrets(t, "/metrics", metrics, markers)
	if v := metricValue(t, metrics, `s3docs_get_requests_total{outcome="error"}`); v < 1 {
		t.Errorf("failed GETs = %v, want the failures counted", v)
	}
	// Every failure was logged, at debug level, with nothing secret in it.
	if n := d.logCount("level=ERROR", 4); n < 4 {
		t.Errorf("%d error lines, want the failed reads and listings logged:\n%s", n, d.stderr.String())
	}
	if d.stop() != 0 {
		t.Errorf("exit code %d", d.exitCode)
	}
	logs := d.stderr.String()
	checkNoSecrets(t, "daemon log", logs, markers)
	t.Logf("%d requests before the faults; daemon log %d lines, %d at ERROR; /metrics %d bytes",
		okReqs, strings.Count(logs, "\n"), strings.Count(logs, "level=ERROR"), len(metrics))
}
