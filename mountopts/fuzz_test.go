package mountopts

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzOptionValue holds every option's value parser (sizes, durations,
// modes, numbers, booleans, strings) to three properties: no panic and a
// one-line error; what it accepts renders back (get) to a value it accepts
// again with the same result, and that rendering is a fixed point; and the
// fstab spelling of the option accepts exactly the values the flag accepts,
// with the same result.
func FuzzOptionValue(f *testing.F) {
	for i, s := range specs() {
		f.Add(uint8(i), s.def)
	}
	for _, v := range []string{"", "0", "-1", "1.5GiB", "10 G", "0o777", "0O1000", "07777", "+5", "1e3", "1h1m1.5s",
		"-0s", "9223372036854775807ns", "2562047h47m16.854775807s", "true", "T", "0x10", "debug", "WARN", "json",
		"http://[::1]:9000", "127.0.0.1:0", "/a,b", "\"quoted\"", "a=b", "\x00", "\xff"} {
		f.Add(uint8(0), v)
		f.Add(uint8(7), v)
	}
	table := specs()
	f.Fuzz(func(t *testing.T, i uint8, v string) {
		s := table[int(i)%len(table)]
		var c Config
		err := s.set(&c, v)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("--%s=%q: error is not one line: %q", s.name, v, err)
			}
		} else {
			text := s.get(&c)
			var back Config
			if err := s.set(&back, text); err != nil {
				t.Fatalf("--%s=%q gives %q, which is refused: %v", s.name, v, text, err)
			}
			if !reflect.DeepEqual(back, c) {
				t.Fatalf("--%s=%q: %+v; its rendering %q gives %+v", s.name, v, c, text, back)
			}
			if again := s.get(&back); again != text {
				t.Fatalf("--%s=%q renders as %q, then as %q", s.name, v, text, again)
			}
		}

		// The same value through fstab: quoted, since values may hold
		// commas; a value with a quote of its own cannot be written there.
		if s.fstab == "" || strings.Contains(v, "\"") {
			return
		}
		args, ferr := ParseFstabOptions(s.fstab + "=\"" + v + "\"")
		if (ferr == nil) != (err == nil) {
			t.Fatalf("%s=%q: fstab says %v, the flag says %v", s.fstab, v, ferr, err)
		}
		if ferr != nil {
			if strings.Contains(ferr.Error(), "\n") {
				t.Errorf("%s=%q: error is not one line: %q", s.fstab, v, ferr)
			}
			return
		}
		if want := "--" + s.name + "=" + v; len(args) != 1 || args[0] != want {
			t.Fatalf("%s=%q gives %q, want [%q]", s.fstab, v, args, want)
		}
	})
}

// FuzzFstabIgnoredOptions: the options mount(8) and systemd pass to a helper
// change nothing, wherever they stand in the string.
func FuzzFstabIgnoredOptions(f *testing.F) {
	f.Add("cache_size=10GiB,allow_other", uint8(0))
	f.Add("endpoint_url=http://127.0.0.1:9000,cache_dir=\"/a,b\"", uint8(1))
	f.Add("", uint8(2))
	f.Add("bogus", uint8(3))
	ignored := []string{"rw", "ro", "defaults", "nofail", "_netdev", "noauto", "user", "x-systemd.automount",
		"x-systemd.mount-timeout=30", "X-mount.mkdir", "comment=\"a,b\"", "nosuid", "nodev", "noexec"}
	f.Fuzz(func(t *testing.T, opts string, which uint8) {
		args, err := ParseFstabOptions(opts)
		ig := ignored[int(which)%len(ignored)]
		for _, with := range []string{ig + "," + opts, opts + "," + ig} {
			args2, err2 := ParseFstabOptions(with)
			if (err == nil) != (err2 == nil) {
				t.Fatalf("%q: %v; with %q: %v", opts, err, ig, err2)
			}
			if err == nil && !reflect.DeepEqual(args, args2) && !(len(args) == 0 && len(args2) == 0) {
				t.Fatalf("%q gives %q; with %q: %q", opts, args, ig, args2)
			}
		}
	})
}
