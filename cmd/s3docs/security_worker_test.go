package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"s3docs/internal/pdfgen"
)

// TestSplitWorkerSeesNoSecrets looks at a live split worker of a real
// mount whose daemon holds the AWS credentials in its environment and the
// FUSE device among its fds (go-fuse opens it without O_CLOEXEC): the
// worker, which parses untrusted PDFs, must have neither, and run as nobody
// with no capabilities, no_new_privs and a seccomp filter.
func TestSplitWorkerSeesNoSecrets(t *testing.T) {
	w := newWorld(t)
	w.s3.Put(t, testBucket, "doc.pdf", pdfgen.Bytes(pdfgen.Options{Pages: 3, Title: "doc"}))
	d := w.mount(t, mountOpts{})
	// Listing the parts parses the PDF; the worker then stays, idle, for
	// more parts.
	if names := readDirNames(t, filepath.Join(d.path(".parts"), "doc.pdf")); len(names) != 1 {
		t.Fatalf("parts: %v", names)
	}
	daemon := d.cmd.Process.Pid
	pid := workerPID(t, d, "doc.pdf")

	// The daemon has what the worker must not: else this test proves nothing.
	if env := procEnviron(t, daemon); !strings.Contains(env, "AWS_SECRET_ACCESS_KEY=") {
		t.Fatalf("the daemon has no AWS_SECRET_ACCESS_KEY in its environment")
	}
	if fds := procFDs(t, daemon); !strings.Contains(strings.Join(fds, " "), "/dev/fuse") {
		t.Fatalf("the daemon holds no /dev/fuse: %v", fds)
	}

	env := procEnviron(t, pid)
	for _, kv := range strings.Split(env, "\x00") {
		if strings.HasPrefix(kv, "AWS_") || strings.Contains(kv, w.s3.SecretKey) || strings.Contains(kv, w.s3.AccessKey) {
			t.Errorf("the worker's environment holds %q", kv)
		}
	}
	for _, fd := range procFDs(t, pid) {
		_, link, _ := strings.Cut(fd, " ")
		if !strings.HasPrefix(link, "pipe:") && link != "anon_inode:[eventpoll]" && link != "anon_inode:[eventfd]" {
			t.Errorf("the worker holds fd %s; want only its pipes", fd)
		}
	}
	st := procStatusFields(t, pid)
	if st["Uid"] != "65534 65534 65534 65534" || st["Gid"] != "65534 65534 65534 65534" || st["Groups"] != "" {
		t.Errorf("the worker runs as Uid %q Gid %q Groups %q, want nobody (65534) and no groups", st["Uid"], st["Gid"], st["Groups"])
	}
	for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if st[c] != "0000000000000000" {
			t.Errorf("the worker's %s = %s, want no capabilities", c, st[c])
		}
	}
	if st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" {
		t.Errorf("the worker has NoNewPrivs %q and Seccomp %q, want 1 and 2", st["NoNewPrivs"], st["Seccomp"])
	}
}

func procEnviron(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// procFDs lists a process's fds as "N target".
func procFDs(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		link, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out = append(out, e.Name()+" "+link)
	}
	return out
}

func procStatusFields(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, _ := strings.Cut(string(line), ":")
		m[k] = strings.Join(strings.Fields(v), " ")
	}
	return m
}
