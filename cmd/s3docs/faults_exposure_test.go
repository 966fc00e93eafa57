package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"s3docs/internal/testenv"
)

// Issue 14 finding 9: what the metrics address exposes. /debug/pprof/cmdline
// served the command line, password of --endpoint-url included, to anyone
// who could reach the metrics address, which could be every network
// interface without a word. Now that endpoint is gone, a metrics address
// beyond loopback is warned of, and so is a password on the command line
// (every local user can read it in the process list).
func TestMetricsExposure(t *testing.T) {
	w := newWorld(t)
	sum := putRandom(t, w, "a.pdf", 500, mib)
	const password = "exposure-pa55word-7c1f"
	endpoint := strings.Replace(w.proxy.URL(), "http://", "http://s3docs:"+password+"@", 1)
	port := testenv.FreePort(t)
	d := w.mount(t, mountOpts{endpoint: endpoint,
		extra: []string{"--metrics-addr", fmt.Sprintf("0.0.0.0:%d", port), "--pprof"}})
	if got := sha256Of(t, d.path("a.pdf")); got != sum {
		t.Fatal("a.pdf differs")
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if code, body := get("/debug/pprof/cmdline"); code != http.StatusNotFound || strings.Contains(body, password) {
		t.Errorf("/debug/pprof/cmdline: %d, %q; want 404 and no password", code, body)
	}
	for _, path := range []string{"/debug/pprof/", "/metrics"} {
		if code, body := get(path); code != http.StatusOK || strings.Contains(body, password) {
			t.Errorf("%s: %d, password shown: %v", path, code, strings.Contains(body, password))
		}
	}
	if code, _ := get("/debug/pprof/goroutine?debug=1"); code != http.StatusOK {
		t.Errorf("profiles still served with --pprof: %d", code)
	}
	if n := d.logCount("to the network, without authentication", 1); n != 1 {
		t.Errorf("metrics on 0.0.0.0 warned of %d times, want once", n)
	}
	if n := d.logCount("holds a password, which every local user can read", 1); n != 1 {
		t.Errorf("a password on the command line warned of %d times, want once", n)
	}
	if strings.Contains(d.stderr.String(), password) {
		t.Error("the password is in the daemon's log")
	}

	// On loopback, and with no password on the command line: no warning.
	d2 := w.mount(t, mountOpts{extra: []string{"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}})
	if got := sha256Of(t, d2.path("a.pdf")); got != sum {
		t.Fatal("a.pdf differs")
	}
	d2.stop()
	if out := d2.stderr.String(); strings.Contains(out, "to the network") || strings.Contains(out, "holds a password") {
		t.Errorf("warned without cause:\n%s", out)
	}
}
