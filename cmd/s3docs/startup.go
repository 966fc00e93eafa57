package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"s3docs/mountopts"
)

// Startup checks of `s3docs mount` beyond the flags' own validation: the
// operator's mistakes that would otherwise show later, as every read
// failing or a directory that blocks the next mount.

// deadMountError is a mount point whose daemon was killed: the fix is to
// detach the dead mount.
func deadMountError(dir string) error {
	return fmt.Errorf("mount point %s is a dead FUSE mount (its daemon is gone); run: fusermount3 -u %s", dir, dir)
}

// checkCachePlacement refuses a cache directory inside the mount point (the
// daemon would make it in the directory it is about to cover, every read
// would then go through its own mount, and the leftover would make the
// mount point non-empty for the next mount) and a mount point inside the
// cache directory. Both are compared with symlinks resolved; a cache
// directory that does not exist yet is judged by where it would be made.
func checkCachePlacement(cacheDir, mountPoint string) error {
	cache, err := resolvePath(cacheDir)
	if err != nil {
		return fmt.Errorf("cache directory: %w", err)
	}
	mp, err := resolvePath(mountPoint)
	if err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	switch {
	case pathWithin(cache, mp):
		return fmt.Errorf("cache directory %s is inside the mount point %s: put it outside (on a local disk)", cacheDir, mountPoint)
	case pathWithin(mp, cache):
		return fmt.Errorf("mount point %s is inside the cache directory %s: use another mount point", mountPoint, cacheDir)
	}
	return nil
}

// checkLogPlacement refuses a --log-file inside the mount point: opened
// before the mount, it would be made in the directory about to be covered,
// and the mount would then fail on a mount point that is not empty (its
// own log file), again at every try.
func checkLogPlacement(logFile, mountPoint string) error {
	lf, err := resolvePath(logFile)
	if err != nil {
		return fmt.Errorf("--log-file: %w", err)
	}
	mp, err := resolvePath(mountPoint)
	if err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	if pathWithin(lf, mp) {
		return fmt.Errorf("log file %s is inside the mount point %s: put it outside", logFile, mountPoint)
	}
	return nil
}

// resolvePath makes p absolute with every symlink resolved, in its longest
// existing leading part (the rest does not exist yet, so holds none).
func resolvePath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for dir := abs; ; {
		real, err := filepath.EvalSymlinks(dir)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(dir), rest)
		dir = parent
	}
}

// warnSecretsInArgs says once that a password given on the command line is
// readable by every local user (in ps and /proc/PID/cmdline), which the
// daemon cannot undo. Secrets belong in the environment (AWS_* variables,
// the systemd unit's environment file) or the shared credentials file.
func warnSecretsInArgs(args []string, cfg mountopts.Config, log *slog.Logger) {
	u, err := url.Parse(cfg.EndpointURL)
	if err != nil || u.User == nil {
		return
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return
	}
	for _, a := range args {
		if strings.Contains(a, pw) {
			log.Warn("the endpoint URL on the command line holds a password, which every local user can read in the process list: set it in the environment (AWS_ENDPOINT_URL) or use AWS credentials instead",
				"endpoint", u.Redacted())
			return
		}
	}
}
