package pdfgen

// Hostile PDFs: files built to attack a parser rather than to be read. Each
// is small, deterministic and cheap to make, so tests can put them on a real
// mount; what they cost is all on the side of whoever parses them.

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"strings"
)

// Objects writes objects 1..len(objs) (their bodies, without "N 0 obj" and
// "endobj") as a classic PDF 1.4 file with an exact cross-reference table,
// object 1 being the catalog. Tests use it for structures Write does not make.
func Objects(objs []string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objs))
	for i, body := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, body)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f\r\n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n\r\n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// textStream is a content stream object showing one word.
func textStream() string {
	content := "BT /F1 24 Tf 72 700 Td (hostile) Tj ET"
	return fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content)
}

// onePage is a catalog, a page tree and one page, with pages (the page tree
// node's body), extra (more entries of the page dictionary) and content (its
// content stream object) left to the caller; objects 5 and up are the
// caller's too.
func onePage(pages, extra, content string, more ...string) []byte {
	return Objects(append([]string{
		/* 1 */ "<< /Type /Catalog /Pages 2 0 R >>",
		/* 2 */ pages,
		/* 3 */ "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R" +
			" /Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> " + extra + " >>",
		/* 4 */ content,
	}, more...))
}

// Nested is a one-page PDF whose page dictionary holds an entry nested depth
// levels deep: arrays ([[[...]]]) or, with dicts, dictionaries
// (<< /A << /A ... >> >>). A recursive parser without a depth limit runs out
// of stack on it.
func Nested(depth int, dicts bool) []byte {
	open, close := "[", "]"
	if dicts {
		open, close = "<< /A ", ">>"
	}
	deep := strings.Repeat(open, depth) + "0" + strings.Repeat(close, depth)
	if dicts {
		deep = strings.Repeat(open, depth) + "/Z 0" + strings.Repeat(close, depth)
	}
	return onePage("<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "/Deep "+deep, textStream())
}

// PageCountClaim is a PDF with one page whose page tree claims count pages:
// a reader that sizes anything by /Count allocates for count pages.
func PageCountClaim(count int64) []byte {
	return onePage(fmt.Sprintf("<< /Type /Pages /Kids [3 0 R] /Count %d >>", count), "", textStream())
}

// PageTreeLoop is a PDF whose page tree is a cycle: the root's kids are its
// one page and an inner node whose only kid is the root. A reader that walks
// the tree without remembering where it has been never stops.
func PageTreeLoop() []byte {
	return onePage("<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>", "", textStream(),
		/* 5 */ "<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>")
}

// FlateBomb is a one-page PDF whose content stream, a few tens of KB in the
// file, inflates to inflated bytes of spaces (valid, empty content): it is
// compressed twice (/Filter [/FlateDecode /FlateDecode]), since one layer of
// Flate compresses at most about 1000:1. Whoever decodes the page's content
// in memory needs inflated bytes of it.
func FlateBomb(inflated int64) []byte {
	var outer bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&outer, zlib.BestCompression) // a valid level
	writeSpaceRun(zw, inflated)
	zw.Close()
	stream := fmt.Sprintf("<< /Length %d /Filter [/FlateDecode /FlateDecode] >>\nstream\n", outer.Len()) +
		outer.String() + "\nendstream"
	return onePage("<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "", stream)
}

// writeSpaceRun writes a zlib stream that inflates to n spaces, without
// compressing n bytes: one fixed-Huffman deflate block of a literal space
// and then back-references of length 258 at distance 1, 13 bits for every
// 258 bytes, written directly.
func writeSpaceRun(w interface{ Write([]byte) (int, error) }, n int64) {
	bw := &bitWriter{w: w}
	bw.buf.Write([]byte{0x78, 0x01}) // zlib header: deflate, 32 KiB window, no dictionary
	bw.bits(1, 1)                    // BFINAL
	bw.bits(1, 2)                    // BTYPE 01: fixed Huffman codes
	if n > 0 {
		bw.huff(0x30+' ', 8) // literal ' ' (0..143: 8-bit codes from 0x30)
		rest := n - 1
		for ; rest >= 258; rest -= 258 {
			bw.huff(0xc5, 8) // length 258: symbol 285, code 11000101, no extra bits
			bw.huff(0, 5)    // distance 1: code 0, no extra bits
		}
		for ; rest > 0; rest-- {
			bw.huff(0x30+' ', 8)
		}
	}
	bw.huff(0, 7) // end of block: symbol 256, code 0000000
	bw.flush()
	// Adler-32 of n spaces: a = 1 + 32n, b = n + 32·n(n+1)/2, both mod 65521.
	const mod = 65521
	m := uint64(n % (2 * mod))
	a := (1 + 32*(m%mod)) % mod
	tri := (m * (m + 1) / 2) % mod // n(n+1)/2 mod 65521 depends on n mod 2·65521
	bsum := (m%mod + 32*tri) % mod
	sum := uint32(bsum)<<16 | uint32(a)
	bw.buf.Write([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
	w.Write(bw.buf.Bytes())
}

// bitWriter packs deflate's bit stream: fields least significant bit first,
// Huffman codes most significant bit first. It hands bytes to w in blocks.
type bitWriter struct {
	w    interface{ Write([]byte) (int, error) }
	buf  bytes.Buffer
	acc  uint64
	nacc uint
}

func (b *bitWriter) bits(v uint64, n uint) {
	b.acc |= v << b.nacc
	b.nacc += n
	for b.nacc >= 8 {
		b.buf.WriteByte(byte(b.acc))
		b.acc >>= 8
		b.nacc -= 8
	}
	if b.buf.Len() >= 1<<20 {
		b.w.Write(b.buf.Bytes())
		b.buf.Reset()
	}
}

func (b *bitWriter) huff(code uint64, n uint) {
	var r uint64
	for i := uint(0); i < n; i++ {
		r = r<<1 | (code>>i)&1
	}
	b.bits(r, n)
}

func (b *bitWriter) flush() {
	if b.nacc > 0 {
		b.buf.WriteByte(byte(b.acc))
		b.acc, b.nacc = 0, 0
	}
}

// HeavyXref is a valid one-page PDF whose cross-reference stream declares
// size objects, all but the first five free. The stream is a few tens of KB
// in the file, but a reader that indexes every declared object holds an
// entry for each (and the decoded stream, 7 bytes an entry, while it
// parses): a file that is legal, small, and heavy to open.
func HeavyXref(size int) []byte {
	if size < 6 {
		size = 6
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
	bodies := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R" +
			" /Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>",
		textStream(),
	}
	offsets := make([]int, len(bodies)+1)
	for i, body := range bodies {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, body)
	}
	xrefOff := b.Len()
	offsets[len(bodies)] = xrefOff // object 5: the stream itself
	// Entries of /W [1 4 2]: type, offset (or next free), generation.
	var raw bytes.Buffer
	entry := func(typ byte, field2 uint32, gen uint16) {
		raw.Write([]byte{typ, byte(field2 >> 24), byte(field2 >> 16), byte(field2 >> 8), byte(field2), byte(gen >> 8), byte(gen)})
	}
	entry(0, 0, 65535)
	for _, off := range offsets {
		entry(1, uint32(off), 0)
	}
	for i := len(offsets) + 1; i < size; i++ {
		entry(0, 0, 0)
	}
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	zw.Write(raw.Bytes())
	zw.Close()
	fmt.Fprintf(&b, "%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Filter /FlateDecode /Length %d >>\nstream\n",
		len(bodies)+1, size, z.Len())
	b.Write(z.Bytes())
	fmt.Fprintf(&b, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", xrefOff)
	return b.Bytes()
}
