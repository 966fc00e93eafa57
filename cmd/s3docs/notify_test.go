package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A fake systemd: the daemon, started with NOTIFY_SOCKET, says READY=1 once
// the mount answers and STOPPING=1 when SIGTERM makes it unmount.
func TestSystemdNotify(t *testing.T) {
	w := newWorld(t)
	w.s3.Put(t, testBucket, "a.pdf", []byte("a"))
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	recv := func() string {
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	d := w.mountEnv(t, mountOpts{}, "NOTIFY_SOCKET="+sock)
	ready := recv()
	if !strings.HasPrefix(ready, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", ready)
	}
	if ok, _ := isMountPoint(d.mountpoint); !ok {
		t.Fatal("READY=1 before the mount answers")
	}
	code := make(chan int, 1)
	go func() { code <- d.stop() }()
	if got := recv(); got != "STOPPING=1" {
		t.Fatalf("on SIGTERM: %q, want STOPPING=1", got)
	}
	if c := <-code; c != 0 {
		t.Fatalf("exit code %d", c)
	}
}
