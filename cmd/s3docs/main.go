// Command s3docs mounts an S3 bucket of PDFs read-only. It only wires the
// packages together: config → store → chunk cache → file tree → mount.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"s3docs/chunkcache"
	"s3docs/fs"
	"s3docs/internal/object"
	"s3docs/internal/sdnotify"
	"s3docs/mountopts"
	"s3docs/s3store"
	"s3docs/splitter"
	"s3docs/splitter/worker"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "mount":
		return runMount(args[1:], stdout, stderr, getenv)
	case "warm":
		return runWarm(args[1:], stdout, stderr)
	case "cache":
		return runCache(args[1:], stdout, stderr)
	case splitWorkerCommand:
		return runSplitWorker(stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "s3docs", version())
		return exitOK
	case "help", "-h", "--help", "-help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "s3docs: unknown command %q (try: s3docs --help)\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `s3docs mounts an S3 bucket of PDFs read-only, served through a bounded disk cache.

Usage:
  s3docs mount [flags] s3://BUCKET[/PREFIX] MOUNTPOINT
  s3docs warm [--mount DIR] PATH...
  s3docs cache status|clear [--cache-dir DIR]
  s3docs version
  s3docs help

Run "s3docs mount --help" for the mount flags, "s3docs warm --help" and
"s3docs cache --help" for the others.
`)
}

// packageVersion is the version of the Debian package the binary was built
// for, set by scripts/package.sh (-ldflags -X main.packageVersion=...);
// empty in other builds. Never changed at run time.
var packageVersion string

func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if packageVersion != "" {
		return packageVersion + " " + info.GoVersion
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v + " " + info.GoVersion
}

// tuneGC lets the heap grow by half, not double, between collections unless
// GOGC says otherwise: the daemon's live heap is small (request buffers,
// listings) and its peak RSS is what a 512 MB worker feels. Measured here
// streaming 1 GiB: about 30 MiB peak instead of 31.5.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
}

func runMount(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	// Before any process is started, so that none inherits the ready pipe.
	detached := readyNotifierFromEnv(getenv)
	cfg, err := mountopts.Parse(args, getenv)
	if errors.Is(err, mountopts.ErrHelp) {
		mountopts.Usage(stdout)
		return exitOK
	}
	if err != nil {
		return exitWith(stderr, badSetup(err))
	}
	if cfg.Detach {
		return runDetached(cfg, stderr)
	}
	return exitWith(stderr, serveMount(cfg, args, detached, stderr, getenv))
}

// serveMount wires store → cache → splitter → tree, mounts, and serves
// until unmounted or signalled. Its errors are reported by exitWith.
func serveMount(cfg mountopts.Config, args []string, detached *readyNotifier, stderr io.Writer, getenv func(string) string) error {
	log, closeLog, err := startLogging(cfg, stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	tuneGC(getenv)
	if err := checkMountPoint(cfg.MountPoint); err != nil {
		return badSetup(err)
	}
	if err := checkCachePlacement(cfg.CacheDir, cfg.MountPoint); err != nil {
		return badSetup(err)
	}
	warnSecretsInArgs(args, cfg, log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	m := newMetrics()
	d, err := openStack(ctx, cfg, log, m)
	if err != nil {
		return err
	}
	defer d.close()
	mnt, err := d.tree.Mount(cfg.MountPoint, fs.MountOptions{
		AllowOther: cfg.AllowOther,
		FsName:     cfg.Source,
		Debug:      getenv("S3DOCS_FUSE_DEBUG") != "",
	})
	if err != nil {
		return err
	}
	log.Info("mounted", "source", cfg.Source, "mountpoint", cfg.MountPoint, "endpoint", d.store.Endpoint(),
		"cache_dir", cfg.CacheDir, "cache_size", cfg.CacheSize, "passthrough", d.tree.Passthrough())
	if d.empty {
		log.Warn("nothing under the mounted prefix yet: the mount is empty until objects are put there",
			"source", cfg.Source)
	}
	detached.ready(log)
	// systemd (Type=notify) learns that the mount answers.
	systemd := sdnotify.New(getenv("NOTIFY_SOCKET"))
	if err := systemd.Notify("READY=1", "STATUS=serving "+cfg.Source+" at "+cfg.MountPoint); err != nil {
		log.Warn("could not notify systemd", "err", err)
	}

	serveUntilStopped(ctx, stop, mnt, systemd, cfg.MountPoint, log)
	st := d.cache.Stats()
	log.Info("stopped", "gets", st.Gets, "get_bytes", st.GetBytes, "hits", st.Hits, "misses", st.Misses,
		"joins", st.Joins, "evictions", st.Evictions, "cache_bytes", d.cache.Bytes())
	return nil
}

// startLogging opens the log (stderr or --log-file) and returns its logger.
func startLogging(cfg mountopts.Config, stderr io.Writer) (*slog.Logger, func(), error) {
	if cfg.LogFile != "" {
		if err := checkLogPlacement(cfg.LogFile, cfg.MountPoint); err != nil {
			return nil, nil, badSetup(err)
		}
	}
	logOut, closeLog, err := logOutput(cfg, stderr)
	if err != nil {
		return nil, nil, badSetup(err)
	}
	log := newLogger(cfg, logOut)
	if lf, ok := logOut.(*logFile); ok {
		lf.announceReopens(log)
	}
	return log, closeLog, nil
}

// stack is what a mount serves: the store, the chunk cache, the metrics
// server, the split workers and the tree, built in that order and closed
// in the reverse one.
type stack struct {
	store   *s3store.Store
	empty   bool // nothing under the prefix yet
	cache   *chunkcache.Cache
	tree    *fs.FS
	closers []func()
}

func (d *stack) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// openStack builds what a mount serves; on error, what was built is
// closed.
func openStack(ctx context.Context, cfg mountopts.Config, log *slog.Logger, m *metrics) (_ *stack, err error) {
	d := &stack{}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.store, d.empty, err = openStore(ctx, cfg, log, m); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() { d.store.Close() })
	m.watchStore(d.store)
	if d.cache, err = openCache(cfg, d.store, log, m); err != nil {
		return nil, err // exitWith tells a refused directory from an I/O failure
	}
	d.closers = append(d.closers, func() { d.cache.Close() })
	m.watchCache(d.cache, cfg.CacheSize)
	if cfg.MetricsAddr != "" {
		mctx, stopMetrics := context.WithCancel(ctx)
		d.closers = append(d.closers, stopMetrics)
		if _, err := m.serve(mctx, cfg.MetricsAddr, cfg.Pprof, log); err != nil {
			return nil, badSetup(err)
		}
	}
	pool, err := newSplitPool(cfg, log)
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() { pool.Close() })
	parts := splitter.NewService(pool, d.cache, log, m.observeSplit)
	if d.tree, err = newTree(cfg, d.store, d.cache, parts, log, m); err != nil {
		return nil, err
	}
	m.watchTree(d.tree)
	return d, nil
}

// openCache opens the chunk cache in front of store.
func openCache(cfg mountopts.Config, store *s3store.Store, log *slog.Logger, m *metrics) (*chunkcache.Cache, error) {
	return chunkcache.Open(chunkcache.Options{
		Dir:               cfg.CacheDir,
		MaxBytes:          cfg.CacheSize,
		ChunkSize:         cfg.ChunkSize,
		Namespace:         store.Endpoint() + "|" + cfg.Bucket + "|" + cfg.Prefix,
		MaxConcurrentGets: cfg.MaxConcurrentGets,
		ReadAhead:         cfg.ReadAhead,
		ReadTimeout:       cfg.ReadTimeout,
		Logger:            log,
		OnFetch:           m.observeFetch,
	}, store)
}

// newTree is the file tree: listings and lookups from store, reads through
// cache, parts from parts.
func newTree(cfg mountopts.Config, store *s3store.Store, cache *chunkcache.Cache, parts fs.Parts, log *slog.Logger, m *metrics) (*fs.FS, error) {
	var probe func() (*os.File, error)
	if cfg.Passthrough == mountopts.PassthroughAuto {
		probe = cache.ProbeFile
	}
	return fs.New(fs.Options{
		Store:                store,
		PassthroughProbe:     probe,
		OpenReader:           func(v object.Version) fs.Reader { return cache.NewReader(v) },
		OpenBackgroundReader: func(v object.Version) fs.Reader { return cache.NewBackgroundReader(v) },
		Discard:              cache.Discard,
		MetadataTTL:          cfg.MetadataTTL,
		// One deadline for every operation against the store: a lookup
		// and a listing page wait out throttling as long as a read does.
		LookupTimeout: cfg.ReadTimeout,
		PageTimeout:   cfg.ReadTimeout,
		// While the store throttles, a lookup's listing waits for its
		// HEAD instead of going beside it.
		Throttled: store.Throttled,
		UID:       cfg.UID,
		GID:       cfg.GID,
		FileMode:  cfg.FileMode,
		DirMode:   cfg.DirMode,
		Logger:    log,
		Parts:     parts,
		PartPages: cfg.PartPages,
		Observer:  m,
	})
}

// openStore builds the S3 client and checks, with one cheap request, that
// the bucket answers: the usual setup mistakes (wrong bucket, credentials,
// endpoint) are setup errors, reported before anything is mounted. A store
// that throttles the check is waited for, up to --read-timeout.
func openStore(ctx context.Context, cfg mountopts.Config, log *slog.Logger, m *metrics) (store *s3store.Store, empty bool, err error) {
	store, err = s3store.New(ctx, s3store.Options{
		Bucket:         cfg.Bucket,
		Prefix:         cfg.Prefix,
		EndpointURL:    cfg.EndpointURL,
		Region:         cfg.Region,
		ForcePathStyle: cfg.ForcePathStyle,
		MaxConns:       cfg.MaxConcurrentGets,
		Logger:         log,
		OnRequest:      m.observeRequest,
		OnRetry:        m.observeRetry,
	})
	if err != nil {
		return nil, false, badSetup(err)
	}
	checkCtx, cancel := context.WithTimeout(ctx, cfg.ReadTimeout)
	defer cancel()
	if empty, err = store.Check(checkCtx); err != nil {
		store.Close()
		if ctx.Err() != nil {
			// SIGTERM or SIGINT while the check waited on the server: not
			// the operator's setup, and nothing was mounted.
			return nil, false, errStoppedBeforeMount
		}
		return nil, false, badSetup(err)
	}
	return store, empty, nil
}

// errStoppedBeforeMount: a signal came before the mount was up. It exits
// 1, not 0, so that a --detach parent and systemd see that nothing serves.
var errStoppedBeforeMount = errors.New("stopped by a signal before the mount was up")

// newSplitPool is the pool of PDF-splitting worker processes: this binary,
// re-executed with the hidden worker subcommand.
func newSplitPool(cfg mountopts.Config, log *slog.Logger) (*worker.Pool, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find own executable for split workers: %w", err)
	}
	return worker.NewPool(worker.Options{
		Command:     []string{exe, splitWorkerCommand},
		MemoryLimit: cfg.SplitMemoryLimit,
		Timeout:     cfg.SplitTimeout,
		IdleTimeout: splitIdleTimeout,
		MaxWorkers:  cfg.SplitWorkers,
		UID:         int(cfg.SplitUID),
		GID:         int(cfg.SplitGID),
		Logger:      log,
	})
}

// logOutput is stderr, or the --log-file, reopened on SIGHUP for logrotate.
func logOutput(cfg mountopts.Config, stderr io.Writer) (io.Writer, func(), error) {
	if cfg.LogFile == "" {
		// A daemon outlives its terminal: a hangup must not end it.
		signal.Ignore(syscall.SIGHUP)
		return stderr, func() {}, nil
	}
	lf, err := openLogFile(cfg.LogFile)
	if err != nil {
		return nil, nil, err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				if err := lf.Reopen(); err != nil {
					fmt.Fprintf(stderr, "s3docs: %v\n", err)
				}
			case <-done:
				return
			}
		}
	}()
	return lf, func() {
		signal.Stop(hup)
		close(done)
		lf.Close()
	}, nil
}

// serveUntilStopped returns when the file system is unmounted from outside,
// or, after SIGTERM/SIGINT (ctx), once it is unmounted or the grace period
// is over.
func serveUntilStopped(ctx context.Context, stopSignals func(), mnt *fs.Mounted, systemd sdnotify.Notifier, mountpoint string, log *slog.Logger) {
	unmounted := make(chan struct{})
	go func() {
		mnt.Wait()
		close(unmounted)
	}()
	select {
	case <-unmounted:
		log.Info("unmounted from outside")
		return
	case <-ctx.Done():
	}
	stopSignals() // a second signal ends the process the default way
	log.Info("signal received, unmounting")
	if err := systemd.Notify("STOPPING=1"); err != nil {
		log.Warn("could not notify systemd", "err", err)
	}
	// Unmount waits for requests in flight; a stuck one must not hold the
	// shutdown past the grace period.
	go func() {
		lazy, err := mnt.Unmount()
		switch {
		case err != nil:
			log.Error("unmount failed", "err", err)
		case lazy:
			log.Warn("mount point busy (a process has a file open or its working directory there); detached lazily",
				"mountpoint", mountpoint)
		}
	}()
	select {
	case <-unmounted:
	case <-time.After(shutdownGrace):
		// Exiting closes the FUSE connection: whoever still holds a file
		// gets ENOTCONN instead of a daemon that never stops.
		log.Warn("file system still in use after the grace period; exiting anyway", "grace", shutdownGrace)
	}
}

// shutdownGrace bounds how long SIGTERM waits for requests in flight and
// for open files after the mount point has been detached.
const shutdownGrace = 5 * time.Second

func newLogger(cfg mountopts.Config, w io.Writer) *slog.Logger {
	ho := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// checkMountPoint refuses what would fail later or hide data: a missing or
// non-directory path, a directory with entries, or an existing mount.
func checkMountPoint(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mount point %s does not exist", dir)
		}
		var errno syscall.Errno
		if errors.As(err, &errno) && errno == syscall.ENOTCONN {
			return deadMountError(dir)
		}
		return fmt.Errorf("mount point: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("mount point %s is not a directory", dir)
	}
	if m, mounted, err := mountAt(dir); err == nil && mounted {
		if isDeadFUSE(m) {
			return deadMountError(dir)
		}
		return fmt.Errorf("mount point %s is already mounted", dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("mount point %s is not empty", dir)
	}
	return nil
}
