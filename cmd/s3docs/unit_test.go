package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"s3docs/internal/testenv"
	"s3docs/mountopts"
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
	text = strings.ReplaceAll(text, "/usr/bin/s3docs", os.Args[0])
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// --man=no: the man page of Documentation= comes with the package
	// (TestDebianPackage verifies the installed unit with it).
	out, err := testenv.Command(testenv.Tool(t, "systemd-analyze"), "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The unit's MemoryMax holds the daemon and as many split workers as the
// defaults allow, each at its limit: a unit that cannot would have the
// kernel kill inside it before any limit of s3docs's own is reached.
func TestSystemdUnitMemoryFitsTheDefaults(t *testing.T) {
	unit, err := os.ReadFile("../../scripts/s3docs.service")
	if err != nil {
		t.Fatal(err)
	}
	var max int64
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "MemoryMax="); ok {
			if max, err = mountopts.ParseSize(v); err != nil {
				t.Fatalf("MemoryMax=%s: %v", v, err)
			}
		}
	}
	cfg, err := mountopts.Parse([]string{"--cache-dir", "/c", "s3://docs", "/mnt/docs"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon's peak RSS is about 30 MiB (TestMemoryDoesNotGrowWithFileSize).
	const daemon = 48 << 20
	need := daemon + int64(cfg.SplitWorkers)*cfg.SplitMemoryLimit
	if max < need {
		t.Errorf("MemoryMax %d MiB < the daemon's %d MiB + %d workers × %d MiB", max>>20, daemon>>20, cfg.SplitWorkers, cfg.SplitMemoryLimit>>20)
	}
	if max > 512<<20 {
		t.Errorf("MemoryMax %d MiB: the unit must fit a 512 MiB machine", max>>20)
	}
}
