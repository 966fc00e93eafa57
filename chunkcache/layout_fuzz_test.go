package chunkcache

import (
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzParseName: parseName accepts exactly the names fileName writes. A name
// it accepts must be the canonical rendering of what it parsed (else a file
// no fetch could have written, say with an upper-case id, a "+" or leading
// zeros in the size, is kept and counted as a chunk that nothing will ever
// look up), and can hold nothing that leads out of the directory.
func FuzzParseName(f *testing.F) {
	id := strings.Repeat("0123456789abcdef", 3)[:40]
	for _, s := range []string{
		fileName(id, 8<<20, 0xdeadbeef),
		fileName(id, 1, 0),
		id + "-0-00000000",
		id + "--1-00000000",
		id + "-+5-00000000",
		id + "-05-00000000",
		id + "-5-DEADBEEF",
		strings.ToUpper(id) + "-5-deadbeef",
		id + "-5-+eadbeef",
		id + "-5-00000000-x",
		"../" + id[3:] + "-5-00000000",
		id + "-5-0000000",
		"tmp.123",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		id, size, crc, ok := parseName(name)
		if !ok {
			return
		}
		if back := fileName(id, size, crc); back != name {
			t.Fatalf("parseName(%q) = (%q, %d, %08x), which fileName writes as %q", name, id, size, crc, back)
		}
		if size <= 0 || len(id) != 40 || strings.ContainsAny(name, "/\x00") || strings.Contains(name, "..") {
			t.Fatalf("parseName accepted %q: id %q, size %d", name, id, size)
		}
		if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
			t.Fatalf("parseName(%q): id %q is not lower-case hex", name, id)
		}
	})
}

// FuzzFileName: every name fileName writes for a real chunk (a 40-digit
// lower-case hex id, as chunkID and BlobID make, and a positive size) parses
// back to what it was made of.
func FuzzFileName(f *testing.F) {
	f.Add([]byte("0123456789abcdefghij"), int64(8<<20), uint32(0xdeadbeef))
	f.Add([]byte{}, int64(1), uint32(0))
	f.Add([]byte{0xff}, int64(1<<62), uint32(1<<31))
	f.Fuzz(func(t *testing.T, raw []byte, size int64, crc uint32) {
		if size <= 0 {
			return
		}
		var b [20]byte
		copy(b[:], raw)
		id := hex.EncodeToString(b[:])
		name := fileName(id, size, crc)
		gid, gsize, gcrc, ok := parseName(name)
		if !ok || gid != id || gsize != size || gcrc != crc {
			t.Fatalf("parseName(fileName(%q, %d, %08x) = %q) = (%q, %d, %08x, %v)", id, size, crc, name, gid, gsize, gcrc, ok)
		}
	})
}
