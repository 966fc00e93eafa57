package pdfdoc

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"

	"s3docs/internal/pdfgen"
)

// fuzzOptions keeps a fuzzed input's cost small.
var fuzzOptions = Options{MaxObjects: 1 << 16, MaxObjectBytes: 1 << 20, MaxDecodeBytes: 1 << 20, MaxReads: 1 << 12}

// newTestReader is a reader over b, as Open makes it, before anything is
// read.
func newTestReader(b []byte, o Options) *reader {
	o = o.withDefaults(int64(len(b)))
	return &reader{
		src:     newSource(bytes.NewReader(b), int64(len(b)), o.BlockCacheBytes),
		opts:    o,
		x:       xrefTable{max: o.MaxObjects},
		cache:   newLRU[int, types.Object](o.CacheObjects, o.CacheBytes),
		objStms: newLRU[int, *objStm](64, o.ObjStmCacheBytes),
	}
}

// FuzzXref feeds the cross-reference parser arbitrary sections: the bytes
// are appended to a valid file's objects and startxref points at them.
// Whatever it makes of them (rebuilding by a scan when it must), looking up
// every object it lists must return or fail, never panic or hang.
func FuzzXref(f *testing.F) {
	objs := pdfgen.Objects(twoPages())
	body := objs[:bytes.Index(objs, []byte("xref\n"))]
	f.Add(objs[len(body):bytes.LastIndex(objs, []byte("startxref"))])
	f.Add([]byte("xref\n0 3\n0000000000 65535 f\r\n0000000015 00000 n\r\n0000000070 00000 n\r\ntrailer\n<< /Size 3 /Root 1 0 R /Prev 9 >>\n"))
	f.Add([]byte("9 0 obj\n<< /Type /XRef /Size 10 /W [1 2 1] /Index [0 3 7 2] /Length 20 >>\nstream\n\x00\x00\x00\xff\x01\x00\x0f\x00\x02\x00\x08\x00\x01\x00\x50\x00\x02\x00\x08\x01\nendstream\nendobj\n"))
	f.Add([]byte("xref\n1 2\n0000000000 65535 f\r\n0000000015 00000 n\r\ntrailer\n<< /Size 3 /Root 1 0 R /XRefStm 0 >>\n"))
	f.Add([]byte("9 0 obj\n<< /Type /XRef /Size 10 /W [1 4 2] /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 7 >> /Length 3 >>\nstream\nxyz\nendstream\nendobj\n"))
	f.Fuzz(func(t *testing.T, section []byte) {
		file := append(append(bytes.Clone(body), section...), fmt.Sprintf("\nstartxref\n%d\n%%%%EOF\n", len(body))...)
		r := newTestReader(file, fuzzOptions)
		ctx := context.Background()
		if err := r.loadXref(ctx); err != nil {
			return
		}
		for n := range min(len(r.x.e), 1000) {
			if _, err := r.object(ctx, n); err != nil && r.reads > r.opts.MaxReads {
				return
			}
		}
	})
}

// FuzzObject feeds the object reader arbitrary object bodies. What it
// parses must serialize to text that parses back to the same text: a part
// is written from parsed objects, and must read back as it was meant.
// Streams must settle their length and decode, or fail, within bounds.
func FuzzObject(f *testing.F) {
	for _, s := range []string{
		"<< /Type /Page /Kids [1 0 R 2 0 R] /Count 2 /A (a (nested) \\) string) /B <48656c6c6f> /C 1.5 /D true /E null >>",
		"[1 2 0 R /Name#20x (str) <ab> [[]] << >> -3.25 false]",
		"<< /Length 5 >>\nstream\nhello\nendstream",
		"<< /Length 3 0 R /Filter /FlateDecode >>\nstream\nx\x9c\xcbH\xcd\xc9\xc9\x07\x00\x06,\x02\x15\nendstream",
		"<< /Filter [/ASCIIHexDecode /FlateDecode] >>\nstream\n789c4b04000062006\nendstream",
		"(unbalanced",
		"<< /A << /B << /C [[[[[ 1 ]]]]] >> >> >>",
		"12 0 R",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		file := append([]byte("%PDF-1.7\n1 0 obj\n"), body...)
		file = append(file, "\nendobj\n%%EOF\n"...)
		r := newTestReader(file, fuzzOptions)
		ctx := context.Background()
		o, _, _, err := r.readAt(ctx, 9, 1)
		if err != nil {
			return
		}
		if s, ok := o.(*stream); ok {
			if _, err := r.decode(ctx, s, 1<<16); err == nil && s.length < 0 {
				t.Fatal("a decoded stream has no length")
			}
			o = s.dict
		}
		text := serialize(o)
		back, err := r.parseValue(ctx, []byte(text))
		if err != nil {
			t.Fatalf("%q parsed, serialized as %q, which does not parse: %v", body, text, err)
		}
		if again := serialize(back); again != text {
			t.Fatalf("%q serialized as %q, which reads back as %q", body, text, again)
		}
	})
}
