package pdfgen

// Odd PDFs: small files of a few to about 120 pages, made as careless or
// hostile producers make them, for differential tests of PDF readers
// (issue 20). Write and Objects make clean files; these are the ones that
// common readers (qpdf, poppler, mutool) read, often after a repair, and
// that a lazy reader gets wrong if it trusts what it should check: shifted
// cross-reference offsets, incremental updates that replace or delete
// pages, cross-reference streams with unusual field widths, hybrid files,
// page trees in object streams, empty and lying page-tree nodes, inherited
// attributes, odd white space after the stream keyword and wrong stream
// lengths, inline images whose data looks like the end of the image, forms
// and appearance streams that borrow the page's fonts, and encryption.
//
// Every page shows a label of its own ("<file name> page <i>") in
// Helvetica as its first line, so pages can be told apart by their text;
// even pages add a line in Courier, so that a part that loses a font loses
// text. This file holds the machinery (objects, revisions, cross-reference
// sections, page trees); odd_cases.go holds the files.

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// OddFile is one file of OddFiles.
type OddFile struct {
	// Name is unique among the files of OddFiles and made of lower-case
	// letters, digits and '-', so it serves as a test name and a file name.
	Name  string
	Class string // the class of oddity: "xref-offsets", "update", ...
	About string // what is odd about the file, in a sentence
	PDF   []byte
	// Tool, if not nil, is a command that the file must be put through
	// before use (pdfgen runs no programs): the program, "qpdf" or
	// "mutool", and its arguments, in which "IN" stands for a file holding
	// PDF and "OUT" for the file to write.
	Tool []string
	// Labels[i] is the first line of text of page i+1, as the producer
	// meant the file to be read; nil when the file has no one meaning
	// (then only readers can be compared with each other).
	Labels []string
	// QpdfWarns says that `qpdf --check` reports a warning or an error on
	// the file (after Tool): its oddity is one that qpdf repairs or
	// rejects. Without it, qpdf finds nothing wrong.
	QpdfWarns bool
}

// Fixed objects of every odd file.
const (
	oddCatalog = 1
	oddInfo    = 2
	oddHelv    = 3 // /F1
	oddCourier = 4 // /F2, used on even pages
	oddTimes   = 5 // /F3, used by nothing but what borrows the page's fonts
	oddFonts   = 6 // << /F1 3 0 R /F2 4 0 R /F3 5 0 R >>
	oddFirst   = 7 // the first number the kit hands out
)

// oddObj is one object of an odd file as it is written.
type oddObj struct {
	num, gen int
	// body is the object's value; for a stream, the entries of its
	// dictionary other than /Length, without "<<" and ">>".
	body   string
	stream bool
	data   []byte
	kw     string // what follows the keyword "stream"; "" is "\n"
	length string // the value of /Length; "" is the exact length, "-" none
	end    string // what follows the data; "" is "\nendstream"
}

// text is the object as written between "N G obj\n" and "\nendobj".
func (o *oddObj) text() string {
	if !o.stream {
		return o.body
	}
	var b strings.Builder
	b.WriteString("<<")
	if o.body != "" {
		b.WriteString(" " + o.body)
	}
	switch o.length {
	case "":
		fmt.Fprintf(&b, " /Length %d", len(o.data))
	case "-":
	default:
		b.WriteString(" /Length " + o.length)
	}
	b.WriteString(" >>\nstream")
	kw := o.kw
	if kw == "" {
		kw = "\n"
	}
	b.WriteString(kw)
	b.Write(o.data)
	end := o.end
	if end == "" {
		end = "\nendstream"
	}
	b.WriteString(end)
	return b.String()
}

// xrefKind is the form of a revision's cross-reference section.
type xrefKind int

const (
	xrefTable  xrefKind = iota // a classic table
	xrefStream                 // a cross-reference stream
	xrefHybrid                 // a classic table whose trailer's /XRefStm names a stream of the compressed entries
)

// oddXref says how a revision's cross-reference section is written.
type oddXref struct {
	kind xrefKind
	w    [3]int // field widths of the stream; zero is [1 4 2]
	num  int    // the object number of the stream
	// runs makes the stream's /Index (and a first table's subsections)
	// list each run of consecutive numbers instead of one range from 0.
	// Later revisions always list runs.
	runs  bool
	flate bool // compress the stream, with the PNG Up predictor
	// omitFree leaves the members of object streams out of a hybrid
	// file's table; else they are listed as free, as Word does.
	omitFree bool
	// offset, startxref and prev falsify what is written: the offset of
	// object num (num -1: the offset of a hybrid file's /XRefStm), the
	// offset after startxref and the trailer's /Prev.
	offset    func(num, off int) int
	startxref func(off int) int
	prev      func(off int) int
	trailer   string // more trailer entries
}

// oddStm is an object stream of a revision.
type oddStm struct {
	num        int
	members    []int // object numbers, in order; each must be an object of the revision
	firstDelta int   // added to the true /First
	// headPad ends the header of numbers and offsets ("" is " ", "-"
	// nothing); lead is written before each object, whose offset is that
	// of the object itself, and tail after it ("" is "\n").
	headPad, lead, tail string
	extra               string
}

// oddRev is one revision: the original file or an incremental update.
type oddRev struct {
	objs  []*oddObj
	freed []int // numbers this revision frees
	stms  []oddStm
	x     oddXref
}

// xent is a cross-reference entry: type 0 (free, next free, generation),
// 1 (offset, generation) or 2 (object stream, index).
type xent struct{ typ, f2, f3 int }

// writeOdd writes the revisions of a file in order, each with its
// cross-reference section and trailer chained to the one before by /Prev.
func writeOdd(name, version string, revs []oddRev) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%%PDF-%s\n%%\xe2\xe3\xcf\xd3\n", version)
	id := sha256.Sum256([]byte("s3docs pdfgen odd " + name))
	cur := map[int]xent{}
	size, prevXref := 1, -1
	for r, rev := range revs {
		touched := map[int]bool{}
		inStm := map[int]bool{}
		for _, s := range rev.stms {
			for _, m := range s.members {
				inStm[m] = true
			}
		}
		byNum := map[int]*oddObj{}
		for _, o := range rev.objs {
			byNum[o.num] = o
			if inStm[o.num] {
				if o.stream || o.gen != 0 {
					panic(fmt.Sprintf("pdfgen: %s: object %d cannot go in an object stream", name, o.num))
				}
				continue
			}
			cur[o.num] = xent{1, b.Len(), o.gen}
			touched[o.num] = true
			fmt.Fprintf(&b, "%d %d obj\n%s\nendobj\n", o.num, o.gen, o.text())
		}
		for _, s := range rev.stms {
			var pairs []string
			var body bytes.Buffer
			for idx, m := range s.members {
				o := byNum[m]
				if o == nil {
					panic(fmt.Sprintf("pdfgen: %s: object stream %d: no object %d", name, s.num, m))
				}
				body.WriteString(s.lead)
				pairs = append(pairs, fmt.Sprintf("%d %d", m, body.Len()))
				body.WriteString(o.text())
				body.WriteString(cmp.Or(s.tail, "\n"))
				cur[m] = xent{2, s.num, idx}
				touched[m] = true
			}
			head := strings.Join(pairs, " ")
			switch s.headPad {
			case "":
				head += " "
			case "-":
			default:
				head += s.headPad
			}
			first := len(head)
			data := append([]byte(head), body.Bytes()...)
			cur[s.num] = xent{1, b.Len(), 0}
			touched[s.num] = true
			so := &oddObj{num: s.num, stream: true, data: data,
				body: strings.TrimSpace(fmt.Sprintf("/Type /ObjStm /N %d /First %d %s", len(s.members), first+s.firstDelta, s.extra))}
			fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", s.num, so.text())
		}
		for _, f := range rev.freed {
			cur[f] = xent{0, 0, cur[f].f3 + 1}
			touched[f] = true
		}
		for n := range touched {
			size = max(size, n+1)
		}
		if rev.x.kind != xrefTable {
			size = max(size, rev.x.num+1)
		}
		if r == 0 {
			cur[0] = xent{0, 0, 65535}
		}
		x := rev.x
		if r > 0 {
			x.runs = true // an update lists only what it changes
		}
		offset := func(num, off int) int {
			if x.offset != nil {
				return x.offset(num, off)
			}
			return off
		}
		trailer := fmt.Sprintf("/Size %d /Root %d 0 R /Info %d 0 R /ID [<%x> <%x>]", size, oddCatalog, oddInfo, id[:16], id[16:])
		if prevXref >= 0 {
			p := prevXref
			if x.prev != nil {
				p = x.prev(p)
			}
			trailer += fmt.Sprintf(" /Prev %d", p)
		}
		if x.trailer != "" {
			trailer += " " + x.trailer
		}
		// The numbers this section lists.
		var nums []int
		if r == 0 && !x.runs {
			for n := range size {
				nums = append(nums, n)
			}
		} else {
			for n := range touched {
				nums = append(nums, n)
			}
			if r == 0 {
				nums = append(nums, 0)
			}
			slices.Sort(nums)
		}
		var xrefOff int
		switch x.kind {
		case xrefTable:
			if len(rev.stms) > 0 {
				panic(fmt.Sprintf("pdfgen: %s: object streams need a cross-reference stream", name))
			}
			xrefOff = b.Len()
			writeTable(&b, nums, cur, offset)
			fmt.Fprintf(&b, "trailer\n<< %s >>\n", trailer)
		case xrefStream:
			xrefOff = b.Len()
			cur[x.num] = xent{1, xrefOff, 0}
			if !slices.Contains(nums, x.num) {
				nums = append(nums, x.num)
				slices.Sort(nums)
			}
			writeXrefStream(&b, name, x, nums, cur, offset, trailer)
		case xrefHybrid:
			// The stream holds the compressed entries; the table the rest.
			var compressed, plain []int
			for _, n := range nums {
				if cur[n].typ == 2 {
					compressed = append(compressed, n)
					if x.omitFree {
						continue
					}
				}
				plain = append(plain, n) // members of object streams as free
			}
			stmOff := b.Len()
			cur[x.num] = xent{1, stmOff, 0}
			sx := x
			sx.runs = true
			writeXrefStream(&b, name, sx, compressed, cur, offset, fmt.Sprintf("/Size %d", size))
			if !slices.Contains(plain, x.num) {
				plain = append(plain, x.num)
				slices.Sort(plain)
			}
			xrefOff = b.Len()
			writeTable(&b, plain, cur, offset)
			fmt.Fprintf(&b, "trailer\n<< %s /XRefStm %d >>\n", trailer, offset(-1, stmOff))
		}
		start := xrefOff
		if x.startxref != nil {
			start = x.startxref(start)
		}
		fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", start)
		prevXref = xrefOff
	}
	return b.Bytes()
}

// runsOf splits sorted numbers into runs of consecutive ones: first, count.
func runsOf(nums []int) [][2]int {
	var runs [][2]int
	for _, n := range nums {
		if k := len(runs); k > 0 && runs[k-1][0]+runs[k-1][1] == n {
			runs[k-1][1]++
			continue
		}
		runs = append(runs, [2]int{n, 1})
	}
	return runs
}

// writeTable writes a classic table of nums, in subsections of runs;
// members of object streams (type 2) are written as free.
func writeTable(b *bytes.Buffer, nums []int, cur map[int]xent, offset func(num, off int) int) {
	b.WriteString("xref\n")
	k := 0
	for _, run := range runsOf(nums) {
		fmt.Fprintf(b, "%d %d\n", run[0], run[1])
		for range run[1] {
			n := nums[k]
			k++
			e := cur[n]
			switch {
			case n == 0:
				b.WriteString("0000000000 65535 f\r\n")
			case e.typ == 1:
				fmt.Fprintf(b, "%010d %05d n\r\n", offset(n, e.f2), e.f3)
			case e.typ == 0:
				fmt.Fprintf(b, "0000000000 %05d f\r\n", e.f3)
			default:
				b.WriteString("0000000000 00000 f\r\n")
			}
		}
	}
}

// writeXrefStream writes a cross-reference stream of nums with the trailer
// entries given.
func writeXrefStream(b *bytes.Buffer, name string, x oddXref, nums []int, cur map[int]xent, offset func(num, off int) int, trailer string) {
	w := x.w
	if w == [3]int{} {
		w = [3]int{1, 4, 2}
	}
	var raw bytes.Buffer
	put := func(v, width int, what string) {
		if width == 0 {
			return
		}
		if width < 8 && v>>(8*width) != 0 {
			panic(fmt.Sprintf("pdfgen: %s: %s %d does not fit %d bytes", name, what, v, width))
		}
		for i := width - 1; i >= 0; i-- {
			raw.WriteByte(byte(v >> (8 * i)))
		}
	}
	if w[0] == 0 {
		// Without a type field every entry is of type 1: the others
		// cannot be listed.
		x.runs = true
		nums = slices.DeleteFunc(slices.Clone(nums), func(n int) bool { return cur[n].typ != 1 })
	}
	for _, n := range nums {
		e := cur[n]
		if w[0] == 0 && e.typ != 1 {
			panic(fmt.Sprintf("pdfgen: %s: /W %v cannot hold the type %d entry of object %d", name, w, e.typ, n))
		}
		f2 := e.f2
		if e.typ == 1 {
			f2 = offset(n, f2)
		}
		if w[2] == 0 && e.f3 != 0 && e.typ != 0 {
			panic(fmt.Sprintf("pdfgen: %s: /W %v cannot hold field 3 (%d) of object %d", name, w, e.f3, n))
		}
		if e.typ == 0 && w[2] < 8 {
			e.f3 = min(e.f3, 1<<(8*w[2])-1) // object 0's 65535 in fewer bytes
		}
		put(e.typ, w[0], "type")
		put(f2, w[1], "field 2")
		put(e.f3, w[2], "field 3")
	}
	dict := fmt.Sprintf("/Type /XRef %s /W [%d %d %d]", trailer, w[0], w[1], w[2])
	if x.runs {
		var idx []string
		for _, run := range runsOf(nums) {
			idx = append(idx, fmt.Sprintf("%d %d", run[0], run[1]))
		}
		dict += " /Index [" + strings.Join(idx, " ") + "]"
	}
	data := raw.Bytes()
	if x.flate {
		cols := w[0] + w[1] + w[2]
		var pred bytes.Buffer
		prev := make([]byte, cols)
		for row := 0; row+cols <= len(data); row += cols {
			pred.WriteByte(2) // PNG Up
			for i := range cols {
				pred.WriteByte(data[row+i] - prev[i])
			}
			copy(prev, data[row:row+cols])
		}
		data = deflate(pred.Bytes(), zlib.BestCompression)
		dict += fmt.Sprintf(" /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns %d >>", cols)
	}
	o := &oddObj{num: x.num, stream: true, body: dict, data: data}
	fmt.Fprintf(b, "%d 0 obj\n%s\nendobj\n", x.num, o.text())
}

// deflate compresses b with zlib at level (zlib.NoCompression stores it).
func deflate(b []byte, level int) []byte {
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, level)
	if err != nil {
		panic(err)
	}
	zw.Write(b)
	zw.Close()
	return z.Bytes()
}

// oddKit builds the objects of one file: pages with their content, page
// trees and the fixed objects. Objects are appended to a list that cut
// splits into revisions.
type oddKit struct {
	name  string
	next  int
	objs  []*oddObj
	mark  int // objs[mark:] are the objects since the last cut
	flate bool
	kw    string // what follows "stream" in content streams
	gen   int    // generation of the objects that set and add make
}

func newOddKit(name string) *oddKit {
	k := &oddKit{name: name, next: oddFirst}
	k.set(oddInfo, fmt.Sprintf("<< /Title (%s) /Producer (s3docs pdfgen odd) >>", name))
	k.set(oddHelv, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	k.set(oddCourier, "<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>")
	k.set(oddTimes, "<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding /WinAnsiEncoding >>")
	k.set(oddFonts, "<< /F1 3 0 R /F2 4 0 R /F3 5 0 R >>")
	return k
}

func (k *oddKit) alloc() int { k.next++; return k.next - 1 }

// set defines object num (again, in a later revision).
func (k *oddKit) set(num int, body string) *oddObj {
	o := &oddObj{num: num, gen: k.gen, body: body}
	k.objs = append(k.objs, o)
	return o
}

// add defines a new object.
func (k *oddKit) add(body string) int { return k.set(k.alloc(), body).num }

// setStream defines stream num with the extra dictionary entries given;
// content streams follow the kit's flate and kw.
func (k *oddKit) setStream(num int, dict string, data []byte) *oddObj {
	o := &oddObj{num: num, gen: k.gen, body: dict, stream: true, data: data, kw: k.kw}
	if k.flate {
		o.data = deflate(data, zlib.BestCompression)
		o.body = strings.TrimSpace("/Filter /FlateDecode " + dict)
	}
	k.objs = append(k.objs, o)
	return o
}

func (k *oddKit) addStream(dict string, data []byte) int {
	return k.setStream(k.alloc(), dict, data).num
}

// cut returns the objects made since the last cut: one revision's.
func (k *oddKit) cut() []*oddObj {
	objs := k.objs[k.mark:]
	k.mark = len(k.objs)
	return objs
}

// byNum returns the latest definition of object num.
func (k *oddKit) byNum(num int) *oddObj {
	for i := len(k.objs) - 1; i >= 0; i-- {
		if k.objs[i].num == num {
			return k.objs[i]
		}
	}
	return nil
}

// label is the first line of page i of a file.
func (k *oddKit) label(i int) string { return fmt.Sprintf("%s page %d", k.name, i) }

// pageContent is the content of page i: its label, on even pages a line in
// Courier, and a line of filler.
func (k *oddKit) pageContent(i int, label string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "BT /F1 18 Tf 72 720 Td %s Tj ET\n", literal([]byte(label)))
	if i%2 == 0 {
		fmt.Fprintf(&b, "BT /F2 11 Tf 72 690 Td (Even page %d, in Courier.) Tj ET\n", i)
	}
	fmt.Fprintf(&b, "BT /F1 11 Tf 72 670 Td %s Tj ET", literal([]byte(filler[i%len(filler)])))
	return []byte(b.String())
}

// oddNode is a node of a page tree: an inner node, or a page (kids nil and
// not inner).
type oddNode struct {
	num   int
	gen   int // of the node and, for a page, its content stream
	inner bool
	kids  []*oddNode
	// Pages: the page's number in the document's text, its label and its
	// content stream.
	i       int
	label   string
	content int
	// What the dictionary says, where it departs from the truth: "" means
	// the true value, "-" leaves the entry out.
	count  string // /Count of an inner node
	typ    string // /Type
	parent string // /Parent
	kidsV  string // /Kids
	media  string // a page's /MediaBox
	res    string // a page's /Resources
	extra  string // more entries
	// phantom: a kid that is named but never written (a missing or
	// free object).
	phantom bool
}

// page makes page i: its content stream now, its dictionary when the tree
// is written.
func (k *oddKit) page(i int) *oddNode {
	label := k.label(i)
	n := &oddNode{num: k.alloc(), gen: k.gen, i: i, label: label}
	n.content = k.addStream("", k.pageContent(i, label))
	return n
}

func (k *oddKit) pages(from, thru int) []*oddNode {
	var ps []*oddNode
	for i := from; i <= thru; i++ {
		ps = append(ps, k.page(i))
	}
	return ps
}

// node makes an inner node of kids.
func (k *oddKit) node(kids ...*oddNode) *oddNode {
	return &oddNode{num: k.alloc(), inner: true, kids: kids}
}

// balanced makes a tree whose inner nodes have at most fanout kids.
func (k *oddKit) balanced(leaves []*oddNode, fanout int) *oddNode {
	level := leaves
	for len(level) > fanout {
		var up []*oddNode
		for len(level) > 0 {
			m := min(fanout, len(level))
			up = append(up, k.node(level[:m]...))
			level = level[m:]
		}
		level = up
	}
	return k.node(level...)
}

// leaves returns the pages below n, in order.
func (n *oddNode) leaves() []*oddNode {
	if n.phantom {
		return nil
	}
	if !n.inner {
		return []*oddNode{n}
	}
	var out []*oddNode
	for _, kid := range n.kids {
		out = append(out, kid.leaves()...)
	}
	return out
}

func labelsOf(root *oddNode) []string { return labelsOfPages(root.leaves()) }

func labelsOfPages(ps []*oddNode) []string {
	var out []string
	for _, p := range ps {
		if !p.phantom {
			out = append(out, p.label)
		}
	}
	return out
}

func entry(b *strings.Builder, key, override, truth string) {
	switch override {
	case "-":
	case "":
		if truth != "" {
			fmt.Fprintf(b, " /%s %s", key, truth)
		}
	default:
		fmt.Fprintf(b, " /%s %s", key, override)
	}
}

// dict is the dictionary of n, whose parent is parent (0: none).
func (n *oddNode) dict(parent int) string {
	var b strings.Builder
	b.WriteString("<<")
	par := ""
	if parent > 0 {
		par = fmt.Sprintf("%d 0 R", parent)
	}
	if n.inner {
		entry(&b, "Type", n.typ, "/Pages")
		entry(&b, "Parent", n.parent, par)
		refs := make([]string, len(n.kids))
		for i, kid := range n.kids {
			refs[i] = fmt.Sprintf("%d %d R", kid.num, kid.gen)
		}
		entry(&b, "Kids", n.kidsV, "["+strings.Join(refs, " ")+"]")
		entry(&b, "Count", n.count, fmt.Sprint(len(n.leaves())))
	} else {
		entry(&b, "Type", n.typ, "/Page")
		entry(&b, "Parent", n.parent, par)
		entry(&b, "MediaBox", n.media, "[0 0 612 792]")
		entry(&b, "Resources", n.res, "<< /Font 6 0 R >>")
		entry(&b, "Contents", "", fmt.Sprintf("%d %d R", n.content, n.gen))
	}
	if n.extra != "" {
		b.WriteString(" " + n.extra)
	}
	b.WriteString(" >>")
	return b.String()
}

// tree defines every node of the tree below root (root's parent is
// parent, 0 for the root of the document), each node once even if it is
// listed twice.
func (k *oddKit) tree(root *oddNode, parent int) {
	done := map[int]bool{}
	var walk func(n *oddNode, parent int)
	walk = func(n *oddNode, parent int) {
		if done[n.num] || n.phantom {
			return
		}
		done[n.num] = true
		k.set(n.num, n.dict(parent)).gen = n.gen
		for _, kid := range n.kids {
			walk(kid, n.num)
		}
	}
	walk(root, parent)
}

// catalog defines the catalog, whose page tree is root, with more entries.
func (k *oddKit) catalog(root int, extra string) {
	k.set(oddCatalog, strings.TrimSpace(fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R %s", root, extra))+" >>")
}

// whole writes the kit's objects as a one-revision file.
func (k *oddKit) whole(version string, x oddXref, stms ...oddStm) []byte {
	if x.kind != xrefTable && x.num == 0 {
		x.num = k.alloc()
	}
	return writeOdd(k.name, version, []oddRev{{objs: k.cut(), stms: stms, x: x}})
}

// simple is the usual file: n pages under a tree of fanout (0: flat), with
// the catalog, written with x.
func (k *oddKit) simple(n, fanout int) *oddNode {
	leaves := k.pages(1, n)
	var root *oddNode
	if fanout > 1 {
		root = k.balanced(leaves, fanout)
	} else {
		root = k.node(leaves...)
	}
	k.tree(root, 0)
	k.catalog(root.num, "")
	return root
}

// Make writes the file into dir as Name.pdf and returns its path. A file
// with a Tool is first written as Name.in.pdf and put through the tool by
// run, which runs a program with its arguments and reports its failure
// (pdfgen itself runs no programs).
func (f OddFile) Make(dir string, run func(program string, args ...string) error) (string, error) {
	out := filepath.Join(dir, f.Name+".pdf")
	if f.Tool == nil {
		return out, os.WriteFile(out, f.PDF, 0o644)
	}
	in := filepath.Join(dir, f.Name+".in.pdf")
	if err := os.WriteFile(in, f.PDF, 0o644); err != nil {
		return "", err
	}
	args := slices.Clone(f.Tool[1:])
	for i, a := range args {
		switch a {
		case "IN":
			args[i] = in
		case "OUT":
			args[i] = out
		}
	}
	if err := run(f.Tool[0], args...); err != nil {
		return "", fmt.Errorf("pdfgen: %s: %s: %w", f.Name, strings.Join(f.Tool, " "), err)
	}
	return out, nil
}
