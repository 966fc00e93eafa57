// Package mountopts turns the arguments of `s3docs mount` into a validated
// Config. One table of option specs drives the flag set, the usage text, the
// fstab -o parser and validation, so none of them can drift from the others.
package mountopts

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// Config is everything `s3docs mount` was asked to do, validated.
type Config struct {
	Source      string // as given, e.g. "s3://docs/cases"
	Bucket      string // "docs"
	Prefix      string // "" or "cases/": ends with "/" when non-empty, never starts with "/"
	MountPoint  string // absolute, cleaned
	EndpointURL string // "" lets the SDK pick the AWS endpoint
	Region      string // "" lets the SDK default chain decide

	ForcePathStyle bool

	CacheDir          string
	CacheSize         int64
	ChunkSize         int64
	MetadataTTL       time.Duration // 0 disables metadata caching
	MaxConcurrentGets int
	ReadAhead         int64 // bytes; 0 disables read-ahead
	// ReadTimeout bounds one operation against the store, every retry
	// and every wait of throttling included: a read of an uncached range
	// (chunkcache.Options.ReadTimeout), a lookup, a listing page.
	ReadTimeout time.Duration
	// Passthrough lets the kernel read files the cache holds whole, and
	// parts, without the daemon (FUSE passthrough), where the kernel and
	// the daemon's privileges allow it: "auto" tries, "off" never does.
	Passthrough string

	PartPages        int           // pages per listed part under .parts/
	SplitMemoryLimit int64         // bytes a PDF-splitting worker may use
	SplitTimeout     time.Duration // per split request, parse included
	SplitWorkers     int           // PDF-splitting worker processes at once
	// SplitUID and SplitGID are the user a worker runs as when the daemon
	// runs as root; 0:0 keeps root (without capabilities).
	SplitUID, SplitGID uint32

	AllowOther bool
	UID, GID   uint32
	FileMode   os.FileMode // permission bits only
	DirMode    os.FileMode // permission bits only

	LogLevel  slog.Level
	LogFormat string // "text" or "json"

	LogFile     string // "" logs to stderr; else appended to this file, reopened on SIGHUP
	MetricsAddr string // "" serves no metrics; else HOST:PORT for Prometheus
	Pprof       bool   // also serve /debug/pprof on MetricsAddr

	// Detach makes `s3docs mount` return once the mount answers, leaving the
	// daemon running in its own session (how mount(8) needs a helper to behave).
	Detach bool
}

// The values of --passthrough.
const (
	PassthroughAuto = "auto"
	PassthroughOff  = "off"
)

// ErrHelp is returned by Parse when -h or --help was given, so the caller can
// print Usage and exit 0 instead of treating it as a failure.
var ErrHelp = errors.New("help requested")

const (
	sourceSyntax = "s3://BUCKET[/PREFIX]"
	usageLine    = "Usage: s3docs mount [flags] " + sourceSyntax + " MOUNTPOINT"

	minChunkSize = 64 << 10
	maxChunkSize = 1 << 30

	// maxKeyLen is S3's limit on key length; a longer prefix could name no object.
	maxKeyLen = 1024
)

type kind int

const (
	kindString kind = iota
	kindBool
	kindSize
	kindDuration
	kindInt
	kindMode
)

// spec is one option. name is the flag name; fstab is its key in a mount(8)
// option string ("cache_size=10GiB"), by convention name with "_" for "-"
// because fstab users expect the underscores of mount options, and empty for
// an option fstab must not set.
type spec struct {
	name  string
	fstab string
	kind  kind
	arg   string // placeholder in the usage text
	def   string // in the syntax a user would type, so it goes through set like user input
	// defFunc replaces def for defaults that depend on the user or environment;
	// defDoc then stands in for the value in the usage text, which must not
	// differ between machines.
	defFunc func(sys) (string, error)
	defDoc  string
	help    string
	set     func(c *Config, v string) error
	get     func(c *Config) string // inverse of set, for Args
}

// sys is what Parse reads from the process, injectable so tests are hermetic.
type sys struct {
	getenv       func(string) string
	euid         int
	uid, gid     int
	userCacheDir func() (string, error)
}

// specs returns a fresh table on every call so that no caller can change
// another's view of it.
func specs() []spec {
	return []spec{
		{
			name: "endpoint-url", fstab: "endpoint_url", kind: kindString, arg: "URL",
			defFunc: func(s sys) (string, error) { return s.getenv("AWS_ENDPOINT_URL"), nil },
			defDoc:  "$AWS_ENDPOINT_URL",
			help:    "S3 endpoint of an S3-compatible store; empty means AWS",
			set: func(c *Config, v string) error {
				if err := checkEndpoint(v); err != nil {
					return err
				}
				c.EndpointURL = v
				return nil
			},
			get: func(c *Config) string { return c.EndpointURL },
		},
		{
			name: "region", fstab: "region", kind: kindString, arg: "REGION",
			help: "region to sign requests for; empty lets the AWS SDK default chain decide",
			set: func(c *Config, v string) error {
				if err := checkRegion(v); err != nil {
					return err
				}
				c.Region = v
				return nil
			},
			get: func(c *Config) string { return c.Region },
		},
		{
			name: "force-path-style", fstab: "force_path_style", kind: kindBool, def: "false",
			help: "address buckets as ENDPOINT/BUCKET instead of BUCKET.ENDPOINT (most S3-compatible stores need this)",
			set:  func(c *Config, v string) error { return setBool(&c.ForcePathStyle, v) },
			get:  func(c *Config) string { return strconv.FormatBool(c.ForcePathStyle) },
		},
		{
			name: "cache-dir", fstab: "cache_dir", kind: kindString, arg: "DIR",
			defFunc: defaultCacheDir,
			defDoc:  "/var/cache/s3docs for root, else s3docs in the user cache directory",
			help:    "directory for cached object data",
			set: func(c *Config, v string) error {
				if v == "" {
					return errors.New("must not be empty")
				}
				// The daemon may change directory when it detaches, so a
				// relative path would silently point somewhere else.
				abs, err := filepath.Abs(v)
				if err != nil {
					return fmt.Errorf("%q: %v", v, err)
				}
				c.CacheDir = abs
				return nil
			},
			get: func(c *Config) string { return c.CacheDir },
		},
		{
			name: "cache-size", fstab: "cache_size", kind: kindSize, def: "10GiB",
			help: "upper bound of the on-disk cache; at least --chunk-size",
			set:  func(c *Config, v string) error { return setSize(&c.CacheSize, v, 0, -1) },
			get:  func(c *Config) string { return FormatSize(c.CacheSize) },
		},
		{
			name: "chunk-size", fstab: "chunk_size", kind: kindSize, def: "8MiB",
			help: "unit of GETs and of caching, 64KiB to 1GiB",
			set:  func(c *Config, v string) error { return setSize(&c.ChunkSize, v, minChunkSize, maxChunkSize) },
			get:  func(c *Config) string { return FormatSize(c.ChunkSize) },
		},
		{
			name: "metadata-ttl", fstab: "metadata_ttl", kind: kindDuration, def: "60s",
			help: "how long listings and attributes are trusted before S3 is asked again; 0 always asks",
			set: func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("invalid duration %q (use e.g. 60s, 5m, 0)", v)
				}
				if d < 0 {
					return fmt.Errorf("invalid duration %q: must not be negative", v)
				}
				c.MetadataTTL = d
				return nil
			},
			get: func(c *Config) string { return c.MetadataTTL.String() },
		},
		{
			name: "max-concurrent-gets", fstab: "max_concurrent_gets", kind: kindInt, arg: "N", def: "16",
			help: "upper bound on GET requests in flight to S3",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Errorf("invalid number %q", v)
				}
				if n < 1 {
					return fmt.Errorf("invalid number %q: must be at least 1", v)
				}
				// Each GET in flight is a connection and a chunk that may take
				// the cache over its bound; a typo of a few more digits must
				// not become thousands of them (nor overflow the pool's size,
				// twice this).
				if n > 1024 {
					return fmt.Errorf("invalid number %q: want at most 1024", v)
				}
				c.MaxConcurrentGets = n
				return nil
			},
			get: func(c *Config) string { return strconv.Itoa(c.MaxConcurrentGets) },
		},
		{
			name: "read-ahead", fstab: "read_ahead", kind: kindSize, def: "64MiB",
			help: "how far ahead of a sequential reader to fetch; 0 disables read-ahead",
			set:  func(c *Config, v string) error { return setSize(&c.ReadAhead, v, 0, -1) },
			get:  func(c *Config) string { return FormatSize(c.ReadAhead) },
		},
		{
			name: "read-timeout", fstab: "read_timeout", kind: kindDuration, def: "2m",
			help: "time one read, lookup or listing page may wait for S3, retries and throttling included, before it fails with EIO",
			set: func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil || d < time.Second {
					return fmt.Errorf("invalid duration %q (use e.g. 30s, 2m; at least 1s)", v)
				}
				c.ReadTimeout = d
				return nil
			},
			get: func(c *Config) string { return c.ReadTimeout.String() },
		},
		{
			name: "passthrough", fstab: "passthrough", kind: kindString, arg: "MODE", def: PassthroughAuto,
			help: "auto: the kernel reads files the cache holds whole, and parts, without the daemon (FUSE passthrough, where the kernel and privileges allow it); off: every read goes through the daemon",
			set: func(c *Config, v string) error {
				switch m := strings.ToLower(v); m {
				case PassthroughAuto, PassthroughOff:
					c.Passthrough = m
				default:
					return fmt.Errorf("invalid mode %q (want auto or off)", v)
				}
				return nil
			},
			get: func(c *Config) string { return c.Passthrough },
		},
		{
			name: "part-pages", fstab: "part_pages", kind: kindInt, arg: "N", def: "50",
			help: "pages per part listed under .parts/<key>/ (any other range can still be looked up)",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 1_000_000 {
					return fmt.Errorf("invalid number %q: want 1 to 1000000", v)
				}
				c.PartPages = n
				return nil
			},
			get: func(c *Config) string { return strconv.Itoa(c.PartPages) },
		},
		{
			name: "split-memory-limit", fstab: "split_memory_limit", kind: kindSize, def: "128MiB",
			help: "memory a PDF-splitting worker process may use before it is killed",
			set:  func(c *Config, v string) error { return setSize(&c.SplitMemoryLimit, v, 64<<20, -1) },
			get:  func(c *Config) string { return FormatSize(c.SplitMemoryLimit) },
		},
		{
			name: "split-timeout", fstab: "split_timeout", kind: kindDuration, def: "2m",
			help: "time one split request (the parse included) may take before its worker is killed",
			set: func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 {
					return fmt.Errorf("invalid duration %q (use e.g. 30s, 2m)", v)
				}
				c.SplitTimeout = d
				return nil
			},
			get: func(c *Config) string { return c.SplitTimeout.String() },
		},
		{
			name: "split-workers", fstab: "split_workers", kind: kindInt, arg: "N", def: "2",
			help: "PDF-splitting worker processes at once (each under --split-memory-limit)",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 64 {
					return fmt.Errorf("invalid number %q: want 1 to 64", v)
				}
				c.SplitWorkers = n
				return nil
			},
			get: func(c *Config) string { return strconv.Itoa(c.SplitWorkers) },
		},
		{
			name: "split-user", fstab: "split_user", kind: kindString, arg: "UID:GID", def: "65534:65534",
			help: "numeric user and group PDF-splitting workers run as when the daemon runs as root (0:0 keeps root, without capabilities)",
			set: func(c *Config, v string) error {
				u, g, ok := strings.Cut(v, ":")
				if !ok || setID(&c.SplitUID, u) != nil || setID(&c.SplitGID, g) != nil || c.SplitUID > 1<<31-1 || c.SplitGID > 1<<31-1 {
					return fmt.Errorf("invalid user %q (want UID:GID, e.g. 65534:65534)", v)
				}
				return nil
			},
			get: func(c *Config) string {
				return strconv.FormatUint(uint64(c.SplitUID), 10) + ":" + strconv.FormatUint(uint64(c.SplitGID), 10)
			},
		},
		{
			name: "allow-other", fstab: "allow_other", kind: kindBool, def: "false",
			help: "let users other than the mounting one access the mount (non-root needs user_allow_other in /etc/fuse.conf)",
			set:  func(c *Config, v string) error { return setBool(&c.AllowOther, v) },
			get:  func(c *Config) string { return strconv.FormatBool(c.AllowOther) },
		},
		{
			name: "uid", fstab: "uid", kind: kindInt, arg: "UID",
			defFunc: func(s sys) (string, error) { return strconv.Itoa(s.uid), nil },
			defDoc:  "the current user",
			help:    "numeric owner of every file and directory",
			set:     func(c *Config, v string) error { return setID(&c.UID, v) },
			get:     func(c *Config) string { return strconv.FormatUint(uint64(c.UID), 10) },
		},
		{
			name: "gid", fstab: "gid", kind: kindInt, arg: "GID",
			defFunc: func(s sys) (string, error) { return strconv.Itoa(s.gid), nil },
			defDoc:  "the current group",
			help:    "numeric group of every file and directory",
			set:     func(c *Config, v string) error { return setID(&c.GID, v) },
			get:     func(c *Config) string { return strconv.FormatUint(uint64(c.GID), 10) },
		},
		{
			name: "file-mode", fstab: "file_mode", kind: kindMode, def: "0444",
			help: "permission bits of every file, octal",
			set:  func(c *Config, v string) error { return setMode(&c.FileMode, v) },
			get:  func(c *Config) string { return formatMode(c.FileMode) },
		},
		{
			name: "dir-mode", fstab: "dir_mode", kind: kindMode, def: "0555",
			help: "permission bits of every directory, octal",
			set:  func(c *Config, v string) error { return setMode(&c.DirMode, v) },
			get:  func(c *Config) string { return formatMode(c.DirMode) },
		},
		{
			name: "log-level", fstab: "log_level", kind: kindString, arg: "LEVEL", def: "info",
			help: "debug, info, warn or error",
			set: func(c *Config, v string) error {
				switch strings.ToLower(v) {
				case "debug":
					c.LogLevel = slog.LevelDebug
				case "info":
					c.LogLevel = slog.LevelInfo
				case "warn":
					c.LogLevel = slog.LevelWarn
				case "error":
					c.LogLevel = slog.LevelError
				default:
					return fmt.Errorf("invalid log level %q (want debug, info, warn or error)", v)
				}
				return nil
			},
			get: func(c *Config) string { return strings.ToLower(c.LogLevel.String()) },
		},
		{
			name: "log-format", fstab: "log_format", kind: kindString, arg: "FORMAT", def: "text",
			help: "text or json",
			set: func(c *Config, v string) error {
				switch f := strings.ToLower(v); f {
				case "text", "json":
					c.LogFormat = f
				default:
					return fmt.Errorf("invalid log format %q (want text or json)", v)
				}
				return nil
			},
			get: func(c *Config) string { return c.LogFormat },
		},
		{
			name: "log-file", fstab: "log_file", kind: kindString, arg: "PATH",
			help: "append logs to this file instead of stderr; SIGHUP reopens it (for logrotate)",
			set: func(c *Config, v string) error {
				if v == "" {
					c.LogFile = ""
					return nil
				}
				abs, err := filepath.Abs(v)
				if err != nil {
					return fmt.Errorf("invalid path %q: %v", v, err)
				}
				c.LogFile = abs
				return nil
			},
			get: func(c *Config) string { return c.LogFile },
		},
		{
			name: "metrics-addr", fstab: "metrics_addr", kind: kindString, arg: "HOST:PORT",
			help: "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9478); empty serves none",
			set: func(c *Config, v string) error {
				if v != "" {
					if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
						return fmt.Errorf("invalid address %q (want HOST:PORT, e.g. 127.0.0.1:9478)", v)
					}
				}
				c.MetricsAddr = v
				return nil
			},
			get: func(c *Config) string { return c.MetricsAddr },
		},
		{
			name: "pprof", fstab: "pprof", kind: kindBool, def: "false",
			help: "also serve /debug/pprof/ on --metrics-addr",
			set:  func(c *Config, v string) error { return setBool(&c.Pprof, v) },
			get:  func(c *Config) string { return strconv.FormatBool(c.Pprof) },
		},
		{
			// No fstab key: mount.fuse.s3docs always detaches, and a daemon
			// staying in the foreground would keep mount(8) waiting for ever.
			name: "detach", kind: kindBool, def: "false",
			help: "return once the mount answers, leaving the daemon running in the background; on failure exit non-zero with the reason (mount.fuse.s3docs uses this)",
			set:  func(c *Config, v string) error { return setBool(&c.Detach, v) },
			get:  func(c *Config) string { return strconv.FormatBool(c.Detach) },
		},
	}
}

func lookup(table []spec, name string) (spec, bool) {
	for _, s := range table {
		if s.name == name {
			return s, true
		}
	}
	return spec{}, false
}

func (s spec) defaultValue(sy sys) (string, error) {
	if s.defFunc != nil {
		return s.defFunc(sy)
	}
	return s.def, nil
}

// Parse parses the arguments of `s3docs mount` (everything after "mount"):
// flags and exactly two positionals, s3://BUCKET[/PREFIX] and MOUNTPOINT, in
// any order; "--" ends the flags. getenv supplies environment defaults
// (os.Getenv in production). Errors are one line and name the offending flag
// or value. Parse touches the file system only to make paths absolute.
func Parse(args []string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	return parse(args, sys{
		getenv:       getenv,
		euid:         os.Geteuid(),
		uid:          os.Getuid(),
		gid:          os.Getgid(),
		userCacheDir: os.UserCacheDir,
	})
}

func parse(args []string, sy sys) (Config, error) {
	table := specs()
	var cfg Config

	// A default that cannot be computed or is invalid (say a malformed
	// $AWS_ENDPOINT_URL) is only an error if the user does not override it.
	defErrs := map[string]error{}
	for _, s := range table {
		v, err := s.defaultValue(sy)
		if err != nil {
			defErrs[s.name] = fmt.Errorf("%s: no default: %v; pass it explicitly", flagName(s.name), err)
			continue
		}
		if err := s.set(&cfg, v); err != nil {
			src := s.defDoc
			if src == "" {
				src = "default"
			}
			defErrs[s.name] = fmt.Errorf("%s: %s: %v", flagName(s.name), src, err)
		}
	}

	fs := flag.NewFlagSet("s3docs mount", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	// The flag package wraps Set errors in its own wording; keep ours.
	var setErr error
	for _, s := range table {
		fn := func(v string) error {
			err := s.set(&cfg, v)
			if err != nil && setErr == nil {
				setErr = fmt.Errorf("%s: %w", flagName(s.name), err)
			}
			return err
		}
		if s.kind == kindBool {
			fs.BoolFunc(s.name, s.help, fn)
		} else {
			fs.Func(s.name, s.help, fn)
		}
	}
	// -o applies each option through its flag, so that flags and -o options
	// override each other in command-line order and count as given explicitly.
	fs.Func(optionsFlag, "", func(v string) error {
		opts, err := fstabOptions(table, v)
		if err != nil {
			if setErr == nil {
				setErr = err
			}
			return err
		}
		for _, o := range opts {
			if err := fs.Set(o.flag, o.value); err != nil {
				return err
			}
		}
		return nil
	})

	flagArgs, positional := splitArgs(table, args)
	if err := fs.Parse(flagArgs); err != nil {
		return Config{}, flagError(err, setErr)
	}
	// splitArgs hands the flag package only flags, so this is empty unless the
	// two disagree about where flags end; positionals are safer than dropping.
	positional = append(positional, fs.Args()...)

	if len(positional) == 0 {
		return Config{}, fmt.Errorf("missing source %s and mount point", sourceSyntax)
	}
	var err error
	cfg.Source = positional[0]
	if cfg.Bucket, cfg.Prefix, err = parseSource(cfg.Source); err != nil {
		return Config{}, err
	}
	if len(positional) > 2 {
		return Config{}, fmt.Errorf("unexpected argument %q: want exactly %s and MOUNTPOINT", positional[2], sourceSyntax)
	}
	if len(positional) < 2 || positional[1] == "" {
		return Config{}, errors.New("missing mount point")
	}
	if cfg.MountPoint, err = filepath.Abs(positional[1]); err != nil {
		return Config{}, fmt.Errorf("mount point %q: %v", positional[1], err)
	}

	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	for _, s := range table {
		if err := defErrs[s.name]; err != nil && !explicit[s.name] {
			return Config{}, err
		}
	}

	if cfg.CacheSize < cfg.ChunkSize {
		return Config{}, fmt.Errorf("--cache-size %s is smaller than --chunk-size %s", FormatSize(cfg.CacheSize), FormatSize(cfg.ChunkSize))
	}
	return cfg, nil
}

// splitArgs separates flags (with their values) from positionals, so that
// flags may follow positionals, which the flag package alone does not allow.
// It mirrors the flag package's rules: a non-bool flag without "=" takes the
// next argument as its value, whatever it looks like.
func splitArgs(table []spec, args []string) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(positional, args[i+1:]...)
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimPrefix(a[1:], "-")
		if strings.Contains(name, "=") {
			continue
		}
		if takesValue(table, name) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, positional
}

func takesValue(table []spec, name string) bool {
	if name == optionsFlag {
		return true
	}
	s, ok := lookup(table, name)
	return ok && s.kind != kindBool
}

// flagError rewrites the flag package's errors into this package's one-line,
// "--flag" wording.
func flagError(err, setErr error) error {
	if errors.Is(err, flag.ErrHelp) {
		return ErrHelp
	}
	if setErr != nil {
		return setErr
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag %s", flagName(name))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("%s: missing value", flagName(name))
	}
	if arg, ok := strings.CutPrefix(msg, "bad flag syntax: "); ok {
		return fmt.Errorf("bad flag syntax %q", arg)
	}
	return errors.New(strings.ReplaceAll(msg, "\n", `\n`))
}

// flagName quotes names that would break the one-line error promise.
func flagName(name string) string {
	n := "--" + name
	if name == optionsFlag {
		n = "-" + name
	}
	if strings.IndexFunc(n, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 || !utf8.ValidString(n) {
		return strconv.Quote(n)
	}
	return n
}

func parseSource(src string) (bucket, prefix string, err error) {
	malformed := func(why string) error {
		if why == "" {
			return fmt.Errorf("malformed source %q: want %s", src, sourceSyntax)
		}
		return fmt.Errorf("malformed source %q: %s", src, why)
	}
	rest, ok := strings.CutPrefix(src, "s3://")
	if !ok {
		return "", "", malformed("")
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", malformed("")
	}
	if err := checkBucket(bucket); err != nil {
		return "", "", fmt.Errorf("malformed source %q: bucket name %q %v", src, bucket, err)
	}
	if prefix == "" {
		return bucket, "", nil
	}
	if !utf8.ValidString(prefix) {
		return "", "", malformed("prefix is not valid UTF-8")
	}
	// One trailing "/" is how users say "directory"; any other empty segment
	// would name a key S3 treats as distinct yet no one means.
	trimmed := strings.TrimSuffix(prefix, "/")
	for seg := range strings.SplitSeq(trimmed, "/") {
		switch seg {
		case "":
			return "", "", malformed("empty path segment in prefix")
		case ".", "..":
			return "", "", malformed(`"." and ".." are not allowed in the prefix`)
		}
	}
	if len(trimmed)+1 > maxKeyLen {
		return "", "", malformed(fmt.Sprintf("prefix longer than %d bytes", maxKeyLen-1))
	}
	return bucket, trimmed + "/", nil
}

// checkBucket applies S3's bucket naming rules, which also hold for
// path-style names on S3-compatible stores.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return errors.New("must be 3 to 63 characters long")
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return errors.New("may contain only lowercase letters, digits, dots and hyphens")
		}
	}
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) {
		return errors.New("must start and end with a letter or digit")
	}
	if strings.Contains(b, "..") {
		return errors.New("must not contain two adjacent dots")
	}
	if ip := net.ParseIP(b); ip != nil {
		return errors.New("must not be an IP address")
	}
	return nil
}

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func checkEndpoint(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid URL %q (want http(s)://HOST[:PORT])", v)
	}
	return nil
}

// checkRegion is lenient because S3-compatible stores use names like
// "garage" or "default"; it only rejects what cannot appear in a signature
// scope or host name.
func checkRegion(v string) error {
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("invalid region %q (want e.g. us-east-1)", v)
		}
	}
	return nil
}

func defaultCacheDir(s sys) (string, error) {
	if s.euid == 0 {
		return "/var/cache/s3docs", nil
	}
	dir, err := s.userCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "s3docs"), nil
}

func setBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("invalid boolean %q (want true or false)", v)
	}
	*dst = b
	return nil
}

// setSize stores v if it lies in [lo, hi]; hi < 0 means no upper bound.
func setSize(dst *int64, v string, lo, hi int64) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	if n < lo || (hi >= 0 && n > hi) {
		if hi < 0 {
			return fmt.Errorf("size %q must be at least %s", v, FormatSize(lo))
		}
		return fmt.Errorf("size %q must be between %s and %s", v, FormatSize(lo), FormatSize(hi))
	}
	*dst = n
	return nil
}

func setID(dst *uint32, v string) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return fmt.Errorf("invalid id %q (want a number from 0 to %d)", v, uint32(1<<32-1))
	}
	*dst = uint32(n)
	return nil
}

func setMode(dst *os.FileMode, v string) error {
	digits := strings.TrimPrefix(strings.TrimPrefix(v, "0o"), "0O")
	n, err := strconv.ParseUint(digits, 8, 32)
	if err != nil {
		return fmt.Errorf("invalid mode %q (want octal, e.g. 0444)", v)
	}
	if n&^uint64(os.ModePerm) != 0 {
		return fmt.Errorf("invalid mode %q: only permission bits (0777) are allowed", v)
	}
	*dst = os.FileMode(n)
	return nil
}

func formatMode(m os.FileMode) string { return fmt.Sprintf("%04o", uint32(m)) }

// Usage writes the usage line and every flag with its default and help text.
func Usage(w io.Writer) {
	fmt.Fprintln(w, usageLine)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Flags:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, o := range Options() {
		left := "--" + o.Name
		if o.Arg != "" {
			left += " " + o.Arg
		}
		help := o.Help
		if o.Default != "" {
			help += " (default " + o.Default + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", left, help)
	}
	fmt.Fprintf(tw, "  %s\t%s\n", "-o OPTS", OptionsHelp)
	fmt.Fprintf(tw, "  %s\t%s\n", "-h, --help", "show this help")
	tw.Flush()
}

// OptionsHelp describes -o, the options of an fstab line.
const OptionsHelp = "options as in fstab, comma-separated, repeatable: each flag's fstab key is its name with _ for - " +
	"(cache_size=10GiB,allow_other); rw, ro, nofail, _netdev, defaults, x-* and other mount(8) options are ignored"

// Option is one flag of `s3docs mount` as the usage text and the man page
// show it, both made from this one table.
type Option struct {
	Name    string // "cache-size": the flag is --cache-size
	Arg     string // "SIZE"; "" for a switch
	Fstab   string // its key in -o ("cache_size"); "" if -o cannot set it
	Default string // as documented; "" if none worth showing
	Help    string
}

// Options are the flags of `s3docs mount`, in the order of the usage text.
func Options() []Option {
	var out []Option
	for _, s := range specs() {
		o := Option{Name: s.name, Fstab: s.fstab, Help: s.help}
		if s.kind != kindBool {
			o.Arg = s.placeholder()
		}
		if s.defDoc != "" {
			o.Default = s.defDoc
		} else if s.def != "" && s.def != "false" {
			o.Default = s.def
		}
		out = append(out, o)
	}
	return out
}

func (s spec) placeholder() string {
	if s.arg != "" {
		return s.arg
	}
	switch s.kind {
	case kindSize:
		return "SIZE"
	case kindDuration:
		return "DURATION"
	case kindInt:
		return "N"
	case kindMode:
		return "MODE"
	}
	return "VALUE"
}

// Args renders c as arguments that Parse turns back into c, so a daemon that
// re-executes itself (or logs its effective settings) need not know the flags.
func (c Config) Args() []string {
	var args []string
	for _, s := range specs() {
		args = append(args, "--"+s.name+"="+s.get(&c))
	}
	src := c.Source
	if src == "" {
		src = "s3://" + c.Bucket
		if c.Prefix != "" {
			src += "/" + c.Prefix
		}
	}
	return append(args, "--", src, c.MountPoint)
}

// optionsFlag is the flag that carries a mount(8) option string, as mount(8)
// passes it to a helper and as users of other FUSE file systems type it.
const optionsFlag = "o"

// ParseFstabOptions turns a mount(8) option string such as
// "cache_size=10GiB,allow_other,nofail" into flag arguments for Parse, so
// fstab and the command line share one table and one validator. Keys are the
// options' fstab keys (their flag names are accepted too); options that
// mount(8), systemd or the kernel consume are skipped. Errors are one line and
// name the option and the bad value.
func ParseFstabOptions(opts string) ([]string, error) {
	parsed, err := fstabOptions(specs(), opts)
	if err != nil {
		return nil, err
	}
	var args []string
	for _, o := range parsed {
		if o.bare {
			args = append(args, "--"+o.flag)
		} else {
			args = append(args, "--"+o.flag+"="+o.value)
		}
	}
	return args, nil
}

// fstabOption is one option of a mount(8) option string, resolved to a flag.
type fstabOption struct {
	flag, value string
	bare        bool // a bool given without "=", meaning true
}

func fstabOptions(table []spec, opts string) ([]fstabOption, error) {
	items, err := splitMountOptions(opts)
	if err != nil {
		return nil, err
	}
	var out []fstabOption
	for _, o := range items {
		key, val, hasVal := strings.Cut(o, "=")
		if o == "" || ignoredMountOption(key) {
			continue
		}
		s, ok := lookupFstab(table, key)
		if !ok {
			return nil, fmt.Errorf("unknown mount option %s", strconv.Quote(key))
		}
		if !hasVal {
			if s.kind != kindBool {
				return nil, fmt.Errorf("mount option %s: missing value", optionName(key))
			}
			out = append(out, fstabOption{flag: s.name, value: "true", bare: true})
			continue
		}
		val = unquoteOption(val)
		// Validating here lets the error use the fstab spelling the user wrote.
		if err := s.set(&Config{}, val); err != nil {
			return nil, fmt.Errorf("mount option %s: %v", optionName(key), err)
		}
		out = append(out, fstabOption{flag: s.name, value: val})
	}
	return out, nil
}

// lookupFstab finds an option by its fstab key or, for convenience on the
// command line, its flag name. An option without an fstab key stays out of
// reach, so no fstab line can undo what the helper relies on.
func lookupFstab(table []spec, key string) (spec, bool) {
	for _, s := range table {
		if s.fstab != "" && (s.fstab == key || s.name == key) {
			return s, true
		}
	}
	return spec{}, false
}

// splitMountOptions splits at commas outside double quotes, as libmount does,
// so that a value like cache_dir="/srv/a,b" survives the trip through fstab.
func splitMountOptions(opts string) ([]string, error) {
	var items []string
	start, quoted := 0, false
	for i := 0; i < len(opts); i++ {
		switch opts[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				items = append(items, opts[start:i])
				start = i + 1
			}
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in mount options %s", strconv.Quote(opts))
	}
	return append(items, opts[start:]), nil
}

// unquoteOption strips the quotes libmount leaves around a quoted value.
func unquoteOption(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// optionName quotes keys that would break the one-line error promise.
func optionName(key string) string {
	if strings.IndexFunc(key, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 || !utf8.ValidString(key) {
		return strconv.Quote(key)
	}
	return key
}

// ignoredMountOption reports options that are not s3docs's to interpret:
// mount(8) and systemd act on them before the helper runs (noauto, nofail,
// _netdev, user, x-systemd.*); they are comments; or they describe the kernel
// mount, which s3docs always makes read-only, nosuid and nodev (exec and
// noexec are not applied: files carry no execute bit unless file_mode gives
// one). mount(8) passes several of them on to the helper ("rw" always), so
// rejecting them would break ordinary fstab lines.
func ignoredMountOption(key string) bool {
	switch key {
	case "rw", "ro", "defaults", "user", "users", "nouser", "auto", "noauto", "nofail", "_netdev",
		"dev", "nodev", "suid", "nosuid", "exec", "noexec", "comment":
		return true
	}
	// x-* (and X-*, which libmount also keeps) are userspace-only by definition.
	return strings.HasPrefix(key, "x-") || strings.HasPrefix(key, "X-")
}
