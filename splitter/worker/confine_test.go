package worker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"s3docs/internal/testenv"
)

// procStatus returns the fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		m[k] = strings.Join(strings.Fields(v), " ")
	}
	return m
}

// checkConfined holds a live worker to what docs/security.md ("What a
// split worker can see") promises: its user, no capabilities, no_new_privs, the seccomp filter, no
// credentials in its environment, and no fds but its pipes.
func checkConfined(t *testing.T, pid int, uid int) {
	t.Helper()
	st := procStatus(t, pid)
	ids := fmt.Sprintf("%d %d %d %d", uid, uid, uid, uid)
	if st["Uid"] != ids || st["Gid"] != ids || st["Groups"] != "" {
		t.Errorf("worker runs as Uid %q Gid %q Groups %q, want %s and no groups", st["Uid"], st["Gid"], st["Groups"], ids)
	}
	for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if st[c] != "0000000000000000" {
			t.Errorf("worker %s = %s, want no capabilities", c, st[c])
		}
	}
	if st["NoNewPrivs"] != "1" {
		t.Errorf("worker NoNewPrivs = %q, want 1", st["NoNewPrivs"])
	}
	if st["Seccomp"] != "2" {
		t.Errorf("worker Seccomp = %q, want 2 (filter)", st["Seccomp"])
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.HasPrefix(kv, []byte("AWS_")) || bytes.HasPrefix(kv, []byte(envUser)) || bytes.Contains(kv, []byte("s3cr3t")) {
			t.Errorf("worker environment holds %q", kv)
		}
	}
	if !bytes.Contains(env, []byte("GOMEMLIMIT=")) {
		t.Errorf("worker environment without GOMEMLIMIT: %q", env)
	}
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	pipes := 0
	for _, e := range entries {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		switch {
		case strings.HasPrefix(link, "pipe:"):
			pipes++
		case runtimeFile([]byte(link)):
		default:
			t.Errorf("worker fd %s is %s; want only its pipes", e.Name(), link)
		}
	}
	// stdin, stdout and stderr, and the private copy of stdout.
	if pipes > 4 {
		t.Errorf("worker holds %d pipes, want at most 4", pipes)
	}
}

func TestWorkerConfinement(t *testing.T) {
	testenv.RequireRoot(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAs3cr3t")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-key")
	// An fd opened the way go-fuse opens /dev/fuse, without O_CLOEXEC: the
	// pool must not let a worker inherit it.
	leak, err := syscall.Open("/etc/hostname", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(leak)
	for _, uid := range []int{65534, 0} {
		t.Run(fmt.Sprintf("uid %d", uid), func(t *testing.T) {
			tp := newTestPool(t, Options{UID: uid, GID: uid})
			src := newTestSource(t, "A", "%FAKE pages=3 probe extract-sleep=20s", 1000)
			ctx := testCtx(t)
			// The probe fails the open if the worker can open a file, make a
			// socket, run a program or make a namespace.
			if n, err := tp.PageCount(ctx, src.Source); err != nil || n != 3 {
				t.Fatalf("PageCount = %d, %v", n, err)
			}
			ectx, cancel := context.WithCancel(ctx)
			defer cancel()
			go extract(ectx, tp, src.Source, 1, 1)
			kids := workerChildren(t)
			if len(kids) != 1 {
				t.Fatalf("workers %v", kids)
			}
			checkConfined(t, kids[0], uid)
			if want := fmt.Sprintf("user=%d:%d", uid, uid); uid != 0 && !strings.Contains(tp.logs.String(), want) {
				t.Errorf("the start line does not say %s:\n%s", want, tp.logs)
			}
			cancel()
			tp.Close()
		})
	}
}
