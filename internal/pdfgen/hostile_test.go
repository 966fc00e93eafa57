package pdfgen

import (
	"bytes"
	"compress/zlib"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The bomb's two Flate layers are valid zlib (checksums included) and give
// exactly the promised number of spaces.
func TestFlateBombInflates(t *testing.T) {
	for _, n := range []int64{0, 1, 257, 258, 259, 1000, 65521, 2*65521 + 7, 10 << 20} {
		pdf := FlateBomb(n)
		m := regexp.MustCompile(`(?s)/Length (\d+) /Filter \[/FlateDecode /FlateDecode\] >>\nstream\n`).FindSubmatchIndex(pdf)
		if m == nil {
			t.Fatalf("n=%d: no bomb stream", n)
		}
		body := pdf[m[1]:]
		outer, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("n=%d: outer layer: %v", n, err)
		}
		inner, err := zlib.NewReader(outer)
		if err != nil {
			t.Fatalf("n=%d: inner layer: %v", n, err)
		}
		var got, spaces int64
		buf := make([]byte, 64<<10)
		for {
			k, err := inner.Read(buf)
			got += int64(k)
			spaces += int64(bytes.Count(buf[:k], []byte{' '}))
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("n=%d: inflating: %v (after %d bytes)", n, err, got)
			}
		}
		if got != n || spaces != n {
			t.Fatalf("n=%d: inflates to %d bytes, %d of them spaces", n, got, spaces)
		}
	}
	// Gigabytes in the tens of kilobytes.
	if n := len(FlateBomb(4 << 30)); n > 100<<10 {
		t.Fatalf("a 4 GiB bomb takes %d bytes", n)
	}
}

// qpdf reads the structure of every hostile file (the cross-reference table
// is exact); what makes them hostile is their content, not a broken file.
func TestHostileFilesAreWellFormed(t *testing.T) {
	dir := t.TempDir()
	for name, pdf := range map[string][]byte{
		"nested-arrays.pdf": Nested(1000, false),
		"nested-dicts.pdf":  Nested(1000, true),
		"count-claim.pdf":   PageCountClaim(2_000_000_000),
		"loop.pdf":          PageTreeLoop(),
		"bomb.pdf":          FlateBomb(1 << 20),
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pdf, 0o644); err != nil {
			t.Fatal(err)
		}
		out := run(t, "qpdf", "--show-xref", path)
		if !strings.Contains(out, "4/0: uncompressed") {
			t.Errorf("%s: qpdf --show-xref:\n%s", name, out)
		}
	}
}
