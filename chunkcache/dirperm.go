package chunkcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ensurePrivateDir creates dir with mode 0700, or checks that an existing one
// is a directory owned by us that nobody else can enter. The cache holds the
// bucket's documents in clear: a group- or world-readable cache would hand
// them to users the mount itself keeps out (the mount is private unless
// --allow-other), and a directory someone else owns could be swapped under us.
func ensurePrivateDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrNotExist) {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("chunkcache: %w", err)
	}
	// Stat, not Lstat: a symlink to the real cache directory is fine; the
	// directory it names is what must be private.
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("chunkcache: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("chunkcache: cache directory %s is not a directory", dir)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("chunkcache: cache directory %s belongs to uid %d, not to this process (uid %d): refusing it",
			dir, st.Uid, os.Geteuid())
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("chunkcache: cache directory %s has mode %04o: it must be private to its owner (chmod 700 %s)",
			dir, perm, dir)
	}
	return nil
}
