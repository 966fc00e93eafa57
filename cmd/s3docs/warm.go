package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

const (
	// s3docsFSType is how the kernel lists our mounts: go-fuse mounts with
	// subtype "s3docs".
	s3docsFSType = "fuse.s3docs"

	warmDefaultJobs = 4
	warmMaxJobs     = 64
	// warmReadSize: large reads become large FUSE requests, so the daemon
	// sees few, sequential reads and its readahead kicks in.
	warmReadSize      = 1 << 20
	warmPlainInterval = 2 * time.Second
	warmBarInterval   = 100 * time.Millisecond
)

func warmUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage: s3docs warm [--mount DIR] [--jobs N] PATH...

Pre-fetches files, or whole directories recursively, into the cache of the
running s3docs daemon by reading them through its mount: the daemon's own
cache is the one warmed, and the data read is discarded. The .parts tree is
skipped unless a PATH names it (reading parts makes PDFs be split).

PATH is a file or directory inside an s3docs mount: absolute, or relative to
--mount when it is given (else to the current directory).

Progress goes to stderr: a bar on a terminal, else a line every %s. A
summary line goes to stdout. A file that fails is reported on one line and
the others go on.

Flags:
  --mount DIR   the s3docs mount point that relative PATHs are in
  --jobs N      files read in parallel (default %d, at most %d)

Exit status: 0 all warmed, 1 some file failed or interrupted, 2 bad input
(such as a PATH outside any s3docs mount).
`, warmPlainInterval, warmDefaultJobs, warmMaxJobs)
}

// warmFile is one regular file to read, with its size from the listing.
type warmFile struct {
	path string
	size int64
}

func runWarm(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("s3docs warm", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	mountDir := fset.String("mount", "", "")
	jobs := fset.Int("jobs", warmDefaultJobs, "")
	paths, err := parseInterspersed(fset, args)
	if errors.Is(err, flag.ErrHelp) {
		warmUsage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "s3docs: warm: %v (try: s3docs warm --help)\n", err)
		return exitUsage
	}
	if *jobs < 1 || *jobs > warmMaxJobs {
		fmt.Fprintf(stderr, "s3docs: warm: --jobs %d: want 1 to %d\n", *jobs, warmMaxJobs)
		return exitUsage
	}
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "s3docs: warm: no PATH given (try: s3docs warm --help)")
		return exitUsage
	}
	roots, err := resolveWarmRoots(*mountDir, paths)
	if err != nil {
		fmt.Fprintf(stderr, "s3docs: warm: %v\n", err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// A second interrupt kills at once, for a read stuck in the mount.
	context.AfterFunc(ctx, stop)

	var failed atomic.Int64
	var files []warmFile
	var total int64
	seen := map[string]bool{}
	for _, r := range roots {
		listed := listWarmFiles(r.path, r.mountPoint, func(err error) {
			failed.Add(1)
			fmt.Fprintf(stderr, "s3docs: warm: %v\n", err)
		})
		for _, f := range listed {
			if !seen[f.path] { // overlapping PATHs
				seen[f.path] = true
				files = append(files, f)
				total += f.size
			}
		}
	}

	prog := newWarmProgress(stderr, total)
	warmed := readAll(ctx, files, *jobs, prog, func(err error) {
		failed.Add(1)
		prog.println(fmt.Sprintf("s3docs: warm: %v", err))
	})
	elapsed := prog.finish()

	done := prog.done.Load()
	count := fmt.Sprintf("%d files", warmed)
	if warmed != len(files) {
		count = fmt.Sprintf("%d of %d files", warmed, len(files))
	}
	summary := fmt.Sprintf("warmed %s, %s in %s (%s/s)",
		count, iecBytes(done), roundDuration(elapsed), iecBytes(rate(done, elapsed)))
	if n := failed.Load(); n > 0 {
		summary += fmt.Sprintf("; %d failed", n)
	}
	if ctx.Err() != nil {
		summary = "interrupted: " + summary
	}
	fmt.Fprintln(stdout, "warm: "+summary)
	if failed.Load() > 0 || ctx.Err() != nil {
		return exitFailure
	}
	return exitOK
}

// warmRoot is a PATH argument, resolved, with the mount it is in.
type warmRoot struct{ path, mountPoint string }

// resolveWarmRoots checks every PATH before any is read: a typo should not
// cost a half-done warm of the others.
func resolveWarmRoots(mountDir string, paths []string) ([]warmRoot, error) {
	mounts, err := readMountTable()
	if err != nil {
		return nil, fmt.Errorf("cannot tell where s3docs is mounted: %v", err)
	}
	base := ""
	if mountDir != "" {
		if base, _, err = resolveInMount(mounts, mountDir); err != nil {
			return nil, fmt.Errorf("--mount: %v", err)
		}
	}
	var roots []warmRoot
	for _, p := range paths {
		if !filepath.IsAbs(p) && base != "" {
			p = filepath.Join(base, p)
		}
		real, mp, err := resolveInMount(mounts, p)
		if err != nil {
			return nil, err
		}
		roots = append(roots, warmRoot{real, mp})
	}
	return roots, nil
}

// readAll reads files through the mount, jobs at a time, and returns how
// many were read to the end. More files at once would only compete for the
// daemon's GET slots, which its readahead already fills.
func readAll(ctx context.Context, files []warmFile, jobs int, prog *warmProgress, report func(error)) int {
	var warmed atomic.Int64
	queue := make(chan warmFile)
	var wg sync.WaitGroup
	for range min(jobs, max(len(files), 1)) {
		wg.Go(func() {
			// Warming is background work: the daemon serves its reads
			// after those of other processes when the store throttles.
			// The thread stays locked (and ends with the goroutine), so
			// that every read of this worker comes from it.
			runtime.LockOSThread()
			idleIOClass()
			buf := make([]byte, warmReadSize) // one per worker, reused: memory stays flat
			for f := range queue {
				n, err := readThrough(ctx, f.path, buf, prog.add)
				if err != nil {
					if ctx.Err() == nil {
						report(err)
					}
					prog.skip(f.size - n)
					continue
				}
				warmed.Add(1)
			}
		})
	}
feed:
	for _, f := range files {
		select {
		case queue <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(queue)
	wg.Wait()
	return int(warmed.Load())
}

// idleIOClass puts the calling thread in Linux's idle I/O scheduling class
// (ionice -c 3), which the daemon takes as the mark of background reads. A
// failure only costs the mark.
func idleIOClass() {
	const whoProcess, classIdle, classShift = 1, 3, 13
	unix.Syscall(unix.SYS_IOPRIO_SET, whoProcess, 0, classIdle<<classShift)
}

// parseInterspersed lets flags follow PATHs ("warm dir --mount /mnt/x"), as
// operators type them; after "--" everything is a PATH.
func parseInterspersed(fset *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fset.Parse(args); err != nil {
			return nil, err
		}
		rest := fset.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// mountOf is the mount that path (absolute, clean, symlinks resolved) is
// in: the deepest mount point above it, and of mounts stacked on one mount
// point the last listed, which is the one on top.
func mountOf(mounts []mountEntry, path string) (mountEntry, bool) {
	var best mountEntry
	found := false
	for _, m := range mounts {
		if pathWithin(path, m.dir) && (!found || len(m.dir) >= len(best.dir)) {
			best, found = m, true
		}
	}
	return best, found
}

func pathWithin(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// resolveInMount makes p absolute and resolves symlinks, and checks that it
// lies inside an s3docs mount, whose mount point it returns.
func resolveInMount(mounts []mountEntry, p string) (real, mountPoint string, err error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", "", fmt.Errorf("%s: %v", p, err)
	}
	real, err = filepath.EvalSymlinks(abs)
	if err != nil {
		// Say "not a mount" rather than "no such file" when both are true:
		// that is the mistake to fix.
		if m, ok := mountOf(mounts, abs); !ok || m.fsType != s3docsFSType {
			return "", "", notInMountError(abs, m)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", "", fmt.Errorf("%s: %v", abs, err)
	}
	m, ok := mountOf(mounts, real)
	if !ok || m.fsType != s3docsFSType {
		return "", "", notInMountError(real, m)
	}
	return real, m.dir, nil
}

func notInMountError(path string, m mountEntry) error {
	on := ""
	if m.dir != "" {
		on = fmt.Sprintf(" (it is on %s, type %s)", m.dir, m.fsType)
	}
	return fmt.Errorf("%s is not inside an s3docs mount%s", path, on)
}

// listWarmFiles lists the regular files at or under root. Errors are
// reported and the walk goes on.
func listWarmFiles(root, mountPoint string, report func(error)) []warmFile {
	// Listing .parts/<pdf>/ makes the daemon parse the PDF; only warm it
	// when asked for by name. The mount root does not list it anyway, but
	// a walk must not depend on that.
	parts := filepath.Join(mountPoint, ".parts")
	var files []warmFile
	filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			report(err)
			return nil
		}
		if de.IsDir() {
			if path == parts && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !de.Type().IsRegular() {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			report(err)
			return nil
		}
		files = append(files, warmFile{path: path, size: info.Size()})
		return nil
	})
	return files
}

// readThrough reads path to its end and discards the data, calling add
// with the bytes of each read.
func readThrough(ctx context.Context, path string, buf []byte, add func(int64)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	for ctx.Err() == nil {
		n, err := f.Read(buf)
		total += int64(n)
		add(int64(n))
		if err == io.EOF {
			// The point was the daemon's disk cache; keeping the data in
			// this machine's page cache would push out what its workers use.
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	return total, ctx.Err()
}

// warmProgress shows bytes read against the total: a bar on a terminal,
// periodic lines otherwise (logs and pipes do not want carriage returns).
type warmProgress struct {
	w     io.Writer
	total int64
	start time.Time
	done  atomic.Int64
	// skipped counts bytes of failed files that will not be read, so the
	// ETA is for what is left, not for what never will be.
	skipped atomic.Int64

	mu   sync.Mutex // orders writes to w: bar, lines and error lines
	bar  *progressbar.ProgressBar
	stop chan struct{}
	wg   sync.WaitGroup
}

func newWarmProgress(w io.Writer, total int64) *warmProgress {
	p := &warmProgress{w: w, total: total, start: time.Now(), stop: make(chan struct{})}
	interval := warmPlainInterval
	if width, ok := terminalWidth(w); ok && total > 0 {
		interval = warmBarInterval
		// A terminal that reports no size (a bare pty) gets a fixed width
		// rather than an empty bar.
		widthOpt := progressbar.OptionFullWidth()
		if width < 60 {
			widthOpt = progressbar.OptionSetWidth(20)
		}
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			widthOpt,
			progressbar.OptionSetDescription("warm"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	p.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.tick()
			}
		}
	})
	return p
}

// terminalWidth reports whether w is a terminal, and its width (0 if the
// terminal does not say).
func terminalWidth(w io.Writer) (int, bool) {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0, true
	}
	return width, true
}

func (p *warmProgress) add(n int64) { p.done.Add(n) }

func (p *warmProgress) skip(n int64) {
	if n > 0 {
		p.skipped.Add(n)
	}
}

func (p *warmProgress) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.syncBarLocked()
		return
	}
	fmt.Fprintln(p.w, "warm: "+progressLine(p.done.Load(), p.total-p.skipped.Load(), time.Since(p.start)))
}

// syncBarLocked brings the bar to the counters; the bar's own errors (a
// file grown since it was listed) are not worth a line.
func (p *warmProgress) syncBarLocked() {
	if expect := p.total - p.skipped.Load(); expect > 0 && expect != p.bar.GetMax64() {
		p.bar.ChangeMax64(expect)
	}
	p.bar.Set64(min(p.done.Load(), p.bar.GetMax64()))
}

// println writes a whole line, above the bar if there is one.
func (p *warmProgress) println(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil && !p.bar.IsFinished() {
		p.bar.Clear()
		fmt.Fprintln(p.w, line)
		p.bar.RenderBlank()
		return
	}
	fmt.Fprintln(p.w, line)
}

// finish stops the ticker, leaves the final state on screen and returns
// the time since the start.
func (p *warmProgress) finish() time.Duration {
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.syncBarLocked()
		if !p.bar.IsFinished() {
			p.bar.Exit() // ends the line through OptionOnCompletion
		}
	}
	return time.Since(p.start)
}

// progressLine is e.g. "1.2 GiB of 3.4 GiB (35%), 410 MiB/s, ETA 5s".
func progressLine(done, total int64, elapsed time.Duration) string {
	pct := int64(100)
	if total > 0 {
		pct = min(100, done*100/total)
	}
	r := rate(done, elapsed)
	eta := "ETA unknown"
	if r > 0 {
		left := time.Duration(float64(max(total-done, 0)) / float64(r) * float64(time.Second))
		eta = "ETA " + left.Round(time.Second).String() // rates vary: tenths would be noise
	}
	return fmt.Sprintf("%s of %s (%d%%), %s/s, %s", iecBytes(done), iecBytes(total), pct, iecBytes(r), eta)
}

// rate is bytes per second over elapsed.
func rate(n int64, elapsed time.Duration) int64 {
	if elapsed <= 0 {
		return 0
	}
	return int64(float64(n) / elapsed.Seconds())
}

// roundDuration keeps one decimal under a minute ("1.2s") and whole seconds
// above ("2m5s"): more digits are noise in a progress line.
func roundDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// iecBytes is n in the largest binary unit below it, one decimal: "1.2 GiB".
func iecBytes(n int64) string {
	if n < 1<<10 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n) / (1 << 10)
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for v >= 1<<10 && i < len(units)-1 {
		v /= 1 << 10
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
