package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Tool returns the path of the external program name, which a test is about
// to run. When it is missing the test fails in CI and skips elsewhere (see
// Require), naming the Debian package that has it. The package comes from
// DEBIAN_PACKAGES in scripts/lib.sh, the list the scripts install from; a
// program not listed there fails the test outright, so that the list cannot
// fall behind what the tests call.
func Tool(t testing.TB, name string) string {
	t.Helper()
	pkgs, err := debianPackages()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	pkg, ok := pkgs.programs[name]
	if !ok {
		t.Fatalf("testenv: the tests call %s, which DEBIAN_PACKAGES in scripts/lib.sh does not list: add it with its Debian package", name)
	}
	p, err := exec.LookPath(name)
	Require(t, err == nil, fmt.Sprintf("%s (Debian package %s; scripts/test.sh installs it)", name, pkg))
	return p
}

// PackageInstalled reports whether the Debian package pkg, which must be in
// DEBIAN_PACKAGES, is installed; for packages of data that no program
// stands for (poppler-data), which a test checks before relying on them.
func PackageInstalled(t testing.TB, pkg string) bool {
	t.Helper()
	pkgs, err := debianPackages()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if !pkgs.listed[pkg] {
		t.Fatalf("testenv: package %s is not in DEBIAN_PACKAGES in scripts/lib.sh", pkg)
	}
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	return err == nil && strings.Contains(string(out), "install ok installed")
}

// Command is exec.Command with an environment that does not depend on the
// machine: the C.UTF-8 locale (the tools' messages and number formats are
// then the same everywhere) and everything else inherited.
func Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(withoutLocale(os.Environ()), "LC_ALL=C.UTF-8", "LANG=C.UTF-8")
	return cmd
}

// Run runs the program of Debian's table (see Tool) with args in the C
// locale and returns what it wrote to stdout and stderr; a failure ends the
// test with both.
func Run(t testing.TB, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := Command(Tool(t, name), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

func withoutLocale(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LANGUAGE=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

type packageTable struct {
	programs map[string]string // program → package
	listed   map[string]bool
}

// debianPackages reads the table once per test binary.
var debianPackages = sync.OnceValues(func() (packageTable, error) {
	path, err := libPath()
	if err != nil {
		return packageTable{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return packageTable{}, err
	}
	return parsePackageTable(string(b))
})

// parsePackageTable reads DEBIAN_PACKAGES='...' out of lib.sh.
func parsePackageTable(lib string) (packageTable, error) {
	const start = "\nDEBIAN_PACKAGES='"
	i := strings.Index(lib, start)
	if i < 0 {
		return packageTable{}, errors.New("scripts/lib.sh has no DEBIAN_PACKAGES='...' table")
	}
	body := lib[i+len(start):]
	j := strings.IndexByte(body, '\'')
	if j < 0 {
		return packageTable{}, errors.New("scripts/lib.sh: DEBIAN_PACKAGES is not closed")
	}
	tab := packageTable{programs: map[string]string{}, listed: map[string]bool{}}
	for _, line := range strings.Split(body[:j], "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return packageTable{}, fmt.Errorf("scripts/lib.sh: DEBIAN_PACKAGES line %q: want PACKAGE USE PROGRAM... (or -)", line)
		}
		tab.listed[f[0]] = true
		for _, prog := range f[2:] {
			if prog != "-" {
				tab.programs[prog] = f[0]
			}
		}
	}
	if len(tab.listed) == 0 {
		return packageTable{}, errors.New("scripts/lib.sh: DEBIAN_PACKAGES is empty")
	}
	return tab, nil
}

// libPath finds scripts/lib.sh from the directory the test runs in (its
// package's), by walking up to the module root.
func libPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scripts", "lib.sh"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}
