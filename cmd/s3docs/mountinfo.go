package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	dir    string
	fsType string
}

// readMountTable reads /proc/self/mountinfo: the one source of what is
// mounted where (a bind or FUSE mount shares st_dev tricks, so the table is
// the reliable source). The mount point check and warm both read it.
func readMountTable() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountTable(f)
}

// parseMountTable reads the format of proc(5): the mount point is field 5;
// the file system type follows the "-" that ends the optional fields.
func parseMountTable(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		e := mountEntry{dir: unescapeMountinfo(fields[4])}
		for i := 5; i < len(fields)-1; i++ {
			if fields[i] == "-" {
				e.fsType = fields[i+1]
				break
			}
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// mountAt returns the mount whose mount point is dir (symlinks resolved),
// the one on top when several are stacked there.
func mountAt(dir string) (mountEntry, bool, error) {
	mounts, err := readMountTable()
	if err != nil {
		return mountEntry{}, false, err
	}
	dir = filepath.Clean(dir)
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	var top mountEntry
	found := false
	for _, m := range mounts {
		if m.dir == dir {
			top, found = m, true
		}
	}
	return top, found, nil
}

// isMountPoint reports whether dir is the mount point of some mount.
func isMountPoint(dir string) (bool, error) {
	_, ok, err := mountAt(dir)
	return ok, err
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for space, ...).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// deadMountProbe bounds the look into a FUSE mount: a live daemon answers
// at once; a hung one must not hang the new daemon's start.
const deadMountProbe = 2 * time.Second

// isDeadFUSE says whether the FUSE mount at dir has lost its daemon (killed,
// crashed): stat of its root may still succeed from the kernel's cache, but
// opening and listing it ask the daemon, and the kernel answers ENOTCONN
// for a connection without one. A probe that hangs (a live daemon that is
// stuck) is not called dead; its goroutine is left to the process's exit,
// which follows the refusal at once.
func isDeadFUSE(m mountEntry) bool {
	if m.fsType != "fuse" && !strings.HasPrefix(m.fsType, "fuse.") {
		return false
	}
	done := make(chan error, 1)
	go func() {
		f, err := os.Open(m.dir)
		if err == nil {
			_, err = f.Readdirnames(1)
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return errors.Is(err, syscall.ENOTCONN)
	case <-time.After(deadMountProbe):
		return false
	}
}
