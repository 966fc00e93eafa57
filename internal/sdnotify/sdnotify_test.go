package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	addr := &net.UnixAddr{Name: name, Net: "unixgram"}
	conn, err := net.ListenUnixgram("unixgram", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifyPathSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn := listen(t, path)
	n := New(path)
	if !n.Enabled() {
		t.Fatal("not enabled with a socket")
	}
	if err := n.Notify("READY=1", "STATUS=mounted"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn); got != "READY=1\nSTATUS=mounted" {
		t.Fatalf("got %q", got)
	}
	if err := n.Notify("STOPPING=1"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn); got != "STOPPING=1" {
		t.Fatalf("got %q", got)
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	name := "@s3docs-test-" + time.Now().Format("150405.000000000")
	conn := listen(t, "\x00"+name[1:])
	if err := New(name).Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn); got != "READY=1" {
		t.Fatalf("got %q", got)
	}
}

func TestNoSocketIsANoop(t *testing.T) {
	n := New("")
	if n.Enabled() {
		t.Fatal("enabled without a socket")
	}
	if err := n.Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
}

func TestMissingSocketIsAnError(t *testing.T) {
	if err := New(filepath.Join(t.TempDir(), "nobody")).Notify("READY=1"); err == nil {
		t.Fatal("no error for a socket nobody listens on")
	}
}
