package fs

import (
	"strconv"
	"strings"
	"testing"
)

func TestPartNames(t *testing.T) {
	cases := []struct {
		name       string
		from, thru int
		ok         bool
	}{
		{"pages-0001-0050.pdf", 1, 50, true},
		{"pages-12-14.pdf", 12, 14, true},
		{"pages-7-7.pdf", 7, 7, true},
		{"pages-000000007-8.pdf", 7, 8, true},
		{"pages-" + strings.Repeat("0", 30) + "7-" + strings.Repeat("0", 200) + "8.pdf", 7, 8, true}, // any padding
		{"pages-0000000000000-0000000000001.pdf", 0, 1, true},
		{"pages-1000000000000-1.pdf", 0, 0, false}, // 13 digits: no such page
		{"pages-0-3.pdf", 0, 3, true},              // grammatical; the range check rejects it
		{"pages-5-3.pdf", 5, 3, true},              // idem
		{"pages-1-2.PDF", 0, 0, false},
		{"page-7.pdf", 0, 0, false},
		{"pages-+1-2.pdf", 0, 0, false},
		{"pages--1-2.pdf", 0, 0, false},
		{"pages-1-2-3.pdf", 0, 0, false},
		{"pages-1.pdf", 0, 0, false},
		{"pages-a-b.pdf", 0, 0, false},
		{"pages-1-2.pdf.tmp", 0, 0, false},
		{"pages--.pdf", 0, 0, false},
		{"pages-1 -2.pdf", 0, 0, false},
		{"pages-99999999999999999999-1.pdf", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, c := range cases {
		from, thru, ok := parsePartName(c.name)
		if ok != c.ok || (ok && (from != c.from || thru != c.thru)) {
			t.Errorf("parsePartName(%q) = %d, %d, %v; want %d, %d, %v", c.name, from, thru, ok, c.from, c.thru, c.ok)
		}
	}
}

func TestListedParts(t *testing.T) {
	got := strings.Join(listedParts(137, 50), " ")
	if got != "pages-0001-0050.pdf pages-0051-0100.pdf pages-0101-0137.pdf" {
		t.Fatal(got)
	}
	if got := strings.Join(listedParts(12345, 10000), " "); got != "pages-00001-10000.pdf pages-10001-12345.pdf" {
		t.Fatal(got)
	}
	if got := strings.Join(listedParts(1, 50), " "); got != "pages-0001-0001.pdf" {
		t.Fatal(got)
	}
	if len(listedParts(0, 50)) != 0 {
		t.Fatal("a PDF without pages lists parts")
	}
	for _, name := range listedParts(1000, 7) {
		if _, _, ok := parsePartName(name); !ok {
			t.Fatalf("listed name %q does not parse", name)
		}
	}
}

func TestIsPDFKey(t *testing.T) {
	for name, want := range map[string]bool{"a.pdf": true, "A.PDF": true, "x.Pdf": true, ".pdf": false, "a.pdfx": false, "pdf": false} {
		if isPDFKey(name) != want {
			t.Errorf("isPDFKey(%q) != %v", name, want)
		}
	}
}

// FuzzPartName holds the .parts name grammar to its promise: a name it
// accepts is exactly "pages-" digits "-" digits ".pdf" (so it holds no '/',
// NUL, sign, space or other suffix), the numbers are those digits read in
// decimal, and the canonical name of the range parses back to it. And for a
// page count derived from the input, every listed name parses to a range
// inside the document, the ranges tile 1..count in order, and the names sort
// in page order.
func FuzzPartName(f *testing.F) {
	for _, s := range []string{"pages-0001-0050.pdf", "pages-12-14.pdf", "pages--1.pdf", "pages-1-2-3.pdf", "x",
		"pages-+1-2.pdf", "pages-1-2.pdf/", "pages-1-2.pdf\x00", "pages-\u0661-2.pdf", "pages-999999999999-1.pdf",
		"pages-1000000000000-1.pdf", "pages-0x1-2.pdf", "pages-1_000-2.pdf", "pages-1-2.pdf.pdf"} {
		f.Add(s, uint16(50))
	}
	f.Fuzz(func(t *testing.T, name string, per uint16) {
		from, thru, ok := parsePartName(name)
		if ok {
			if from < 0 || thru < 0 {
				t.Fatalf("negative page from %q", name)
			}
			a, b, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(name, "pages-"), ".pdf"), "-")
			if name != "pages-"+a+"-"+b+".pdf" || !allDigits(a) || !allDigits(b) {
				t.Fatalf("parsePartName accepted %q", name)
			}
			if strconv.Itoa(from) != trimZeros(a) || strconv.Itoa(thru) != trimZeros(b) {
				t.Fatalf("parsePartName(%q) = %d, %d", name, from, thru)
			}
			// A parsed name, formatted canonically, parses back to the same range.
			count := max(from, thru, 1)
			f2, t2, ok := parsePartName(partName(from, thru, count))
			if !ok || f2 != from || t2 != thru {
				t.Fatalf("round trip of %q failed", name)
			}
		}

		// Listing: a small count from the input keeps each run quick.
		count := len(name) * 37 % 5000
		p := max(1, int(per)%300)
		names := listedParts(count, p)
		next := 1
		for i, n := range names {
			a, b, ok := parsePartName(n)
			if !ok || a != next || b < a || b > count || b-a+1 > p {
				t.Fatalf("listedParts(%d, %d)[%d] = %q: %d-%d, %v; want it to start at %d", count, p, i, n, a, b, ok, next)
			}
			if i > 0 && names[i-1] >= n {
				t.Fatalf("listedParts(%d, %d): %q sorts before %q", count, p, n, names[i-1])
			}
			next = b + 1
		}
		if count > 0 && next != count+1 {
			t.Fatalf("listedParts(%d, %d) stops at page %d", count, p, next-1)
		}
	})
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func trimZeros(s string) string {
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return "0"
}
