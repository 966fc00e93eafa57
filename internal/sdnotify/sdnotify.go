// Package sdnotify speaks systemd's notify protocol: one datagram per state
// change to the socket named by $NOTIFY_SOCKET. It lets a Type=notify unit
// know when the mount answers (READY=1) and when it is going away
// (STOPPING=1).
package sdnotify

import (
	"fmt"
	"net"
	"strings"
)

// Notifier sends to one socket; the zero value (no socket) does nothing, as
// when the daemon does not run under systemd.
type Notifier struct {
	socket string
}

// New uses the socket path from $NOTIFY_SOCKET (pass os.Getenv's answer).
func New(socket string) Notifier { return Notifier{socket: socket} }

// Enabled reports whether there is a socket to notify.
func (n Notifier) Enabled() bool { return n.socket != "" }

// Notify sends states such as "READY=1" or "STOPPING=1", newline-separated
// in one datagram.
func (n Notifier) Notify(states ...string) error {
	if n.socket == "" {
		return nil
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	if strings.HasPrefix(n.socket, "@") {
		// An abstract socket: the kernel's name starts with a NUL byte.
		addr.Name = "\x00" + n.socket[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}
