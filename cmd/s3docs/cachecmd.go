package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"s3docs/chunkcache"
	"s3docs/mountopts"
)

func cacheUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  s3docs cache status [--cache-dir DIR]
  s3docs cache clear [--cache-dir DIR]

status prints what the cache directory holds: entries (chunks of objects and
blobs derived from them, such as parts of PDFs; their hashed names do not tell
them apart) and bytes, temporary and invalid files, and whether a daemon is
using it, with its bound (--cache-size) when that can be read from the
daemon's command line.

clear removes every cached file. It refuses while a daemon uses the
directory (unmount first) and keeps any daemon from starting on it meanwhile.
It deletes only files whose names are s3docs's own, and refuses (deleting
nothing) a directory that holds anything else.

Flags:
  --cache-dir DIR   the daemon's --cache-dir (default: the daemon's default,
                    /var/cache/s3docs for root, else s3docs in the user cache
                    directory)

Exit status: 0 done, 1 failure, 2 bad input (no such cache directory, or in
use for clear).
`)
}

func runCache(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "s3docs: cache: missing subcommand status or clear (try: s3docs cache --help)")
		return exitUsage
	}
	sub := args[0]
	switch sub {
	case "help", "-h", "--help", "-help":
		cacheUsage(stdout)
		return exitOK
	case "status", "clear":
	default:
		fmt.Fprintf(stderr, "s3docs: cache: unknown subcommand %q: want status or clear (try: s3docs cache --help)\n", sub)
		return exitUsage
	}
	fset := flag.NewFlagSet("s3docs cache "+sub, flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	dir := fset.String("cache-dir", "", "")
	rest, err := parseInterspersed(fset, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		cacheUsage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "s3docs: cache %s: %v (try: s3docs cache --help)\n", sub, err)
		return exitUsage
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "s3docs: cache %s: unexpected argument %q (try: s3docs cache --help)\n", sub, rest[0])
		return exitUsage
	}
	if *dir == "" {
		if *dir, err = daemonDefaultCacheDir(); err != nil {
			fmt.Fprintf(stderr, "s3docs: cache %s: %v\n", sub, err)
			return exitUsage
		}
	}
	if sub == "status" {
		return cacheStatus(*dir, stdout, stderr)
	}
	return cacheClear(*dir, stdout, stderr)
}

// daemonDefaultCacheDir is the directory a daemon started without
// --cache-dir uses. mountopts owns that default; asking it keeps one copy.
// The placeholder source and mount point only satisfy the parser.
func daemonDefaultCacheDir() (string, error) {
	cfg, err := mountopts.Parse([]string{"s3://placeholder", "/"}, nil)
	if err != nil {
		return "", err
	}
	return cfg.CacheDir, nil
}

func cacheStatus(dir string, stdout, stderr io.Writer) int {
	st, err := chunkcache.ReadStatus(dir)
	if err != nil {
		return exitWith(stderr, fmt.Errorf("cache status: %w", cacheDirError(err)))
	}
	fmt.Fprintf(stdout, "cache dir: %s\n", dir)
	fmt.Fprintf(stdout, "entries:   %d (%d object files, %d blobs)\n", st.Entries, st.Objects, st.Blobs)
	fmt.Fprintf(stdout, "bytes:     %s (%d)\n", iecBytes(st.Bytes), st.Bytes)
	fmt.Fprintf(stdout, "temporary: %d files, %s (fetches in flight, or leftovers removed at the next start)\n",
		st.TempFiles, iecBytes(st.TempBytes))
	fmt.Fprintf(stdout, "invalid:   %d files, %s (removed at the next start; %d of an earlier version's layout)\n",
		st.Invalid, iecBytes(st.InvalidBytes), st.Legacy)
	if st.Foreign > 0 {
		fmt.Fprintf(stdout, "foreign:   %d files or directories not made by s3docs, such as %s: a daemon refuses this directory and clear leaves it alone\n",
			st.Foreign, st.ForeignExample)
	}
	bound := "bound:     set by --cache-size of the daemon"
	switch pid, found := lockHolder(chunkcache.LockPath(dir)); {
	case !st.InUse:
		fmt.Fprintln(stdout, "in use:    no")
	case !found:
		fmt.Fprintln(stdout, "in use:    yes, by a running daemon")
	default:
		fmt.Fprintf(stdout, "in use:    yes, by process %d\n", pid)
		if size, ok := daemonCacheSize(pid); ok {
			bound = fmt.Sprintf("bound:     %s (--cache-size of process %d)", mountopts.FormatSize(size), pid)
		}
	}
	fmt.Fprintln(stdout, bound)
	return exitOK
}

func cacheClear(dir string, stdout, stderr io.Writer) int {
	removed, err := chunkcache.Clear(dir)
	if err != nil {
		hint := ""
		if errors.Is(err, chunkcache.ErrInUse) {
			if pid, ok := lockHolder(chunkcache.LockPath(dir)); ok {
				hint = fmt.Sprintf(" (process %d)", pid)
			}
			hint += "; unmount it first"
		}
		return exitWith(stderr, fmt.Errorf("cache clear: %w%s", cacheDirError(err), hint))
	}
	fmt.Fprintf(stdout, "cache clear: removed %d entries (%s), %d temporary and %d invalid files from %s\n",
		removed.Entries, iecBytes(removed.Bytes), removed.TempFiles, removed.Invalid, dir)
	return exitOK
}

// cacheDirError makes a wrong, busy or shared directory a setup error, the
// operator's to fix; an I/O or permission failure on a right one stays a
// failure.
func cacheDirError(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, chunkcache.ErrNotCacheDir) ||
		errors.Is(err, chunkcache.ErrInUse) || errors.Is(err, chunkcache.ErrForeignFiles) || errors.Is(err, syscall.ENOTDIR) {
		return badSetup(err)
	}
	return err
}

// lockHolder finds the process holding an flock on path in /proc/locks,
// whose lines read "1: FLOCK  ADVISORY  WRITE 4242 08:01:131 0 EOF"
// (major:minor in hex, inode in decimal); "->" marks a waiter.
func lockHolder(path string) (pid int, ok bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, false
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	inoSuffix := fmt.Sprintf(":%d", st.Ino)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" || !strings.HasSuffix(fields[5], inoSuffix) {
			continue
		}
		// A pid of another PID namespace reads as 0 or -1.
		pid, err := strconv.Atoi(fields[4])
		if err != nil || pid <= 0 {
			continue
		}
		// stat's device differs from the lock table's on btrfs subvolumes;
		// then the holder must be seen to have the file open.
		if fields[5] == want || hasOpen(pid, path) {
			return pid, true
		}
	}
	return 0, false
}

// hasOpen reports whether process pid has a descriptor open on path.
func hasOpen(pid int, path string) bool {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	real, _ = filepath.Abs(real)
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	des, err := os.ReadDir(fdDir)
	if err != nil {
		return false
	}
	for _, de := range des {
		if target, err := os.Readlink(filepath.Join(fdDir, de.Name())); err == nil && target == real {
			return true
		}
	}
	return false
}

// daemonCacheSize reads the bound a daemon was started with from its
// command line, when it was started as "s3docs mount ...". The environment
// is not read: it holds credentials, and no size comes from it.
func daemonCacheSize(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	if len(args) < 2 || args[1] != "mount" {
		return 0, false
	}
	cfg, err := mountopts.Parse(args[2:], nil)
	if err != nil {
		return 0, false
	}
	return cfg.CacheSize, true
}
