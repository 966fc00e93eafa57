package chunkcache

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// ensurePrivateDir creates dir with mode 0700, or checks that an existing one
// is a directory owned by us that nobody else can enter. The cache holds the
// bucket's documents in clear: a group- or world-readable cache would hand
// them to users the mount itself keeps out (the mount is private unless
// --allow-other), and a directory someone else owns could be swapped under us.
//
// An existing directory of ours that is wider than 0700 but empty is what a
// plain `mkdir` under umask 022 just made for us: it holds nothing anyone
// could have read, so it is tightened to 0700 (and logged) instead of
// refused. A non-empty one is refused: s3docs never changes the mode of a
// directory that holds other things (the system's temporary directory,
// /var/cache, a home directory).
func ensurePrivateDir(dir string, log *slog.Logger) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrNotExist) {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("chunkcache: %w", err)
	}
	// Stat, not Lstat: a symlink to the real cache directory is fine; the
	// directory it names is what must be private, and what messages name.
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("chunkcache: %w", err)
	}
	named := dir
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		if abs, err := filepath.Abs(dir); err == nil && filepath.Clean(abs) != real {
			named = fmt.Sprintf("%s (a symlink to %s)", dir, real)
		}
		dir = real
	}
	if !info.IsDir() {
		return refused("chunkcache: cache directory %s is not a directory", named)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() {
		return refused("chunkcache: cache directory %s belongs to uid %d, not to this process (uid %d): refusing it",
			named, st.Uid, os.Geteuid())
	}
	perm := info.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	names, err := dirNames(dir)
	if err != nil {
		return fmt.Errorf("chunkcache: %w", err)
	}
	if len(names) == 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("chunkcache: cache directory %s has mode %04o and cannot be made private: %w", named, perm, err)
		}
		log.Info("cache directory was empty and open to others: made it private", "dir", dir, "mode_was", fmt.Sprintf("%04o", perm), "mode", "0700")
		return nil
	}
	if l, err := scanLayout(dir); err == nil && l.nforeign == 0 {
		// Our own cache and nothing else, widened by hand: tightening it
		// is the operator's call (someone may have been let in on
		// purpose), and the fix is safe to suggest because nothing else
		// lives there. It names the real directory, not a symlink to it.
		return refused("chunkcache: cache directory %s has mode %04o: it must be private to its owner (chmod 700 %s)",
			named, perm, dir)
	}
	return refused("chunkcache: cache directory %s has mode %04o and holds other files: give s3docs a directory of its own (a new path, which it creates private)",
		named, perm)
}

// dirNames lists the names in dir.
func dirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// ErrRefused marks a cache directory refused for what it is: another user's,
// open to others, not a directory, holding files that are not s3docs's, or
// in use by another daemon. The operator's to fix, unlike an I/O failure.
var ErrRefused = errors.New("cache directory refused")

// refusal is an error that errors.Is finds as ErrRefused, whatever else it
// wraps, with its message as written.
type refusal struct{ err error }

func (r *refusal) Error() string        { return r.err.Error() }
func (r *refusal) Unwrap() error        { return r.err }
func (r *refusal) Is(target error) bool { return target == ErrRefused }

// refused is fmt.Errorf marked as a refusal.
func refused(format string, args ...any) error { return &refusal{fmt.Errorf(format, args...)} }
