package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"s3docs/internal/testenv"
)

// The shipped unit passes systemd's own checker. systemd is not PID 1 here,
// so this is as far as the unit can be tested; the notify protocol it relies
// on is tested in TestSystemdNotify.
func TestSystemdUnitVerifies(t *testing.T) {
	testenv.Tool(t, "systemd-analyze")
	unit, err := os.ReadFile("../../scripts/s3docs.service")
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	for _, want := range []string{"Type=notify", "Restart=on-failure", "MemoryMax=", "CacheDirectory=s3docs"} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	// The checker wants the binary to exist: point it at this one.
	path := filepath.Join(t.TempDir(), "s3docs.service")
	text = strings.ReplaceAll(text, "/usr/local/bin/s3docs", os.Args[0])
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := testenv.Command(testenv.Tool(t, "systemd-analyze"), "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
