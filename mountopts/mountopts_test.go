package mountopts

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	testUID = 1000
	testGID = 100
)

func fakeSys(env map[string]string) sys {
	return sys{
		getenv:       func(k string) string { return env[k] },
		euid:         testUID,
		uid:          testUID,
		gid:          testGID,
		userCacheDir: func() (string, error) { return "/home/u/.cache", nil },
	}
}

func noUserCacheDir(s *sys) {
	s.userCacheDir = func() (string, error) { return "", errors.New("$HOME is not defined") }
}

// defaultConfig is what `s3docs mount s3://docs /mnt/docs` yields under fakeSys.
func defaultConfig() Config {
	return Config{
		Source:            "s3://docs",
		Bucket:            "docs",
		MountPoint:        "/mnt/docs",
		CacheDir:          "/home/u/.cache/s3docs",
		CacheSize:         10 << 30,
		ChunkSize:         8 << 20,
		MetadataTTL:       60 * time.Second,
		MaxConcurrentGets: 16,
		ReadAhead:         64 << 20,
		ReadTimeout:       2 * time.Minute,
		Passthrough:       "auto",
		PartPages:         50,
		SplitMemoryLimit:  128 << 20,
		SplitTimeout:      2 * time.Minute,
		SplitWorkers:      2,
		SplitUID:          65534,
		SplitGID:          65534,
		UID:               testUID,
		GID:               testGID,
		FileMode:          0o444,
		DirMode:           0o555,
		LogLevel:          slog.LevelInfo,
		LogFormat:         "text",
	}
}

func TestParse(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	pos := []string{"s3://docs", "/mnt/docs"}
	with := func(flags ...string) []string { return append(flags, pos...) }

	tests := []struct {
		name string
		args []string
		env  map[string]string
		sys  func(*sys)
		want func(*Config) // applied to defaultConfig()
	}{
		{name: "defaults", args: pos},
		{name: "endpoint from env", args: pos, env: map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:7070"},
			want: func(c *Config) { c.EndpointURL = "http://127.0.0.1:7070" }},
		{name: "endpoint flag beats env", args: with("--endpoint-url=https://s3.example.com"), env: map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:7070"},
			want: func(c *Config) { c.EndpointURL = "https://s3.example.com" }},
		{name: "endpoint flag overrides invalid env", args: with("--endpoint-url", "http://minio:9000"), env: map[string]string{"AWS_ENDPOINT_URL": "minio:9000"},
			want: func(c *Config) { c.EndpointURL = "http://minio:9000" }},
		{name: "endpoint flag empty clears env", args: with("--endpoint-url="), env: map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:7070"}},
		{name: "region", args: with("--region", "eu-west-1"), want: func(c *Config) { c.Region = "eu-west-1" }},
		{name: "force-path-style", args: with("--force-path-style"), want: func(c *Config) { c.ForcePathStyle = true }},
		{name: "force-path-style=false", args: with("--force-path-style", "--force-path-style=false")},
		{name: "single dash bool", args: with("-force-path-style=true"), want: func(c *Config) { c.ForcePathStyle = true }},
		{name: "cache-dir", args: with("--cache-dir", "/srv/cache/"), want: func(c *Config) { c.CacheDir = "/srv/cache" }},
		{name: "relative cache-dir made absolute", args: with("--cache-dir=cache"), want: func(c *Config) { c.CacheDir = filepath.Join(wd, "cache") }},
		{name: "root cache-dir", args: pos, sys: func(s *sys) { s.euid = 0 }, want: func(c *Config) { c.CacheDir = "/var/cache/s3docs" }},
		{name: "no user cache dir but flag given", args: with("--cache-dir=/c"),
			sys: noUserCacheDir, want: func(c *Config) { c.CacheDir = "/c" }},
		{name: "cache-size", args: with("--cache-size", "1G"), want: func(c *Config) { c.CacheSize = 1 << 30 }},
		{name: "cache-size equal chunk-size", args: with("--cache-size=64KiB", "--chunk-size=64k"),
			want: func(c *Config) { c.CacheSize, c.ChunkSize = 64<<10, 64<<10 }},
		{name: "chunk-size max", args: with("--chunk-size=1GiB"), want: func(c *Config) { c.ChunkSize = 1 << 30 }},
		{name: "metadata-ttl", args: with("--metadata-ttl=5m"), want: func(c *Config) { c.MetadataTTL = 5 * time.Minute }},
		{name: "metadata-ttl 0", args: with("--metadata-ttl=0"), want: func(c *Config) { c.MetadataTTL = 0 }},
		{name: "max-concurrent-gets", args: with("--max-concurrent-gets", "1"), want: func(c *Config) { c.MaxConcurrentGets = 1 }},
		{name: "read-ahead 0", args: with("--read-ahead=0"), want: func(c *Config) { c.ReadAhead = 0 }},
		{name: "read-ahead", args: with("--read-ahead=1.5MiB"), want: func(c *Config) { c.ReadAhead = 3 << 19 }},
		{name: "allow-other", args: with("--allow-other"), want: func(c *Config) { c.AllowOther = true }},
		{name: "uid gid", args: with("--uid=0", "--gid", "4294967295"), want: func(c *Config) { c.UID, c.GID = 0, 4294967295 }},
		{name: "file-mode without 0", args: with("--file-mode=440"), want: func(c *Config) { c.FileMode = 0o440 }},
		{name: "dir-mode 0o", args: with("--dir-mode=0o750"), want: func(c *Config) { c.DirMode = 0o750 }},
		{name: "modes zero", args: with("--file-mode=0", "--dir-mode=000"), want: func(c *Config) { c.FileMode, c.DirMode = 0, 0 }},
		{name: "log-level debug", args: with("--log-level=debug"), want: func(c *Config) { c.LogLevel = slog.LevelDebug }},
		{name: "log-level WARN", args: with("--log-level=WARN"), want: func(c *Config) { c.LogLevel = slog.LevelWarn }},
		{name: "log-level error", args: with("--log-level=error"), want: func(c *Config) { c.LogLevel = slog.LevelError }},
		{name: "log-format json", args: with("--log-format", "JSON"), want: func(c *Config) { c.LogFormat = "json" }},
		{name: "flags after positionals", args: []string{"s3://docs", "/mnt/docs", "--cache-size", "1G", "--allow-other"},
			want: func(c *Config) { c.CacheSize, c.AllowOther = 1<<30, true }},
		{name: "flags between positionals", args: []string{"--uid", "5", "s3://docs", "--gid=6", "/mnt/docs", "-region", "r"},
			want: func(c *Config) { c.UID, c.GID, c.Region = 5, 6, "r" }},
		{name: "last flag wins", args: with("--chunk-size=1M", "--chunk-size=2M"), want: func(c *Config) { c.ChunkSize = 2 << 20 }},
		{name: "double dash ends flags", args: []string{"--allow-other", "--", "s3://docs", "-mnt"},
			want: func(c *Config) { c.AllowOther, c.MountPoint = true, filepath.Join(wd, "-mnt") }},
		{name: "relative mount point", args: []string{"s3://docs", "mnt/../docs/"},
			want: func(c *Config) { c.MountPoint = filepath.Join(wd, "docs") }},
		{name: "mount point cleaned", args: []string{"s3://docs", "/mnt//docs/"}},
		{name: "prefix", args: []string{"s3://docs/cases", "/mnt/docs"},
			want: func(c *Config) { c.Source, c.Prefix = "s3://docs/cases", "cases/" }},
		{name: "prefix trailing slash", args: []string{"s3://docs/cases/", "/mnt/docs"},
			want: func(c *Config) { c.Source, c.Prefix = "s3://docs/cases/", "cases/" }},
		{name: "deep prefix", args: []string{"s3://docs/a/b.c/d", "/mnt/docs"},
			want: func(c *Config) { c.Source, c.Prefix = "s3://docs/a/b.c/d", "a/b.c/d/" }},
		{name: "bucket slash only", args: []string{"s3://docs/", "/mnt/docs"},
			want: func(c *Config) { c.Source = "s3://docs/" }},
		{name: "test bucket", args: []string{"s3://test-bucket-1.x", "/mnt/docs"},
			want: func(c *Config) { c.Source, c.Bucket = "s3://test-bucket-1.x", "test-bucket-1.x" }},
		{name: "63 char bucket", args: []string{"s3://" + strings.Repeat("a", 63), "/mnt/docs"},
			want: func(c *Config) { c.Source, c.Bucket = "s3://"+strings.Repeat("a", 63), strings.Repeat("a", 63) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sy := fakeSys(tt.env)
			if tt.sys != nil {
				tt.sys(&sy)
			}
			got, err := parse(tt.args, sy)
			if err != nil {
				t.Fatalf("parse(%q): %v", tt.args, err)
			}
			want := defaultConfig()
			if tt.want != nil {
				tt.want(&want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parse(%q)\n got %+v\nwant %+v", tt.args, got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	pos := []string{"s3://docs", "/mnt/docs"}
	with := func(flags ...string) []string { return append(flags, pos...) }
	src := func(s string) []string { return []string{s, "/mnt/docs"} }

	tests := []struct {
		name string
		args []string
		env  map[string]string
		sys  func(*sys)
		want string
	}{
		{"unknown flag", with("--cache-sise=10G"), nil, nil, "unknown flag --cache-sise"},
		{"unknown single dash flag", with("-x"), nil, nil, "unknown flag --x"},
		{"unknown flag after positionals", append(pos, "--nope"), nil, nil, "unknown flag --nope"},
		{"unknown flag with newline", with("--a\nb"), nil, nil, `unknown flag "--a\nb"`},
		{"bad flag syntax", with("---x"), nil, nil, `bad flag syntax "---x"`},
		{"missing value", append(pos, "--region"), nil, nil, "--region: missing value"},
		{"bad bool", with("--allow-other=maybe"), nil, nil, `--allow-other: invalid boolean "maybe" (want true or false)`},
		{"bad endpoint", with("--endpoint-url=localhost:9000"), nil, nil, `--endpoint-url: invalid URL "localhost:9000" (want http(s)://HOST[:PORT])`},
		{"bad endpoint scheme", with("--endpoint-url=ftp://x"), nil, nil, `--endpoint-url: invalid URL "ftp://x" (want http(s)://HOST[:PORT])`},
		{"bad endpoint from env", pos, map[string]string{"AWS_ENDPOINT_URL": "minio:9000"}, nil,
			`--endpoint-url: $AWS_ENDPOINT_URL: invalid URL "minio:9000" (want http(s)://HOST[:PORT])`},
		{"bad region", with("--region=us east"), nil, nil, `--region: invalid region "us east" (want e.g. us-east-1)`},
		{"empty cache-dir", with("--cache-dir="), nil, nil, "--cache-dir: must not be empty"},
		{"no user cache dir", pos, nil, noUserCacheDir,
			"--cache-dir: no default: $HOME is not defined; pass it explicitly"},
		{"bad size", with("--cache-size=10XB"), nil, nil, `--cache-size: invalid size "10XB" (use e.g. 64MiB, 10GiB, 10G)`},
		{"negative size", with("--read-ahead=-1"), nil, nil, `--read-ahead: invalid size "-1": must not be negative`},
		{"empty size", with("--cache-size="), nil, nil, `--cache-size: invalid size "" (use e.g. 64MiB, 10GiB, 10G)`},
		{"chunk too small", with("--chunk-size=32KiB"), nil, nil, `--chunk-size: size "32KiB" must be between 64KiB and 1GiB`},
		{"chunk too big", with("--chunk-size=1025M"), nil, nil, `--chunk-size: size "1025M" must be between 64KiB and 1GiB`},
		{"cache smaller than chunk", with("--cache-size=4M"), nil, nil, "--cache-size 4MiB is smaller than --chunk-size 8MiB"},
		{"bad ttl", with("--metadata-ttl=60"), nil, nil, `--metadata-ttl: invalid duration "60" (use e.g. 60s, 5m, 0)`},
		{"negative ttl", with("--metadata-ttl=-1s"), nil, nil, `--metadata-ttl: invalid duration "-1s": must not be negative`},
		{"zero gets", with("--max-concurrent-gets=0"), nil, nil, `--max-concurrent-gets: invalid number "0": must be at least 1`},
		{"bad gets", with("--max-concurrent-gets=many"), nil, nil, `--max-concurrent-gets: invalid number "many"`},
		{"too many gets", with("--max-concurrent-gets=9223372036854775807"), nil, nil, `--max-concurrent-gets: invalid number "9223372036854775807": want at most 1024`},
		{"zero split workers", with("--split-workers=0"), nil, nil, `--split-workers: invalid number "0": want 1 to 64`},
		{"split user without group", with("--split-user=65534"), nil, nil, `--split-user: invalid user "65534" (want UID:GID, e.g. 65534:65534)`},
		{"split user by name", with("--split-user=nobody:nogroup"), nil, nil, `--split-user: invalid user "nobody:nogroup" (want UID:GID, e.g. 65534:65534)`},
		{"uid name", with("--uid=root"), nil, nil, `--uid: invalid id "root" (want a number from 0 to 4294967295)`},
		{"negative uid", with("--uid=-1"), nil, nil, `--uid: invalid id "-1" (want a number from 0 to 4294967295)`},
		{"gid overflow", with("--gid=4294967296"), nil, nil, `--gid: invalid id "4294967296" (want a number from 0 to 4294967295)`},
		{"uid default unknown", pos, nil, func(s *sys) { s.uid = -1 }, `--uid: the current user: invalid id "-1" (want a number from 0 to 4294967295)`},
		{"mode not octal", with("--file-mode=0888"), nil, nil, `--file-mode: invalid mode "0888" (want octal, e.g. 0444)`},
		{"mode empty", with("--dir-mode="), nil, nil, `--dir-mode: invalid mode "" (want octal, e.g. 0444)`},
		{"mode sticky", with("--dir-mode=1777"), nil, nil, `--dir-mode: invalid mode "1777": only permission bits (0777) are allowed`},
		{"mode setuid", with("--file-mode=04555"), nil, nil, `--file-mode: invalid mode "04555": only permission bits (0777) are allowed`},
		{"log level", with("--log-level=verbose"), nil, nil, `--log-level: invalid log level "verbose" (want debug, info, warn or error)`},
		{"log format", with("--log-format=xml"), nil, nil, `--log-format: invalid log format "xml" (want text or json)`},

		{"no positionals", nil, nil, nil, "missing source s3://BUCKET[/PREFIX] and mount point"},
		{"only flags", []string{"--allow-other"}, nil, nil, "missing source s3://BUCKET[/PREFIX] and mount point"},
		{"missing mount point", []string{"s3://docs"}, nil, nil, "missing mount point"},
		{"empty mount point", []string{"s3://docs", ""}, nil, nil, "missing mount point"},
		{"three positionals", append(pos, "extra"), nil, nil, `unexpected argument "extra": want exactly s3://BUCKET[/PREFIX] and MOUNTPOINT`},
		{"flag after double dash is positional", append([]string{"--"}, append(pos, "--allow-other")...), nil, nil,
			`unexpected argument "--allow-other": want exactly s3://BUCKET[/PREFIX] and MOUNTPOINT`},

		{"no scheme", src("docs"), nil, nil, `malformed source "docs": want s3://BUCKET[/PREFIX]`},
		{"mount point first", []string{"/mnt/docs", "s3://docs"}, nil, nil, `malformed source "/mnt/docs": want s3://BUCKET[/PREFIX]`},
		{"one slash", src("s3:/docs"), nil, nil, `malformed source "s3:/docs": want s3://BUCKET[/PREFIX]`},
		{"upper scheme", src("S3://docs"), nil, nil, `malformed source "S3://docs": want s3://BUCKET[/PREFIX]`},
		{"https", src("https://docs"), nil, nil, `malformed source "https://docs": want s3://BUCKET[/PREFIX]`},
		{"no bucket", src("s3://"), nil, nil, `malformed source "s3://": want s3://BUCKET[/PREFIX]`},
		{"no bucket with prefix", src("s3:///cases"), nil, nil, `malformed source "s3:///cases": want s3://BUCKET[/PREFIX]`},
		{"bucket upper", src("s3://Docs"), nil, nil, `malformed source "s3://Docs": bucket name "Docs" may contain only lowercase letters, digits, dots and hyphens`},
		{"bucket underscore", src("s3://a_b"), nil, nil, `malformed source "s3://a_b": bucket name "a_b" may contain only lowercase letters, digits, dots and hyphens`},
		{"bucket short", src("s3://ab"), nil, nil, `malformed source "s3://ab": bucket name "ab" must be 3 to 63 characters long`},
		{"bucket long", src("s3://" + strings.Repeat("a", 64)), nil, nil,
			`malformed source "s3://` + strings.Repeat("a", 64) + `": bucket name "` + strings.Repeat("a", 64) + `" must be 3 to 63 characters long`},
		{"bucket hyphen start", src("s3://-abc"), nil, nil, `malformed source "s3://-abc": bucket name "-abc" must start and end with a letter or digit`},
		{"bucket dot end", src("s3://abc."), nil, nil, `malformed source "s3://abc.": bucket name "abc." must start and end with a letter or digit`},
		{"bucket double dot", src("s3://a..b"), nil, nil, `malformed source "s3://a..b": bucket name "a..b" must not contain two adjacent dots`},
		{"bucket ip", src("s3://192.168.1.1"), nil, nil, `malformed source "s3://192.168.1.1": bucket name "192.168.1.1" must not be an IP address`},
		{"bucket with port", src("s3://docs:9000"), nil, nil, `malformed source "s3://docs:9000": bucket name "docs:9000" may contain only lowercase letters, digits, dots and hyphens`},
		{"double slash", src("s3://docs//cases"), nil, nil, `malformed source "s3://docs//cases": empty path segment in prefix`},
		{"only double slash", src("s3://docs//"), nil, nil, `malformed source "s3://docs//": empty path segment in prefix`},
		{"inner empty segment", src("s3://docs/a//b"), nil, nil, `malformed source "s3://docs/a//b": empty path segment in prefix`},
		{"two trailing slashes", src("s3://docs/a//"), nil, nil, `malformed source "s3://docs/a//": empty path segment in prefix`},
		{"dot segment", src("s3://docs/./a"), nil, nil, `malformed source "s3://docs/./a": "." and ".." are not allowed in the prefix`},
		{"dotdot segment", src("s3://docs/a/.."), nil, nil, `malformed source "s3://docs/a/..": "." and ".." are not allowed in the prefix`},
		{"bad utf8", src("s3://docs/\xff"), nil, nil, `malformed source "s3://docs/\xff": prefix is not valid UTF-8`},
		{"prefix too long", src("s3://docs/" + strings.Repeat("a", 1024)), nil, nil,
			`malformed source "s3://docs/` + strings.Repeat("a", 1024) + `": prefix longer than 1023 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sy := fakeSys(tt.env)
			if tt.sys != nil {
				tt.sys(&sy)
			}
			got, err := parse(tt.args, sy)
			if err == nil {
				t.Fatalf("parse(%q) = %+v, want error %q", tt.args, got, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("parse(%q) error\n got %s\nwant %s", tt.args, err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if !reflect.DeepEqual(got, Config{}) {
				t.Errorf("parse(%q) returned a non-zero Config with its error: %+v", tt.args, got)
			}
		})
	}
}

func TestParseHelp(t *testing.T) {
	for _, args := range [][]string{
		{"-h"},
		{"--help"},
		{"-help"},
		{"s3://docs", "/mnt/docs", "--help"},
		{"--allow-other", "-h", "s3://docs"},
	} {
		if _, err := parse(args, fakeSys(nil)); !errors.Is(err, ErrHelp) {
			t.Errorf("parse(%q) error = %v, want ErrHelp", args, err)
		}
	}
}

// TestParseProcess checks the exported entry point against the real process
// identity, which the other tests replace.
func TestParseProcess(t *testing.T) {
	env := map[string]string{"AWS_ENDPOINT_URL": "http://localhost:9000"}
	got, err := Parse([]string{"s3://docs/cases", "/mnt/docs"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if got.EndpointURL != "http://localhost:9000" {
		t.Errorf("EndpointURL = %q, want the environment's", got.EndpointURL)
	}
	if got.UID != uint32(os.Getuid()) || got.GID != uint32(os.Getgid()) {
		t.Errorf("UID/GID = %d/%d, want %d/%d", got.UID, got.GID, os.Getuid(), os.Getgid())
	}
	wantDir := "/var/cache/s3docs"
	if os.Geteuid() != 0 {
		d, err := os.UserCacheDir()
		if err != nil {
			t.Skip("no user cache dir:", err)
		}
		wantDir = filepath.Join(d, "s3docs")
	}
	if got.CacheDir != wantDir {
		t.Errorf("CacheDir = %q, want %q", got.CacheDir, wantDir)
	}
	if _, err := Parse([]string{"s3://docs", "/mnt"}, nil); err != nil {
		t.Errorf("Parse with nil getenv: %v", err)
	}
}

func TestArgsRoundTrip(t *testing.T) {
	for _, args := range [][]string{
		{"s3://docs", "/mnt/docs"},
		{"s3://docs/cases/", "/mnt/docs", "--endpoint-url=http://h:1", "--region=r", "--force-path-style",
			"--cache-dir=/c", "--cache-size=1.5GiB", "--chunk-size=100000", "--metadata-ttl=1h2m3.5s",
			"--max-concurrent-gets=3", "--read-ahead=0", "--allow-other", "--uid=7", "--gid=8",
			"--file-mode=0400", "--dir-mode=0500", "--log-level=error", "--log-format=json", "--detach",
			"--split-workers=3", "--split-user=1000:100"},
		{"-o", "cache_size=2G,allow_other", "s3://docs", "/mnt/docs"},
	} {
		want, err := parse(args, fakeSys(nil))
		if err != nil {
			t.Fatal(err)
		}
		got, err := parse(want.Args(), fakeSys(map[string]string{"AWS_ENDPOINT_URL": "http://other"}))
		if err != nil {
			t.Fatalf("parse(%q): %v", want.Args(), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %q via %q\n got %+v\nwant %+v", args, want.Args(), got, want)
		}
	}
}

func TestArgsWithoutSource(t *testing.T) {
	c := defaultConfig()
	c.Source, c.Prefix = "", "a/b/"
	got, err := parse(c.Args(), fakeSys(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != "s3://docs/a/b/" || got.Prefix != "a/b/" {
		t.Errorf("Source, Prefix = %q, %q", got.Source, got.Prefix)
	}
}

func TestUsage(t *testing.T) {
	var b bytes.Buffer
	Usage(&b)
	out := b.String()
	if !strings.HasPrefix(out, "Usage: s3docs mount [flags] s3://BUCKET[/PREFIX] MOUNTPOINT\n") {
		t.Errorf("usage starts %q", strings.SplitN(out, "\n", 2)[0])
	}
	for _, s := range specs() {
		if !strings.Contains(out, "--"+s.name) {
			t.Errorf("usage lacks --%s", s.name)
		}
		if s.help == "" {
			t.Errorf("--%s has no help text", s.name)
		}
	}
	for _, want := range []string{
		"--cache-size SIZE", "(default 10GiB)", "(default 8MiB)", "(default 60s)", "(default 64MiB)",
		"(default 0444)", "(default 0555)", "(default info)", "(default text)", "(default $AWS_ENDPOINT_URL)",
		"--allow-other  ", "--help",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "(default false)") || strings.Contains(out, "(default )") {
		t.Errorf("usage shows an empty default:\n%s", out)
	}
}

// TestSpecTable guards the invariants the parser relies on.
func TestSpecTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range specs() {
		if seen[s.name] {
			t.Errorf("duplicate spec %q", s.name)
		}
		seen[s.name] = true
		if s.set == nil || s.get == nil {
			t.Errorf("--%s lacks set or get", s.name)
		}
		if s.defFunc != nil && s.defDoc == "" {
			t.Errorf("--%s has a computed default but no description of it", s.name)
		}
		if s.defFunc == nil && s.kind != kindString && s.def == "" {
			t.Errorf("--%s has no default", s.name)
		}
		if strings.ContainsAny(s.name, "_= ") {
			t.Errorf("--%s: flag names use dashes only, fstab keys underscores", s.name)
		}
		if s.name == optionsFlag {
			t.Errorf("--%s collides with -o", s.name)
		}
		// Leaving an option out of fstab is a decision, not an omission.
		notInFstab := map[string]bool{"detach": true}
		if (s.fstab == "") != notInFstab[s.name] {
			t.Errorf("--%s: fstab key %q; every option but %v needs one", s.name, s.fstab, notInFstab)
		}
		if s.fstab == "" {
			continue
		}
		if seen["fstab:"+s.fstab] {
			t.Errorf("duplicate fstab key %q", s.fstab)
		}
		seen["fstab:"+s.fstab] = true
		if strings.ContainsAny(s.fstab, "-=,\" ") || s.fstab == "" {
			t.Errorf("--%s: fstab key %q must be a plain word with underscores", s.name, s.fstab)
		}
		if ignoredMountOption(s.fstab) || ignoredMountOption(s.name) {
			t.Errorf("--%s: fstab key %q is one of the ignored mount(8) options", s.name, s.fstab)
		}
	}
	for _, s := range specs() {
		if o, ok := lookup(specs(), s.fstab); ok && o.name != s.name && s.fstab != "" {
			t.Errorf("fstab key %q of --%s is the flag name of --%s", s.fstab, s.name, o.name)
		}
	}
}

func TestParseFstabOptions(t *testing.T) {
	tests := []struct {
		opts    string
		want    []string
		wantErr string
	}{
		{opts: "", want: nil},
		{opts: "defaults,ro,rw,user,auto,noauto,nofail,_netdev,x-systemd.automount,x-systemd.mount-timeout=30", want: nil},
		{opts: "cache_size=10GiB,allow_other,endpoint_url=http://h:9000/,force_path_style=false,,metadata-ttl=0",
			want: []string{"--cache-size=10GiB", "--allow-other", "--endpoint-url=http://h:9000/", "--force-path-style=false", "--metadata-ttl=0"}},
		{opts: "cache_sise=1G", wantErr: `unknown mount option "cache_sise"`},
		{opts: "allow_other,bogus", wantErr: `unknown mount option "bogus"`},
		{opts: "cache_size", wantErr: "mount option cache_size: missing value"},
		{opts: "cache_size=10XB", wantErr: `mount option cache_size: invalid size "10XB" (use e.g. 64MiB, 10GiB, 10G)`},
		{opts: "chunk_size=1k", wantErr: `mount option chunk_size: size "1k" must be between 64KiB and 1GiB`},
		{opts: "rw,users,nouser,dev,nodev,suid,nosuid,exec,noexec,comment=x-systemd.foo,x-mount.mkdir=0755,X-mount.owner=1,x-gvfs-hide", want: nil},
		{opts: "rw=1,nofail=yes,comment=\"a,b\"", want: nil},
		{opts: `cache_dir="/srv/a,b",region=eu-1`, want: []string{"--cache-dir=/srv/a,b", "--region=eu-1"}},
		{opts: `cache_dir="/srv/a,b`, wantErr: `unterminated quote in mount options "cache_dir=\"/srv/a,b"`},
		{opts: "force_path_style=true,allow_other=false,uid=0,gid=7,file_mode=0440,dir_mode=0550,log_level=debug,log_format=json," +
			"chunk_size=1MiB,read_ahead=0,max_concurrent_gets=4,part_pages=10,split_memory_limit=1G,split_timeout=30s,cache_dir=/c",
			want: []string{"--force-path-style=true", "--allow-other=false", "--uid=0", "--gid=7", "--file-mode=0440", "--dir-mode=0550",
				"--log-level=debug", "--log-format=json", "--chunk-size=1MiB", "--read-ahead=0", "--max-concurrent-gets=4",
				"--part-pages=10", "--split-memory-limit=1G", "--split-timeout=30s", "--cache-dir=/c"}},
		{opts: "detach", wantErr: `unknown mount option "detach"`},
		{opts: "detach=false", wantErr: `unknown mount option "detach"`},
		{opts: "o=x", wantErr: `unknown mount option "o"`},
		{opts: "allow_other=maybe", wantErr: `mount option allow_other: invalid boolean "maybe" (want true or false)`},
		{opts: "endpoint_url=localhost:9000", wantErr: `mount option endpoint_url: invalid URL "localhost:9000" (want http(s)://HOST[:PORT])`},
		{opts: "metadata_ttl=5", wantErr: `mount option metadata_ttl: invalid duration "5" (use e.g. 60s, 5m, 0)`},
		{opts: "file_mode=0999", wantErr: `mount option file_mode: invalid mode "0999" (want octal, e.g. 0444)`},
		{opts: "uid=root", wantErr: `mount option uid: invalid id "root" (want a number from 0 to 4294967295)`},
		{opts: "cache_dir=", wantErr: "mount option cache_dir: must not be empty"},
		{opts: "region", wantErr: "mount option region: missing value"},
		{opts: "a\nb", wantErr: `unknown mount option "a\nb"`},
		{opts: "allow_other,cache_size=1G,nope=1", wantErr: `unknown mount option "nope"`},
	}
	for _, tt := range tests {
		got, err := ParseFstabOptions(tt.opts)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseFstabOptions(%q) error = %v, want %s", tt.opts, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseFstabOptions(%q): %v", tt.opts, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseFstabOptions(%q) = %q, want %q", tt.opts, got, tt.want)
		}
	}

	// The point of the conversion: its output is valid input to Parse.
	args, err := ParseFstabOptions("cache_size=1G,allow_other,nofail")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parse(append(args, "s3://docs", "/mnt/docs"), fakeSys(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.CacheSize != 1<<30 || !c.AllowOther {
		t.Errorf("fstab options not applied: %+v", c)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"s3://docs /mnt/docs",
		"--cache-size 1G s3://docs/cases /mnt --allow-other",
		"-- s3://docs -x",
		"--region -- s3://docs /m",
		"s3://docs/a//b /m",
		"--force-path-style=false s3://test-bucket-1 m --metadata-ttl=0 --file-mode 0444",
		"-h",
		"---x =",
		"--chunk-size= s3://abc  /",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, " ")
		c, err := parse(args, fakeSys(nil))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			return
		}
		if c.Prefix != "" && (!strings.HasSuffix(c.Prefix, "/") || strings.HasPrefix(c.Prefix, "/")) {
			t.Errorf("bad prefix %q", c.Prefix)
		}
		if !filepath.IsAbs(c.MountPoint) || filepath.Clean(c.MountPoint) != c.MountPoint {
			t.Errorf("mount point %q not absolute and clean", c.MountPoint)
		}
		if c.CacheSize < c.ChunkSize || c.ChunkSize < minChunkSize || c.ChunkSize > maxChunkSize {
			t.Errorf("sizes out of range: cache %d chunk %d", c.CacheSize, c.ChunkSize)
		}
		if c.FileMode&^os.ModePerm != 0 || c.DirMode&^os.ModePerm != 0 {
			t.Errorf("modes %v %v", c.FileMode, c.DirMode)
		}
		back, err := parse(c.Args(), fakeSys(nil))
		if err != nil {
			t.Fatalf("parse(%q) of Args: %v", c.Args(), err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("Args round trip\n got %+v\nwant %+v", back, c)
		}
	})
}
