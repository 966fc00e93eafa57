package mountopts

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// unitMultiplier knows only binary units: users of this tool write "10G"
// meaning 10GiB, and a cache sized in decimal gigabytes would be ~7% short.
func unitMultiplier(unit string) (int64, bool) {
	switch strings.ToLower(unit) {
	case "", "b":
		return 1, true
	case "k", "kb", "kib":
		return 1 << 10, true
	case "m", "mb", "mib":
		return 1 << 20, true
	case "g", "gb", "gib":
		return 1 << 30, true
	case "t", "tb", "tib":
		return 1 << 40, true
	}
	return 0, false
}

const (
	sizeHint   = "use e.g. 64MiB, 10GiB, 10G"
	maxSizeLen = 64
)

// ParseSize parses a byte count: plain bytes ("1048576") or a number with a
// binary unit K/KB/KiB/M/MB/MiB/G/GB/GiB/T/TB/TiB (case-insensitive, optionally
// one space before the unit). Decimals ("1.5GiB") are rounded down to a whole
// byte. A "B" suffix is accepted so that FormatSize output parses back.
func ParseSize(s string) (int64, error) {
	invalid := fmt.Errorf("invalid size %q (%s)", s, sizeHint)
	// No sensible size is this long; the cap bounds the big.Int work below.
	if len(s) > maxSizeLen {
		return 0, invalid
	}

	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intDigits := s[:i]
	if intDigits == "" {
		if strings.HasPrefix(s, "-") {
			return 0, fmt.Errorf("invalid size %q: must not be negative", s)
		}
		return 0, invalid
	}
	var fracDigits string
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		fracDigits = s[i+1 : j]
		if fracDigits == "" {
			return 0, invalid
		}
		i = j
	}
	unit := s[i:]
	if strings.HasPrefix(unit, " ") {
		unit = unit[1:]
		if unit == "" {
			return 0, invalid
		}
	}
	mult, ok := unitMultiplier(unit)
	if !ok {
		return 0, invalid
	}

	// big.Int keeps "1.1TiB" exact, which float64 would not be for large sizes,
	// and makes overflow a plain comparison.
	num, ok := new(big.Int).SetString(intDigits+fracDigits, 10)
	if !ok {
		return 0, invalid
	}
	num.Mul(num, big.NewInt(mult))
	if fracDigits != "" {
		den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(fracDigits))), nil)
		num.Quo(num, den)
	}
	if !num.IsInt64() {
		return 0, fmt.Errorf("invalid size %q: larger than the maximum %d bytes", s, int64(math.MaxInt64))
	}
	return num.Int64(), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// FormatSize renders n with the largest binary unit that divides it exactly, so
// the text is short and ParseSize(FormatSize(n)) == n.
func FormatSize(n int64) string {
	if n == 0 {
		return "0B"
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
