package mountopts

import (
	"math"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"0B", 0},
		{"1048576", 1 << 20},
		{"1000B", 1000},
		{"64MiB", 64 << 20},
		{"64mib", 64 << 20},
		{"64MB", 64 << 20},
		{"64M", 64 << 20},
		{"64m", 64 << 20},
		{"10GiB", 10 << 30},
		{"10G", 10 << 30},
		{"10 G", 10 << 30},
		{"10 GiB", 10 << 30},
		{"10gb", 10 << 30},
		{"1.5GiB", 3 << 29},
		{"1.5 k", 1536},
		{"0.5", 0},
		{"1.9", 1},
		{"1.0000000001K", 1024},
		{"0.001K", 1},
		{"2T", 2 << 40},
		{"2TiB", 2 << 40},
		{"1KiB", 1024},
		{"007k", 7 << 10},
		{"9223372036854775807", math.MaxInt64},
		{"8388607.99999999999999T", 8388607<<40 + 1<<40 - 1},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil {
			t.Errorf("ParseSize(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `invalid size "" (use e.g. 64MiB, 10GiB, 10G)`},
		{"10XB", `invalid size "10XB" (use e.g. 64MiB, 10GiB, 10G)`},
		{"-1", `invalid size "-1": must not be negative`},
		{"-1G", `invalid size "-1G": must not be negative`},
		{"9223372036854775808", `invalid size "9223372036854775808": larger than the maximum 9223372036854775807 bytes`},
		{"8388608T", `invalid size "8388608T": larger than the maximum 9223372036854775807 bytes`},
		{"99999999999999999999999G", `invalid size "99999999999999999999999G": larger than the maximum 9223372036854775807 bytes`},
	}
	for _, tt := range tests {
		_, err := ParseSize(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseSize(%q) error = %v, want %s", tt.in, err, tt.want)
		}
	}
	for _, in := range []string{
		" ", "G", "GiB", "+1", "1.", ".5G", "1..5", "1.5.5", "1e3", "0x10", "1,5G", "10  G", "10 ", " 10", "10G ",
		"10Gi", "10GIBB", "10P", "10PiB", "10iB", "1_000", "١٠", "10\x00", "NaN", "Inf", "10 B ",
		strings.Repeat("1", maxSizeLen+1),
	} {
		if n, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want error", in, n)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1023, "1023B"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{64 << 10, "64KiB"},
		{8 << 20, "8MiB"},
		{8388608, "8MiB"},
		{3 << 29, "1536MiB"},
		{10 << 30, "10GiB"},
		{10737418240, "10GiB"},
		{1 << 40, "1TiB"},
		{1024 << 40, "1024TiB"},
		{math.MaxInt64, "9223372036854775807B"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "64MiB", "10GiB", "10G", "10 G", "1.5GiB", "1048576", "-1", "10XB",
		"9223372036854775807", "8388607.99999T", "1.", ".5", "1 ", "0.0000000000001T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d < 0", s, n)
		}
		text := FormatSize(n)
		back, err := ParseSize(text)
		if err != nil {
			t.Fatalf("ParseSize(FormatSize(%d) = %q): %v", n, text, err)
		}
		if back != n {
			t.Fatalf("ParseSize(FormatSize(%d) = %q) = %d", n, text, back)
		}
	})
}
