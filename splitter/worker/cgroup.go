package worker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// How a worker's memory limit is enforced. A cgroup v2 with memory.max is
// exact and kernel-enforced; where none can be made the parent watches the
// child's RSS. RLIMIT_AS is no option: Go reserves far more address space
// than it uses.
type memoryEnforcement struct {
	cgroupParent string // where worker cgroups go; "" means the RSS watch
}

const (
	cgroupFS = "/sys/fs/cgroup"
	// daemonLeaf is where the daemon moves itself in a delegated cgroup,
	// which must hold no processes for its children to get controllers.
	daemonLeaf   = "s3docs-daemon"
	groupPrefix  = "s3docs-split-"
	cgroup2Magic = 0x63677270
)

// memory decides once, at the first worker start, how limits are enforced,
// and says so in the log: where there is no cgroup, the limit is only as good
// as the polling.
func (p *Pool) memory() *memoryEnforcement {
	p.memOnce.Do(func() {
		self, err := os.ReadFile("/proc/self/cgroup")
		var parent string
		if err == nil {
			parent, err = cgroupSetup(cgroupFS, self, os.Getpid())
		}
		if err != nil {
			p.log.Info("split workers' memory limit enforced by polling their RSS every "+pollInterval.String(),
				"limit", p.o.MemoryLimit, "why_no_cgroup", err.Error())
			return
		}
		p.mem.cgroupParent = parent
		p.log.Info("split workers' memory limit enforced by cgroup v2 memory.max",
			"limit", p.o.MemoryLimit, "cgroup_parent", parent)
	})
	return &p.mem
}

// cgroupSetup returns the cgroup under which worker cgroups with
// memory.max can be made, enabling the memory controller for its children if
// it must. The "no internal processes" rule of cgroup v2 means a non-root
// cgroup holding processes (the daemon's own, typically a systemd service)
// cannot give its children controllers; then the daemon moves itself into a
// leaf, but only where the cgroup is its to manage: delegated by systemd
// (Delegate=yes sets the trusted.delegate xattr) or the root of a cgroup
// namespace (a container), and only if no other process is in it.
func cgroupSetup(fsRoot string, selfCgroup []byte, pid int) (string, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(fsRoot, &st); err != nil {
		return "", err
	}
	if st.Type != cgroup2Magic {
		return "", fmt.Errorf("%s is not a cgroup2 mount (cgroup v1 or hybrid layout)", fsRoot)
	}
	rel, err := ownCgroup(selfCgroup)
	if err != nil {
		return "", err
	}
	base := filepath.Join(fsRoot, rel)
	sweepCgroups(base)
	ctl, err := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return "", err
	}
	if !slices.Contains(strings.Fields(string(ctl)), "memory") {
		return "", fmt.Errorf("memory controller not available in cgroup %s", rel)
	}
	if subtreeHasMemory(base) {
		return base, nil
	}
	err = writeFile(filepath.Join(base, "cgroup.subtree_control"), "+memory")
	if err == nil {
		return base, nil
	}
	if !errors.Is(err, syscall.EBUSY) {
		return "", fmt.Errorf("enabling the memory controller below %s: %w", rel, err)
	}
	if rel != "/" && !delegated(base) {
		return "", fmt.Errorf("cgroup %s holds processes and is not delegated (under systemd: Delegate=yes)", rel)
	}
	procs, err := os.ReadFile(filepath.Join(base, "cgroup.procs"))
	if err != nil {
		return "", err
	}
	if f := strings.Fields(string(procs)); len(f) != 1 || f[0] != strconv.Itoa(pid) {
		return "", fmt.Errorf("cgroup %s holds other processes than the daemon", rel)
	}
	leaf := filepath.Join(base, daemonLeaf)
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	if err := writeFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
		os.Remove(leaf)
		return "", fmt.Errorf("moving the daemon into %s: %w", leaf, err)
	}
	if err := writeFile(filepath.Join(base, "cgroup.subtree_control"), "+memory"); err != nil {
		// Put things back as they were.
		writeFile(filepath.Join(base, "cgroup.procs"), strconv.Itoa(pid))
		os.Remove(leaf)
		return "", fmt.Errorf("enabling the memory controller below %s after leaving it: %w", rel, err)
	}
	return base, nil
}

// ownCgroup finds the unified-hierarchy line ("0::/path") of
// /proc/self/cgroup.
func ownCgroup(selfCgroup []byte) (string, error) {
	for line := range bytes.Lines(selfCgroup) {
		if rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("0::")); ok {
			rel := string(rest)
			if !strings.HasPrefix(rel, "/") || strings.Contains(rel, "..") {
				return "", fmt.Errorf("odd cgroup path %q", rel)
			}
			return rel, nil
		}
	}
	return "", errors.New("no cgroup v2 entry in /proc/self/cgroup")
}

func subtreeHasMemory(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	return err == nil && slices.Contains(strings.Fields(string(b)), "memory")
}

func delegated(dir string) bool {
	for _, name := range []string{"trusted.delegate", "user.delegate"} {
		buf := make([]byte, 8)
		n, err := syscall.Getxattr(dir, name, buf)
		if err == nil && string(buf[:n]) == "1" {
			return true
		}
	}
	return false
}

// sweepCgroups removes worker cgroups left by daemons that are gone
// (their workers died with them, by Pdeathsig, so the groups are empty).
func sweepCgroups(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), groupPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue
		}
		syscall.Rmdir(filepath.Join(base, e.Name()))
	}
}

func writeFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// cgroup is the cgroup of one worker.
type cgroup struct {
	dir string
	fd  *os.File // for clone3(CLONE_INTO_CGROUP)
}

func newCgroup(parent, name string, limit int64) (*cgroup, error) {
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, "memory.max"), strconv.FormatInt(limit, 10)); err != nil {
		syscall.Rmdir(dir)
		return nil, fmt.Errorf("setting memory.max: %w", err)
	}
	// Best effort: without swap the limit cannot turn into thrashing (the
	// file is missing when swap is not accounted), and one process is the
	// whole group.
	writeFile(filepath.Join(dir, "memory.swap.max"), "0")
	writeFile(filepath.Join(dir, "memory.oom.group"), "1")
	fd, err := os.Open(dir)
	if err != nil {
		syscall.Rmdir(dir)
		return nil, err
	}
	return &cgroup{dir: dir, fd: fd}, nil
}

func (g *cgroup) add(pid int) error {
	return writeFile(filepath.Join(g.dir, "cgroup.procs"), strconv.Itoa(pid))
}

// oomKilled tells whether the kernel killed something in the group for
// exceeding memory.max.
func (g *cgroup) oomKilled() bool {
	b, err := os.ReadFile(filepath.Join(g.dir, "memory.events"))
	if err != nil {
		return false
	}
	return oomKills(b) > 0
}

func oomKills(events []byte) int64 {
	var n int64
	for line := range bytes.Lines(events) {
		f := strings.Fields(string(line))
		if len(f) == 2 && (f[0] == "oom_kill" || f[0] == "oom_group_kill") {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			n += v
		}
	}
	return n
}

// remove deletes the group once the kernel has let go of it: right after the
// last process is reaped, rmdir can still say EBUSY for a moment.
func (g *cgroup) remove() {
	g.fd.Close()
	for range 50 {
		err := syscall.Rmdir(g.dir)
		if err == nil || errors.Is(err, syscall.ENOENT) || !errors.Is(err, syscall.EBUSY) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
