package mountopts

import (
	"reflect"
	"strings"
	"testing"
)

// TestParseOptionsFlag checks -o, the fstab syntax on the command line (and
// what mount.fuse.s3docs passes on from mount(8)).
func TestParseOptionsFlag(t *testing.T) {
	pos := []string{"s3://docs", "/mnt/docs"}
	tests := []struct {
		name string
		args []string
		want func(*Config)
	}{
		{name: "empty", args: append([]string{"-o", ""}, pos...)},
		{name: "only ignored", args: append([]string{"-o", "rw,nofail,_netdev,x-systemd.automount,defaults"}, pos...)},
		{name: "mount(8) shape", args: append(pos, "-o", "rw,allow_other,cache_size=1GiB,_netdev"),
			want: func(c *Config) { c.AllowOther, c.CacheSize = true, 1<<30 }},
		{name: "joined and double dash", args: append([]string{"-o=cache_size=2G", "--o", "uid=5"}, pos...),
			want: func(c *Config) { c.CacheSize, c.UID = 2<<30, 5 }},
		{name: "repeated, later wins", args: append([]string{"-o", "cache_size=1G,read_ahead=0", "-o", "cache_size=3G"}, pos...),
			want: func(c *Config) { c.CacheSize, c.ReadAhead = 3<<30, 0 }},
		{name: "flag after -o wins", args: append([]string{"-o", "cache_size=1G", "--cache-size=4G"}, pos...),
			want: func(c *Config) { c.CacheSize = 4 << 30 }},
		{name: "-o after flag wins", args: append([]string{"--cache-size=4G", "-o", "cache_size=1G"}, pos...),
			want: func(c *Config) { c.CacheSize = 1 << 30 }},
		{name: "flag names accepted", args: append([]string{"-o", "allow-other,metadata-ttl=5m"}, pos...),
			want: func(c *Config) { c.AllowOther, c.MetadataTTL = true, 5*60e9 }},
		{name: "bool false", args: append([]string{"--force-path-style", "-o", "force_path_style=false"}, pos...)},
		{name: "endpoint from -o overrides a bad environment default", args: append([]string{"-o", "endpoint_url=http://h:1"}, pos...),
			want: func(c *Config) { c.EndpointURL = "http://h:1" }},
		{name: "quoted value with comma", args: append([]string{"-o", `cache_dir="/srv/a,b"`}, pos...),
			want: func(c *Config) { c.CacheDir = "/srv/a,b" }},
		{name: "detach stays a flag", args: append([]string{"--detach", "-o", "allow_other"}, pos...),
			want: func(c *Config) { c.Detach, c.AllowOther = true, true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			if strings.Contains(tt.name, "bad environment") {
				env["AWS_ENDPOINT_URL"] = "not a url"
			}
			got, err := parse(tt.args, fakeSys(env))
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

func TestParseOptionsFlagErrors(t *testing.T) {
	pos := []string{"s3://docs", "/mnt/docs"}
	tests := []struct {
		args []string
		want string
	}{
		{append(pos, "-o"), "-o: missing value"},
		{append([]string{"-o", "cache_size=10XB"}, pos...), `mount option cache_size: invalid size "10XB" (use e.g. 64MiB, 10GiB, 10G)`},
		{append([]string{"-o", "bogus"}, pos...), `unknown mount option "bogus"`},
		{append([]string{"-o", "detach"}, pos...), `unknown mount option "detach"`},
		{append([]string{"-o", "allow_other", "-o", "uid"}, pos...), "mount option uid: missing value"},
		{append([]string{"-o", "cache_size=4M"}, pos...), "--cache-size 4MiB is smaller than --chunk-size 8MiB"},
		{append([]string{"-o", `a="`}, pos...), `unterminated quote in mount options "a=\""`},
	}
	for _, tt := range tests {
		_, err := parse(tt.args, fakeSys(nil))
		if err == nil || err.Error() != tt.want {
			t.Errorf("parse(%q) error = %v, want %s", tt.args, err, tt.want)
		}
	}
}

func FuzzParseFstabOptions(f *testing.F) {
	for _, s := range []string{
		"",
		"rw,_netdev,allow_other,endpoint_url=http://127.0.0.1:9000,cache_size=10GiB,cache_dir=/var/cache/s3docs",
		"defaults,nofail,x-systemd.automount,x-systemd.mount-timeout=30,comment=\"a,b\"",
		"cache_size=10G,chunk_size=64KiB",
		"cache_dir=\"/a,b\",uid=0,gid=0,file_mode=0444,dir_mode=0o555",
		"metadata_ttl=5m,split_timeout=1s,log_level=WARN,log_format=json",
		"allow_other=maybe",
		"\"",
		",,=,",
		"detach",
		"force_path_style,force-path-style=false",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, opts string) {
		args, err := ParseFstabOptions(opts)
		pos := []string{"s3://docs", "/mnt/docs"}
		viaFlag, flagErr := parse(append([]string{"-o", opts}, pos...), fakeSys(nil))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if flagErr == nil || flagErr.Error() != err.Error() {
				t.Errorf("-o %q: error %v, ParseFstabOptions: %v", opts, flagErr, err)
			}
			return
		}
		for _, a := range args {
			name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			s, ok := lookup(specs(), name)
			if !strings.HasPrefix(a, "--") || !ok || s.fstab == "" {
				t.Fatalf("ParseFstabOptions(%q) produced %q", opts, a)
			}
		}
		// Each value was validated alone; only the cross-option check may
		// still fail, and -o must agree with the flags it stands for.
		viaArgs, argsErr := parse(append(args, pos...), fakeSys(nil))
		if (argsErr == nil) != (flagErr == nil) || argsErr != nil && argsErr.Error() != flagErr.Error() {
			t.Fatalf("opts %q: flags %q give %v, -o gives %v", opts, args, argsErr, flagErr)
		}
		if argsErr != nil {
			if !strings.Contains(argsErr.Error(), "is smaller than") {
				t.Fatalf("opts %q: flags %q: %v", opts, args, argsErr)
			}
			return
		}
		if !reflect.DeepEqual(viaArgs, viaFlag) {
			t.Fatalf("opts %q: flags %q give\n%+v\n-o gives\n%+v", opts, args, viaArgs, viaFlag)
		}
		if viaFlag.Detach {
			t.Fatalf("opts %q set --detach", opts)
		}
	})
}
