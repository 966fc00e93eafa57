package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"s3docs/internal/pdfgen"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-out", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	for _, s := range samples {
		path := filepath.Join(dir, filepath.FromSlash(s.path))
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want := pdfgen.Bytes(pdfgen.Options{Pages: s.pages, Title: s.title, PadBytes: s.padBytes})
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from pdfgen's %d", s.path, len(got), len(want))
		}
		if !strings.Contains(stdout.String(), path) {
			t.Errorf("output does not name %s:\n%s", path, stdout.String())
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "reports", "annual.pdf"))
	if err != nil || fi.Size() < 20<<20 || fi.Size() > 21<<20 {
		t.Errorf("annual.pdf: %v, %v; want about 20 MiB", fi, err)
	}
	// Nothing but the samples (no temporary files) is left.
	var n int
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, _ error) error {
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if n != len(samples) {
		t.Errorf("%d files in the tree, want %d", n, len(samples))
	}
	// A second run overwrites in place.
	if code := run([]string{"-out", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("second run = %d, stderr:\n%s", code, stderr.String())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"-out"}, {"-out", t.TempDir(), "extra"}, {"-bogus"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
		if !strings.Contains(stderr.String(), "-out") {
			t.Errorf("run(%q): usage not printed:\n%s", args, stderr.String())
		}
	}
}
