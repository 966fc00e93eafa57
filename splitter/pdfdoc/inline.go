package pdfdoc

import (
	"bytes"
	"compress/zlib"
	"io"
	"strconv"
)

// Inline images (ISO 32000-1, 8.9.7): "BI", a dictionary, "ID", one white
// space, binary data, "EI". The data has no length of its own, and may
// hold anything, " EI " and "(" included: a scan that took the first "EI"
// for its end would read the rest of the image as content, and a "(" there
// would hide the names that follow it. So the data is skipped by its real
// length: /L (or /Length) when given, else what its first filter's encoding
// says (ASCIIHex ends at ">", ASCII85 at "~>", Flate where its zlib stream
// ends, RunLength at its end-of-data byte, DCT at the JPEG's end of image),
// else, unfiltered, its rows times its bytes per row. When none of those
// tells, inlineDataEnd says so and the scan takes every name in the rest of
// the stream, strings and image data included: more names than are used,
// never fewer.

// inlineDataEnd returns the index after the "EI" that ends the inline image
// whose dictionary is b[dict:id] and whose "ID" ends at b[data-1], or false
// if where the data ends is not certain. What finding the end inflates is
// charged to *left (see zlibLength).
func inlineDataEnd(b []byte, dict, id, data int, left *int64) (int, bool) {
	d, ok := inlineDict(b[dict:id])
	if !ok {
		return 0, false
	}
	// One white space byte separates "ID" from the data.
	if data < len(b) && isPDFSpace(b[data]) {
		data++
	}
	n := -1
	if l, ok := d.int("L", "Length"); ok && l >= 0 {
		n = l
	} else if filters := d.names("F", "Filter"); len(filters) > 0 {
		n = encodedLength(b[data:], filters[0], left)
	} else {
		n = rawImageLength(d)
	}
	if n < 0 || n > len(b)-data { // not data+n: /L may be near the largest int
		return 0, false
	}
	i := skipSpaceOnly(b, data+n)
	if !bytes.HasPrefix(b[i:], []byte("EI")) {
		return 0, false
	}
	if k := i + 2; k == len(b) || isPDFSpace(b[k]) || isPDFDelim(b[k]) {
		return k, true
	}
	return 0, false
}

// skipSpaceOnly skips white space (not comments: image data may follow).
func skipSpaceOnly(b []byte, i int) int {
	for i < len(b) && isPDFSpace(b[i]) {
		i++
	}
	return i
}

// inlineImage is an inline image's dictionary: its keys (abbreviated or
// not) and their values as tokens (a name without its slash, a number, or
// the text of an array).
type inlineImage map[string]string

func (d inlineImage) get(keys ...string) (string, bool) {
	for _, k := range keys {
		if v, ok := d[k]; ok {
			return v, true
		}
	}
	return "", false
}

func (d inlineImage) int(keys ...string) (int, bool) {
	v, ok := d.get(keys...)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// names returns a value that is a name, or the names of an array, slashes
// dropped.
func (d inlineImage) names(keys ...string) []string {
	v, ok := d.get(keys...)
	if !ok {
		return nil
	}
	var out []string
	for _, f := range bytes.Fields([]byte(v)) {
		for _, part := range bytes.Split(bytes.Trim(f, "[]"), []byte("/")) {
			if len(part) > 0 {
				out = append(out, string(part))
			}
		}
	}
	return out
}

// inlineDict reads the pairs of an inline image's dictionary.
func inlineDict(b []byte) (inlineImage, bool) {
	d := inlineImage{}
	for i := 0; ; {
		k, err := nextToken(b, i, true)
		if err != nil {
			return nil, false
		}
		if k.kind == tokEOF {
			return d, true
		}
		if k.kind != tokName {
			return nil, false
		}
		end, err := valueEnd(b, k.end, true, 8)
		if err != nil {
			return nil, false
		}
		v := string(bytes.TrimSpace(b[k.end:end]))
		if len(v) > 0 && v[0] == '/' {
			v = v[1:]
		}
		d[string(b[k.start+1:k.end])] = v
		i = end
	}
}

// encodedLength returns how many bytes of b the encoding of filter takes,
// end-of-data marker included, or -1 when it cannot tell.
func encodedLength(b []byte, filter string, left *int64) int {
	switch filter {
	case "AHx", "ASCIIHexDecode":
		if k := bytes.IndexByte(b, '>'); k >= 0 {
			return k + 1
		}
	case "A85", "ASCII85Decode":
		if k := bytes.Index(b, []byte("~>")); k >= 0 {
			return k + 2
		}
	case "Fl", "FlateDecode":
		return zlibLength(b, left)
	case "RL", "RunLengthDecode":
		return runLengthLength(b)
	case "DCT", "DCTDecode":
		return jpegLength(b)
	}
	return -1
}

// zlibLength returns the length of the zlib stream at the start of b, or
// -1. The decoder reads from a bytes.Reader, an io.ByteReader, so it reads
// no byte past the stream's end; what it inflates is thrown away, in
// bounded memory, and inflating more than maxInlineInflate, or more than
// *left, is a refusal. What it inflates is charged to *left: the page's
// scan budget, which the streams it decodes draw on too. Without that, a
// content stream of 4 MiB could hold a thousand images that each inflate
// to 4 MiB, 2 s of inflating for each page that draws it.
func zlibLength(b []byte, left *int64) int {
	limit := min(maxInlineInflate, *left)
	if limit <= 0 {
		return -1
	}
	r := bytes.NewReader(b)
	z, err := zlib.NewReader(r)
	if err != nil {
		return -1
	}
	n, err := io.Copy(io.Discard, io.LimitReader(z, limit+1))
	*left -= n
	if err != nil || n > limit {
		return -1
	}
	if err := z.Close(); err != nil {
		return -1
	}
	return len(b) - r.Len()
}

// maxInlineInflate bounds what finding the end of one Flate inline image
// may inflate: inline images are small (ISO 32000-1 says 4 KB or less).
const maxInlineInflate = 4 << 20

// runLengthLength returns the length of the RunLength data at the start of
// b, end-of-data byte (128) included, or -1.
func runLengthLength(b []byte) int {
	for i := 0; i < len(b); {
		switch n := int(b[i]); {
		case n == 128:
			return i + 1
		case n < 128:
			i += n + 2
		default:
			i += 2
		}
	}
	return -1
}

// jpegLength returns the length of the JPEG at the start of b, up to and
// including its end-of-image marker, or -1. Segments are skipped by their
// lengths; entropy-coded data, where 0xFF is always followed by 0x00 or a
// restart marker, runs to the next other marker.
func jpegLength(b []byte) int {
	if len(b) < 2 || b[0] != 0xFF || b[1] != 0xD8 {
		return -1
	}
	i := 2
	for i+1 < len(b) {
		if b[i] != 0xFF {
			return -1
		}
		m := b[i+1]
		switch {
		case m == 0xFF: // fill byte
			i++
			continue
		case m == 0xD9:
			return i + 2
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			i += 2
			continue
		}
		if i+3 >= len(b) {
			return -1
		}
		i += 2 + (int(b[i+2])<<8 | int(b[i+3]))
		if m != 0xDA { // not a scan: its segment is all
			continue
		}
		for i+1 < len(b) && (b[i] != 0xFF || b[i+1] == 0x00 || (b[i+1] >= 0xD0 && b[i+1] <= 0xD7)) {
			i++
		}
	}
	return -1
}

// rawImageLength returns the bytes of an unfiltered inline image: its rows
// times the bytes of a row, or -1 when the dictionary does not say (a
// color space named in the resources, say).
func rawImageLength(d inlineImage) int {
	w, okW := d.int("W", "Width")
	h, okH := d.int("H", "Height")
	if !okW || !okH || w < 0 || h < 0 || w > 1<<16 || h > 1<<16 {
		return -1
	}
	comps, bpc := 0, 0
	if mask, _ := d.get("IM", "ImageMask"); mask == "true" {
		comps, bpc = 1, 1
	} else {
		v, ok := d.int("BPC", "BitsPerComponent")
		if !ok {
			return -1
		}
		bpc = v
		cs := d.names("CS", "ColorSpace")
		if len(cs) == 0 {
			return -1
		}
		switch cs[0] {
		case "G", "DeviceGray", "CalGray":
			comps = 1
		case "RGB", "DeviceRGB", "CalRGB":
			comps = 3
		case "CMYK", "DeviceCMYK":
			comps = 4
		case "I", "Indexed":
			comps = 1
		default:
			return -1
		}
	}
	switch bpc {
	case 1, 2, 4, 8, 16:
	default:
		return -1
	}
	return h * ((w*comps*bpc + 7) / 8)
}
