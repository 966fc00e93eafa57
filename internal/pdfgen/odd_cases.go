package pdfgen

import (
	"bytes"
	"compress/zlib"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// OddFiles returns the odd files, in classes; seed chooses what varies
// within a class (shifts, which objects are damaged, image data), so the
// same seed gives the same files. Each file's About says what is odd; the
// issue-20 files carry the names the cases are known by:
// pagetree-issue-empty-node, pagetree-issue-count-lie,
// stream-issue-space-crlf, inline-issue-ei-lt, form-issue-nested-nores,
// annot-issue-ap-nores, pagetree-issue-missing-kid, pagetree-issue-deep-300,
// objstm-issue-first-off-2 and pagetree-issue-kids-freed.
func OddFiles(seed uint64) []OddFile {
	var files []OddFile
	for c, class := range []func(*rand.Rand) []OddFile{
		oddXrefOffsets, oddUpdates, oddXrefStreams, oddHybrids, oddObjStms, oddPageTrees,
		oddInherited, oddStreamEOL, oddInlineImages, oddBorrowers, oddEncrypted,
	} {
		files = append(files, class(rand.New(rand.NewPCG(seed, uint64(c))))...)
	}
	return files
}

// oddSimple is a file of n pages under a tree of fanout (flat below 2) in
// one revision written with x.
func oddSimple(class, name, about string, n, fanout int, version string, x oddXref, warns bool) OddFile {
	k := newOddKit(name)
	root := k.simple(n, fanout)
	return OddFile{Name: name, Class: class, About: about, PDF: k.whole(version, x), Labels: labelsOf(root), QpdfWarns: warns}
}

func oddXrefOffsets(rng *rand.Rand) []OddFile {
	const class = "xref-offsets"
	shift := 3 + rng.IntN(9)
	files := []OddFile{
		oddSimple(class, "xref-all-plus-k", fmt.Sprintf("every offset of the table is %d bytes past its object", shift), 12, 0, "1.4",
			oddXref{offset: func(_, off int) int { return off + shift }}, true),
		oddSimple(class, "xref-all-minus-3", "every offset of the table is 3 bytes before its object, inside the previous endobj", 12, 0, "1.4",
			oddXref{offset: func(_, off int) int { return off - 3 }}, true),
		oddSimple(class, "xref-all-minus-1", "every offset of the table is 1 byte early, on the end of line before its object", 12, 0, "1.4",
			oddXref{offset: func(n, off int) int {
				if n == 0 {
					return off
				}
				return off - 1
			}}, false),
		oddSimple(class, "xref-startxref-inside", fmt.Sprintf("startxref is %d bytes past the table", shift), 9, 0, "1.4",
			oddXref{startxref: func(off int) int { return off + shift }}, true),
		oddSimple(class, "xref-startxref-zero", "startxref is 0", 9, 3, "1.4",
			oddXref{startxref: func(int) int { return 0 }}, true),
		oddSimple(class, "xref-startxref-beyond", "startxref is past the end of the file", 9, 0, "1.4",
			oddXref{startxref: func(off int) int { return off + 1<<20 }}, true),
		oddSimple(class, "xref-stream-all-plus-k", fmt.Sprintf("every offset of the cross-reference stream is %d bytes past its object", shift), 10, 4, "1.5",
			oddXref{kind: xrefStream, offset: func(_, off int) int { return off + shift }}, true),
	}
	// Two pages' dictionaries swapped in the table, and three objects at
	// offset 0 (the header), chosen by rng.
	{
		k := newOddKit("xref-swapped")
		root := k.simple(10, 0)
		a, b := root.kids[1+rng.IntN(4)].num, root.kids[5+rng.IntN(4)].num
		var offA, offB int
		x := oddXref{offset: func(n, off int) int {
			switch n {
			case a:
				return offB
			case b:
				return offA
			}
			return off
		}}
		// The true offsets are known only once written: write twice.
		probe := k.objs
		pdf := writeOdd(k.name, "1.4", []oddRev{{objs: probe}})
		offA, offB = objOffset(pdf, a), objOffset(pdf, b)
		files = append(files, OddFile{Name: k.name, Class: class, PDF: writeOdd(k.name, "1.4", []oddRev{{objs: k.cut(), x: x}}),
			About: fmt.Sprintf("the table gives objects %d and %d (two pages) each other's offset", a, b), Labels: labelsOf(root), QpdfWarns: true})
	}
	{
		k := newOddKit("xref-some-zero")
		root := k.simple(10, 0)
		zero := map[int]bool{root.kids[2].num: true, root.kids[6].content: true, oddCourier: true}
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root), QpdfWarns: true,
			About: "three offsets (a page, a content stream, a font) are 0",
			PDF: k.whole("1.4", oddXref{offset: func(n, off int) int {
				if zero[n] {
					return 0
				}
				return off
			}})})
	}
	{
		// An update whose original section is shifted: a reader that
		// rebuilds must still let the update win.
		k := newOddKit("xref-update-base-shifted")
		root := k.simple(8, 0)
		base := k.cut()
		p := root.kids[4]
		p.label = k.label(p.i) + " revised"
		k.setStream(p.content, "", k.pageContent(p.i, p.label))
		upd := k.cut()
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root), QpdfWarns: true,
			About: fmt.Sprintf("the original section's offsets are %d bytes off; an update, whose offsets are right, replaces page 5's content", shift),
			PDF: writeOdd(k.name, "1.4", []oddRev{
				{objs: base, x: oddXref{offset: func(_, off int) int { return off + shift }}},
				{objs: upd},
			})})
	}
	return files
}

// objOffset returns the offset of "num 0 obj" in pdf (its last one).
func objOffset(pdf []byte, num int) int {
	head := fmt.Sprintf("\n%d 0 obj\n", num)
	return bytes.LastIndex(pdf, []byte(head)) + 1
}

func oddUpdates(rng *rand.Rand) []OddFile {
	const class = "update"
	var files []OddFile
	revise := func(k *oddKit, p *oddNode, how string) {
		p.label = fmt.Sprintf("%s page %d %s", k.name, p.i, how)
		k.setStream(p.content, "", k.pageContent(p.i, p.label))
	}
	{
		k := newOddKit("update-replace-content")
		root := k.simple(10, 0)
		base := k.cut()
		a, b := 1+rng.IntN(4), 5+rng.IntN(5)
		revise(k, root.kids[a], "revised")
		revise(k, root.kids[b], "revised")
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root),
			About: fmt.Sprintf("an update replaces the content of pages %d and %d", a+1, b+1),
			PDF:   writeOdd(k.name, "1.4", []oddRev{{objs: base}, {objs: k.cut()}})})
	}
	{
		k := newOddKit("update-replace-page")
		root := k.simple(10, 0)
		base := k.cut()
		p := root.kids[3]
		p.media = "[0 0 595 842]"
		p.extra = "/Rotate 90"
		p.label = k.label(p.i) + " replaced"
		p.content = k.addStream("", k.pageContent(p.i, p.label))
		k.set(p.num, p.dict(root.num))
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root),
			About: "an update replaces page 4's dictionary: A4, rotated, new content in a new object",
			PDF:   writeOdd(k.name, "1.4", []oddRev{{objs: base}, {objs: k.cut()}})})
	}
	{
		k := newOddKit("update-delete-pages")
		root := k.simple(12, 0)
		base := k.cut()
		gone := root.kids[3:6]
		var freed []int
		for _, p := range gone {
			freed = append(freed, p.num, p.content)
		}
		root.kids = slices.Concat(root.kids[:3], root.kids[6:])
		k.set(root.num, root.dict(0))
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root),
			About: "an update deletes pages 4-6: a new root without them, their objects freed (their bytes stay in the file)",
			PDF:   writeOdd(k.name, "1.4", []oddRev{{objs: base}, {objs: k.cut(), freed: freed}})})
	}
	{
		k := newOddKit("update-new-tree")
		root := k.simple(9, 3)
		base := k.cut()
		leaves := root.leaves()
		slices.Reverse(leaves)
		// New page dictionaries (new numbers) for the new tree; the old
		// tree stays in the file, unreferenced.
		var fresh []*oddNode
		for _, p := range leaves {
			fresh = append(fresh, &oddNode{num: k.alloc(), i: p.i, label: p.label, content: p.content})
		}
		nr := k.balanced(fresh, 4)
		k.tree(nr, 0)
		k.catalog(nr.num, "")
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(nr),
			About: "an update gives the catalog a new page tree (new objects, pages in reverse order); the old tree stays in the file",
			PDF:   writeOdd(k.name, "1.4", []oddRev{{objs: base}, {objs: k.cut()}})})
	}
	{
		// Three updates: delete page 2; reuse its numbers at generation 1
		// for a new page 2; replace page 7's content.
		k := newOddKit("update-chain-reuse")
		root := k.simple(8, 0)
		r0 := k.cut()
		old := root.kids[1]
		root.kids = slices.Delete(slices.Clone(root.kids), 1, 2)
		k.set(root.num, root.dict(0))
		r1 := k.cut()
		k.gen = 1
		np := &oddNode{num: old.num, gen: 1, i: 2, label: k.name + " page 2 reborn", content: old.content}
		k.setStream(old.content, "", k.pageContent(2, np.label))
		k.set(np.num, np.dict(root.num))
		k.gen = 0
		root.kids = slices.Insert(root.kids, 1, np)
		k.set(root.num, root.dict(0))
		r2 := k.cut()
		revise(k, root.kids[6], "third update")
		r3 := k.cut()
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root),
			About: "three updates chained by /Prev: page 2 deleted and freed, then a new page 2 in its numbers at generation 1, then page 7's content replaced",
			PDF: writeOdd(k.name, "1.4", []oddRev{{objs: r0}, {objs: r1, freed: []int{old.num, old.content}},
				{objs: r2}, {objs: r3}})})
	}
	{
		k := newOddKit("update-xrefstm-on-table")
		root := k.simple(10, 0)
		base := k.cut()
		gone := root.kids[1:3]
		root.kids = slices.Concat(root.kids[:1], root.kids[3:])
		k.set(root.num, root.dict(0))
		revise(k, root.kids[3], "revised")
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root),
			About: "a classic file with an update whose section is a cross-reference stream: pages 2-3 deleted (freed), page 6's content replaced",
			PDF: writeOdd(k.name, "1.5", []oddRev{{objs: base},
				{objs: k.cut(), freed: []int{gone[0].num, gone[1].num}, x: oddXref{kind: xrefStream, num: k.alloc()}}})})
	}
	{
		k := newOddKit("update-append-pages")
		root := k.simple(6, 0)
		base := k.cut()
		root.kids = append(root.kids, k.pages(7, 9)...)
		k.tree(root, 0)
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root),
			About: "an update adds pages 7-9 to a 6-page file",
			PDF:   writeOdd(k.name, "1.4", []oddRev{{objs: base}, {objs: k.cut()}})})
	}
	{
		k := newOddKit("update-prev-wrong")
		root := k.simple(8, 0)
		base := k.cut()
		revise(k, root.kids[2], "revised")
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root), QpdfWarns: true,
			About: "an update replaces page 3's content; its /Prev is 7 bytes off",
			PDF: writeOdd(k.name, "1.4", []oddRev{{objs: base},
				{objs: k.cut(), x: oddXref{prev: func(p int) int { return p + 7 }}}})})
	}
	return files
}

func oddXrefStreams(rng *rand.Rand) []OddFile {
	const class = "xref-stream"
	var files []OddFile
	for _, w := range [][3]int{{1, 3, 1}, {0, 4, 2}, {1, 8, 0}, {2, 4, 2}, {1, 2, 1}} {
		name := fmt.Sprintf("xrefstm-w-%d-%d-%d", w[0], w[1], w[2])
		files = append(files, oddSimple(class, name, fmt.Sprintf("a cross-reference stream with /W [%d %d %d]", w[0], w[1], w[2]),
			11, 3, "1.5", oddXref{kind: xrefStream, w: w}, false))
	}
	// Page trees in object streams, listed with odd widths and /Index.
	for _, tc := range []struct {
		name  string
		w     [3]int
		flate bool
		gaps  bool
	}{
		{"xrefstm-w-1-2-1-objstm", [3]int{1, 2, 1}, false, false},
		{"xrefstm-index-gaps", [3]int{1, 3, 1}, false, true},
		{"xrefstm-flate-predictor", [3]int{1, 4, 2}, true, true},
	} {
		k := newOddKit(tc.name)
		var leaves []*oddNode
		for i := 1; i <= 14; i++ {
			if tc.gaps && i%4 == 0 {
				k.next += 1 + rng.IntN(20) // numbers never used
			}
			leaves = append(leaves, k.page(i))
		}
		root := k.balanced(leaves, 4)
		k.tree(root, 0)
		k.catalog(root.num, "")
		members := []int{oddCatalog}
		for _, p := range allNodes(root) {
			members = append(members, p.num)
		}
		files = append(files, OddFile{Name: tc.name, Class: class, Labels: labelsOf(root),
			About: fmt.Sprintf("a cross-reference stream with /W %v, an /Index of one subsection per run of numbers (gaps: %v, Flate with predictor: %v); the catalog and page tree in an object stream",
				tc.w, tc.gaps, tc.flate),
			PDF: k.whole("1.5", oddXref{kind: xrefStream, w: tc.w, runs: true, flate: tc.flate}, oddStm{num: k.alloc(), members: members})})
	}
	return files
}

// allNodes returns every node of the tree below root, root first.
func allNodes(root *oddNode) []*oddNode {
	seen := map[int]bool{}
	var out []*oddNode
	var walk func(n *oddNode)
	walk = func(n *oddNode) {
		if seen[n.num] {
			return
		}
		seen[n.num] = true
		out = append(out, n)
		for _, kid := range n.kids {
			walk(kid)
		}
	}
	walk(root)
	return out
}

func treeMembers(root *oddNode) []int {
	var m []int
	for _, n := range allNodes(root) {
		m = append(m, n.num)
	}
	return m
}

func oddHybrids(*rand.Rand) []OddFile {
	const class = "hybrid"
	var files []OddFile
	for _, omit := range []bool{false, true} {
		name := "hybrid-free-in-table"
		about := "a hybrid file: the page tree in an object stream, its objects listed free in the table, found through /XRefStm"
		if omit {
			name = "hybrid-omitted"
			about = "a hybrid file: the page tree in an object stream, its objects left out of the table, found through /XRefStm"
		}
		k := newOddKit(name)
		root := k.simple(13, 4)
		files = append(files, OddFile{Name: name, Class: class, About: about, Labels: labelsOf(root),
			PDF: k.whole("1.4", oddXref{kind: xrefHybrid, omitFree: omit}, oddStm{num: k.alloc(), members: treeMembers(root)})})
	}
	{
		k := newOddKit("hybrid-update")
		root := k.simple(9, 0)
		base := k.cut()
		// The update moves the page tree into an object stream.
		nr := k.balanced(root.kids, 3)
		k.tree(nr, 0)
		k.catalog(nr.num, "")
		members := append(treeMembers(nr), oddCatalog)
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(nr),
			About: "a classic file with a hybrid update: a new page tree and catalog in an object stream named by the update's /XRefStm",
			PDF: writeOdd(k.name, "1.4", []oddRev{{objs: base},
				{objs: k.cut(), stms: []oddStm{{num: k.alloc(), members: members}}, x: oddXref{kind: xrefHybrid, num: k.alloc()}}})})
	}
	return files
}

func oddObjStms(*rand.Rand) []OddFile {
	const class = "objstm"
	var files []OddFile
	{
		k := newOddKit("objstm-tree-one")
		root := k.simple(16, 5)
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root),
			About: "every page dictionary and page-tree node in one object stream",
			PDF:   k.whole("1.5", oddXref{kind: xrefStream}, oddStm{num: k.alloc(), members: treeMembers(root)})})
	}
	{
		k := newOddKit("objstm-tree-split")
		root := k.simple(15, 4)
		var nodes, odd, even []int
		for _, n := range allNodes(root) {
			switch {
			case n.inner:
				nodes = append(nodes, n.num)
			case n.i%2 == 1:
				odd = append(odd, n.num)
			default:
				even = append(even, n.num)
			}
		}
		s1 := oddStm{num: k.alloc(), members: append(nodes, oddCatalog, oddFonts)}
		s2 := oddStm{num: k.alloc(), members: odd}
		s3 := oddStm{num: k.alloc(), members: even, extra: fmt.Sprintf("/Extends %d 0 R", s2.num)}
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root),
			About: "the page tree in three object streams (inner nodes with the catalog and fonts, odd pages, even pages; the last /Extends the second)",
			PDF:   k.whole("1.5", oddXref{kind: xrefStream}, s1, s2, s3)})
	}
	for _, tc := range []struct {
		name, about         string
		delta               int
		headPad, lead, tail string
		rootLast            bool
	}{
		{"objstm-issue-first-off-2", "compatibility (issue 20): an object stream of the page tree (its root last) whose /First is 2 bytes short: " +
			"the header (\"N off N off ... \") ends in one space, and every object is preceded by 2 newlines that its offset skips. " +
			"qpdf and mutool, which read the header from the stream's start and skip white space before an object, cope; " +
			"poppler, which stops the header at /First, reads the root's offset without its last 2 digits",
			-2, " ", "\n\n", "", true},
		{"objstm-first-minus-2-padded", "an object stream of the page tree whose /First is 2 bytes short; the header ends in \" \\n\" and every object is followed by \"\\n \\n\": " +
			"2 bytes early is white space for every object (qpdf, poppler and mutool cope)",
			-2, " \n", "", "\n \n", false},
		{"objstm-first-plus-2", "an object stream of the page tree whose /First is 2 bytes long; every object is preceded by 2 spaces its offset points at",
			2, "", "", "", false},
	} {
		k := newOddKit(tc.name)
		root := k.simple(12, 4)
		members := treeMembers(root)
		if tc.rootLast {
			members = append(members[1:], members[0])
		}
		if tc.delta > 0 {
			for _, m := range members {
				o := k.byNum(m)
				o.body = "  " + o.body
			}
		}
		files = append(files, OddFile{Name: tc.name, Class: class, About: tc.about, Labels: labelsOf(root),
			PDF: k.whole("1.5", oddXref{kind: xrefStream}, oddStm{num: k.alloc(), members: members, firstDelta: tc.delta,
				headPad: tc.headPad, lead: tc.lead, tail: tc.tail})})
	}
	{
		k := newOddKit("objstm-qpdf-generate")
		root := k.simple(20, 4)
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root), PDF: k.whole("1.4", oddXref{}),
			About: "qpdf's object streams (qpdf --object-streams=generate) over a 4-way page tree",
			Tool:  []string{"qpdf", "--object-streams=generate", "IN", "OUT"}})
	}
	{
		k := newOddKit("objstm-mutool-linearized")
		root := k.simple(14, 3)
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root), PDF: k.whole("1.4", oddXref{}), QpdfWarns: true,
			About: "linearized by mutool (mutool clean -l), whose hint stream qpdf finds wrong",
			Tool:  []string{"mutool", "clean", "-l", "IN", "OUT"}})
	}
	return files
}

func oddPageTrees(rng *rand.Rand) []OddFile {
	const class = "pagetree"
	var files []OddFile
	file := func(k *oddKit, root *oddNode, about string, labels []string, warns bool) {
		k.tree(root, 0)
		k.catalog(root.num, "")
		files = append(files, OddFile{Name: k.name, Class: class, About: about, Labels: labels, QpdfWarns: warns,
			PDF: k.whole("1.4", oddXref{})})
	}
	{
		// Issue 20, case 1.
		k := newOddKit("pagetree-issue-empty-node")
		ps := k.pages(1, 102)
		e := k.node()
		n := k.node(ps[100:]...)
		root := k.node(slices.Concat(ps[:10], []*oddNode{e}, ps[10:100], []*oddNode{n})...)
		file(k, root, "issue 20 case 1: root /Kids [p1..p10 E p11..p100 N], E an empty /Pages (/Count 0, /Kids []), N a /Pages of pages 101-102; root /Count 102 equals its number of kids",
			labelsOf(root), false)
	}
	{
		k := newOddKit("pagetree-empty-node-mutool-linearized")
		ps := k.pages(1, 24)
		e := k.node()
		n := k.node(ps[22:]...)
		root := k.node(slices.Concat(ps[:4], []*oddNode{e}, ps[4:22], []*oddNode{n})...)
		k.tree(root, 0)
		k.catalog(root.num, "")
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root), PDF: k.whole("1.4", oddXref{}), QpdfWarns: true,
			About: "case 1's tree (an empty node among the kids, the last two pages in a node; /Count 24 equals the number of kids) linearized by mutool clean -l, whose hint stream qpdf finds wrong",
			Tool:  []string{"mutool", "clean", "-l", "IN", "OUT"}})
	}
	{
		// Issue 20, case 1's variant: a /Count that equals the number of
		// kids, but a kid is a node of 3 pages.
		k := newOddKit("pagetree-issue-count-lie")
		ps := k.pages(1, 50)
		m := k.node(ps[10:13]...)
		root := k.node(slices.Concat(ps[:10], []*oddNode{m}, ps[13:])...)
		root.count = fmt.Sprint(len(root.kids))
		file(k, root, fmt.Sprintf("issue 20 case 1 variant: root /Count %d equals its number of kids, but kid 11 is a /Pages of 3 pages (50 in all)", len(root.kids)),
			labelsOf(root), false)
	}
	{
		k := newOddKit("pagetree-empty-node-no-kids")
		ps := k.pages(1, 20)
		e := k.node()
		e.kidsV = "-"
		root := k.node(slices.Concat(ps[:7], []*oddNode{e}, ps[7:])...)
		root.count = "20"
		file(k, root, "a /Type /Pages node without /Kids and /Count 0 among 20 pages", nil, true)
	}
	{
		k := newOddKit("pagetree-empty-nodes-first-last")
		ps := k.pages(1, 12)
		e1, e2, e3 := k.node(), k.node(), k.node()
		inner := k.node(e3)
		root := k.node(slices.Concat([]*oddNode{e1}, ps, []*oddNode{inner, e2})...)
		file(k, root, "empty /Pages nodes as the first and last kids and one inside another node", labelsOf(root), false)
	}
	{
		k := newOddKit("pagetree-count-too-big")
		root := k.node(k.pages(1, 20)...)
		root.count = "40"
		file(k, root, "a flat tree of 20 pages whose /Count says 40", labelsOf(root), false)
	}
	{
		k := newOddKit("pagetree-count-too-small")
		root := k.node(k.pages(1, 20)...)
		root.count = "5"
		file(k, root, "a flat tree of 20 pages whose /Count says 5", labelsOf(root), false)
	}
	{
		k := newOddKit("pagetree-inner-count-lies")
		root := k.balanced(k.pages(1, 30), 4)
		// Lie in two inner nodes, one up and one down, and at the root.
		inner := []*oddNode{}
		for _, n := range allNodes(root) {
			if n.inner && n != root {
				inner = append(inner, n)
			}
		}
		a := inner[rng.IntN(len(inner))]
		a.count = fmt.Sprint(len(a.leaves()) + 2)
		b := inner[rng.IntN(len(inner))]
		if b != a {
			b.count = fmt.Sprint(len(b.leaves()) - 1)
		}
		root.count = "31"
		file(k, root, "a 4-way tree of 30 pages whose root and two inner nodes give wrong /Counts", labelsOf(root), false)
	}
	{
		k := newOddKit("pagetree-inner-count-equals-kids")
		ps := k.pages(1, 24)
		sub := k.node(ps[5:8]...)
		mid := k.node(slices.Concat(ps[2:5], []*oddNode{sub}, ps[8:12])...)
		mid.count = fmt.Sprint(len(mid.kids))
		root := k.node(slices.Concat(ps[:2], []*oddNode{mid}, ps[12:])...)
		file(k, root, "an inner node whose /Count equals its number of kids, one of which is a node of 3 pages", labelsOf(root), false)
	}
	{
		k := newOddKit("pagetree-issue-deep-300")
		// A chain of 300 nodes, none of whose /Count equals its number of
		// kids but the deepest: a page at the top, one at every 60th
		// level, two at level 300.
		ps := k.pages(1, 7)
		cur := k.node(ps[5], ps[6])
		next := 4
		for depth := 299; depth >= 1; depth-- {
			kids := []*oddNode{cur}
			if depth%60 == 0 {
				kids = []*oddNode{ps[next], cur}
				next--
			}
			cur = k.node(kids...)
		}
		cur.kids = append([]*oddNode{ps[0]}, cur.kids...)
		file(k, cur, "compatibility (issue 20): a page tree 300 levels deep (a chain of nodes, none of whose /Count equals its number of kids but the deepest's; a page at the top, at every 60th level and two at the bottom)", labelsOf(cur), false)
	}
	{
		k := newOddKit("pagetree-deep-300-single-kids")
		// 300 levels, but most nodes have one kid and /Count 1.
		cur := k.node(k.page(1))
		for depth, i := 2, 1; depth <= 300; depth++ {
			var kids []*oddNode
			if depth%50 == 0 {
				i++
				kids = append(kids, k.page(i))
			}
			cur = k.node(append(kids, cur)...)
		}
		file(k, cur, "a page tree 300 levels deep: a chain of nodes with one kid and /Count 1 at the bottom, pages at every 50th level", labelsOf(cur), false)
	}
	{
		k := newOddKit("pagetree-deep-100")
		cur := k.node(k.page(1))
		for d := 2; d <= 100; d++ {
			kids := []*oddNode{cur}
			if d%10 == 0 {
				kids = append(kids, k.page(d/10+1))
			}
			cur = k.node(kids...)
		}
		file(k, cur, "a page tree 100 levels deep", labelsOf(cur), false)
	}
	{
		// As mutool clean -l leaves a tree that named an object it did not
		// write: a reference to an object number the file does not have.
		k := newOddKit("pagetree-issue-missing-kid")
		ps := k.pages(1, 10)
		missing := &oddNode{num: k.alloc() + 40, phantom: true}
		root := k.node(slices.Concat(ps[:4], []*oddNode{missing}, ps[4:])...)
		root.count = "10"
		k.tree(root, 0)
		k.catalog(root.num, "")
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOfPages(ps), QpdfWarns: true,
			About: fmt.Sprintf("compatibility (issue 20): the root's /Kids names object %d, which the file does not have (beyond /Size)", missing.num),
			PDF:   k.whole("1.4", oddXref{})})
	}
	{
		k := newOddKit("pagetree-issue-kids-freed")
		ps := k.pages(1, 10)
		freed := k.alloc()
		gone := &oddNode{num: freed, phantom: true}
		root := k.node(slices.Concat(ps[:6], []*oddNode{gone}, ps[6:])...)
		root.count = "10"
		k.tree(root, 0)
		k.catalog(root.num, "")
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOfPages(ps), QpdfWarns: true,
			About: fmt.Sprintf("compatibility (issue 20): the root's /Kids names object %d, a free entry of the table", freed),
			PDF:   k.whole("1.4", oddXref{})})
	}
	{
		k := newOddKit("pagetree-kids-freed-update")
		root := k.simple(10, 0)
		base := k.cut()
		gone := root.kids[4]
		files = append(files, OddFile{Name: k.name, Class: class, QpdfWarns: true,
			About: "an update frees page 5 (its bytes stay in the file) but leaves the page tree naming it",
			PDF:   writeOdd(k.name, "1.4", []oddRev{{objs: base}, {objs: nil, freed: []int{gone.num}}})})
	}
	{
		k := newOddKit("pagetree-node-no-type")
		root := k.balanced(k.pages(1, 12), 3)
		for _, n := range allNodes(root) {
			if n.inner && n != root {
				n.typ = "-"
			}
		}
		file(k, root, "inner page-tree nodes without /Type", labelsOf(root), true)
	}
	{
		k := newOddKit("pagetree-page-no-type")
		root := k.balanced(k.pages(1, 12), 5)
		for _, p := range root.leaves() {
			if p.i%3 != 0 {
				p.typ = "-"
			}
		}
		file(k, root, "pages without /Type (two in three)", labelsOf(root), true)
	}
	{
		k := newOddKit("pagetree-page-twice")
		ps := k.pages(1, 10)
		root := k.node(slices.Concat(ps[:5], ps[3:4], ps[5:])...)
		file(k, root, "page 4's dictionary listed twice in /Kids (11 kids, /Count 11)", labelsOf(root), true)
	}
	{
		k := newOddKit("pagetree-kids-null-and-number")
		ps := k.pages(1, 8)
		root := k.node(ps...)
		var refs []string
		for i, p := range ps {
			refs = append(refs, fmt.Sprintf("%d 0 R", p.num))
			if i == 2 {
				refs = append(refs, "null")
			}
			if i == 5 {
				refs = append(refs, "17")
			}
		}
		root.kidsV = "[" + strings.Join(refs, " ") + "]"
		file(k, root, "/Kids holding null and an integer among the 8 page references, /Count 8", labelsOf(root), true)
	}
	{
		k := newOddKit("pagetree-wrong-parent")
		root := k.balanced(k.pages(1, 12), 4)
		other := root.kids[2].num
		for _, p := range root.kids[0].kids {
			p.parent = fmt.Sprintf("%d 0 R", other)
		}
		file(k, root, "the pages of the first inner node name another node as /Parent", labelsOf(root), false)
	}
	{
		k := newOddKit("pagetree-kids-indirect")
		ps := k.pages(1, 9)
		root := k.node(ps...)
		var refs []string
		for _, p := range ps {
			refs = append(refs, fmt.Sprintf("%d 0 R", p.num))
		}
		arr := k.add("[" + strings.Join(refs, " ") + "]")
		cnt := k.add("9")
		root.kidsV = fmt.Sprintf("%d 0 R", arr)
		root.count = fmt.Sprintf("%d 0 R", cnt)
		file(k, root, "the root's /Kids and /Count are indirect objects", labelsOf(root), false)
	}
	{
		k := newOddKit("pagetree-node-typed-page")
		ps := k.pages(1, 10)
		mid := k.node(ps[3:6]...)
		mid.typ = "/Page"
		root := k.node(slices.Concat(ps[:3], []*oddNode{mid}, ps[6:])...)
		file(k, root, "an inner node (3 pages) that says /Type /Page", nil, true)
	}
	{
		k := newOddKit("pagetree-flat-120")
		root := k.node(k.pages(1, 120)...)
		file(k, root, "a flat tree of 120 pages (no oddity: the baseline)", labelsOf(root), false)
	}
	return files
}

func oddInherited(*rand.Rand) []OddFile {
	const class = "inherit"
	var files []OddFile
	build := func(name string, indirect bool) OddFile {
		k := newOddKit(name)
		leaves := k.pages(1, 18)
		for _, p := range leaves {
			p.res, p.media = "-", "-"
		}
		a := k.node(leaves[0:6]...)
		b := k.node(leaves[6:12]...)
		c := k.node(leaves[12:18]...)
		bc := k.node(b, c)
		root := k.node(a, bc)
		val := func(v string) string {
			if indirect {
				return fmt.Sprintf("%d 0 R", k.add(v))
			}
			return v
		}
		root.extra = fmt.Sprintf("/Resources %s /MediaBox %s", val("<< /Font 6 0 R >>"), val("[0 0 612 792]"))
		a.extra = fmt.Sprintf("/MediaBox %s /Rotate %s", val("[0 0 595 842]"), val("90"))
		bc.extra = fmt.Sprintf("/CropBox %s", val("[36 36 576 756]"))
		c.extra = fmt.Sprintf("/Rotate %s /Resources %s", val("180"), val("<< /Font << /F1 5 0 R /F2 3 0 R >> >>"))
		leaves[1].extra = "/Rotate 0"
		leaves[4].media = "[0 0 540 760]"
		leaves[7].extra = "/CropBox [0 0 300 300] /Rotate 270"
		leaves[13].extra = "/Rotate 90"
		leaves[15].res = "<< /Font << /F1 4 0 R /F2 4 0 R >> >>"
		k.tree(root, 0)
		k.catalog(root.num, "")
		return OddFile{Name: name, Class: class, Labels: labelsOf(root), PDF: k.whole("1.4", oddXref{}),
			About: "Resources, MediaBox, CropBox and Rotate on inner nodes, some overridden below (a node maps /F1 to Times), pages with none of their own" +
				map[bool]string{true: "; every inherited value an indirect object", false: ""}[indirect]}
	}
	files = append(files, build("inherit-attrs", false), build("inherit-attrs-indirect", true))
	{
		k := newOddKit("inherit-rotate-odd")
		leaves := k.pages(1, 8)
		for i, p := range leaves {
			p.extra = []string{"", "/Rotate -90", "/Rotate 450", "", "/Rotate 720", "", "/Rotate -270", ""}[i]
		}
		n := k.node(leaves[3:6]...)
		n.extra = "/Rotate -180"
		root := k.node(slices.Concat(leaves[:3], []*oddNode{n}, leaves[6:])...)
		root.extra = "/Rotate 270"
		file := func() OddFile {
			k.tree(root, 0)
			k.catalog(root.num, "")
			return OddFile{Name: k.name, Class: class, Labels: labelsOf(root), PDF: k.whole("1.4", oddXref{}),
				About: "/Rotate of 270 at the root, -180 on a node, -90, 450, 720 and -270 on pages"}
		}
		files = append(files, file())
	}
	{
		k := newOddKit("inherit-objstm")
		leaves := k.pages(1, 12)
		for _, p := range leaves {
			p.res, p.media = "-", "-"
		}
		a, b := k.node(leaves[:7]...), k.node(leaves[7:]...)
		root := k.node(a, b)
		root.extra = "/Resources << /Font 6 0 R >> /MediaBox [0 0 612 1008]"
		b.extra = "/Rotate 90 /CropBox [10 10 600 900]"
		k.tree(root, 0)
		k.catalog(root.num, "")
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root),
			About: "inherited Resources, MediaBox, CropBox and Rotate on nodes kept in an object stream",
			PDF:   k.whole("1.5", oddXref{kind: xrefStream}, oddStm{num: k.alloc(), members: treeMembers(root)})})
	}
	return files
}

func oddStreamEOL(rng *rand.Rand) []OddFile {
	const class = "stream"
	var files []OddFile
	flateFile := func(name, about string, n int, warns bool, tweak func(k *oddKit, root *oddNode)) {
		k := newOddKit(name)
		k.flate = true
		root := k.simple(n, 0)
		if tweak != nil {
			tweak(k, root)
		}
		files = append(files, OddFile{Name: name, Class: class, About: about, Labels: labelsOf(root), QpdfWarns: warns,
			PDF: k.whole("1.4", oddXref{})})
	}
	contents := func(k *oddKit, root *oddNode) []*oddObj {
		var out []*oddObj
		for _, p := range root.leaves() {
			out = append(out, k.byNum(p.content))
		}
		return out
	}
	kw := func(s string) func(*oddKit, *oddNode) {
		return func(k *oddKit, root *oddNode) {
			for _, o := range contents(k, root) {
				o.kw = s
			}
		}
	}
	flateFile("stream-issue-space-crlf", "issue 20 case 2: Flate content streams written \"stream \\r\\n\" (a space before the end of line)", 6, true, kw(" \r\n"))
	flateFile("stream-tab-lf", "Flate content streams written \"stream\\t\\n\"", 6, true, kw("\t\n"))
	flateFile("stream-space-lf", "Flate content streams written \"stream \\n\"", 6, true, kw(" \n"))
	flateFile("stream-cr-only", "Flate content streams written \"stream\\r\" with nothing after the CR", 6, true, kw("\r"))
	flateFile("stream-crlf", "Flate content streams written \"stream\\r\\n\" (as the spec allows)", 6, false, kw("\r\n"))
	flateFile("stream-endstream-no-eol", "Flate content streams whose data runs straight into \"endstream\"", 6, false,
		func(k *oddKit, root *oddNode) {
			for _, o := range contents(k, root) {
				o.end = "endstream"
			}
		})
	lengths := func(delta func(n int) int) func(*oddKit, *oddNode) {
		return func(k *oddKit, root *oddNode) {
			for _, o := range contents(k, root) {
				o.length = fmt.Sprint(len(o.data) + delta(len(o.data)))
			}
		}
	}
	short := 2 + rng.IntN(6)
	flateFile("stream-length-short", fmt.Sprintf("/Length of every content stream %d bytes short, landing inside the data", short), 6, true,
		lengths(func(int) int { return -short }))
	flateFile("stream-length-long", "/Length of every content stream 9 bytes long, past endstream", 6, true,
		lengths(func(int) int { return 9 }))
	flateFile("stream-length-half", "/Length of every content stream half the data", 6, true,
		lengths(func(n int) int { return -n / 2 }))
	flateFile("stream-length-missing", "content streams without /Length", 6, true, func(k *oddKit, root *oddNode) {
		for _, o := range contents(k, root) {
			o.length = "-"
		}
	})
	flateFile("stream-no-endstream", "content streams without endstream: data, then endobj", 6, true, func(k *oddKit, root *oddNode) {
		for _, o := range contents(k, root) {
			o.end = "\n"
		}
	})
	flateFile("stream-length-indirect", "/Length of every content stream an indirect object, written after the stream", 6, false,
		func(k *oddKit, root *oddNode) {
			for _, o := range contents(k, root) {
				o.length = fmt.Sprintf("%d 0 R", k.add(fmt.Sprint(len(o.data))))
			}
		})
	flateFile("stream-length-indirect-wrong", "/Length of every content stream an indirect object holding a wrong value", 6, true,
		func(k *oddKit, root *oddNode) {
			for _, o := range contents(k, root) {
				o.length = fmt.Sprintf("%d 0 R", k.add(fmt.Sprint(len(o.data)-4)))
			}
		})
	{
		k := newOddKit("stream-length-indirect-objstm")
		k.flate = true
		root := k.simple(6, 0)
		var lens []int
		for _, p := range root.leaves() {
			o := k.byNum(p.content)
			n := k.add(fmt.Sprint(len(o.data)))
			o.length = fmt.Sprintf("%d 0 R", n)
			lens = append(lens, n)
		}
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root),
			About: "/Length of every content stream an indirect object kept in an object stream",
			PDF:   k.whole("1.5", oddXref{kind: xrefStream}, oddStm{num: k.alloc(), members: lens})})
	}
	{
		// Uncompressed content holding the word endstream; /Length too
		// long, so a reader looks for endstream and finds it inside.
		k := newOddKit("stream-fake-endstream")
		root := k.simple(5, 0)
		for _, p := range root.leaves() {
			o := k.byNum(p.content)
			o.data = append(o.data, "\nendstream\nBT /F1 11 Tf 72 600 Td (After the word endstream.) Tj ET"...)
			if p.i%2 == 1 {
				o.length = fmt.Sprint(len(o.data) + 5)
			}
		}
		files = append(files, OddFile{Name: k.name, Class: class, QpdfWarns: true,
			About: "uncompressed content streams holding the line \"endstream\"; the odd pages' /Length is 5 too long",
			PDF:   k.whole("1.4", oddXref{})})
	}
	return files
}

// inlinePage is a content stream that draws an inline image (its
// dictionary entries and data as given) and then shows text in Courier
// (/F2), which nothing before the image uses, and ends with a hex string
// (so a scanner that took "<" in the image data for a string start finds
// its end).
func inlinePage(label, dict string, data []byte, after string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "BT /F1 18 Tf 72 720 Td %s Tj ET\n", literal([]byte(label)))
	fmt.Fprintf(&b, "q 200 0 0 20 72 640 cm\nBI %s ID ", dict)
	b.Write(data)
	b.WriteString("\nEI Q\n")
	fmt.Fprintf(&b, "BT /F2 12 Tf 72 600 Td (%s) Tj ET\n", after)
	b.WriteString("BT /F1 10 Tf 72 580 Td <48657820737472696E67> Tj ET")
	return b.Bytes()
}

// imageBytes is n pseudo-random bytes that hold no "EI" and no white
// space, with marker put in the middle.
func imageBytes(rng *rand.Rand, n int, marker string) []byte {
	b := make([]byte, 0, n)
	for len(b) < n-len(marker) {
		c := byte(rng.IntN(256))
		if isSpaceByte(c) || c == 'E' || c == '>' || c == '(' || c == ')' {
			continue
		}
		b = append(b, c)
	}
	mid := len(b) / 2
	return slices.Concat(b[:mid], []byte(marker), b[mid:])
}

func isSpaceByte(c byte) bool {
	return c == 0 || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '
}

func oddInlineImages(rng *rand.Rand) []OddFile {
	const class = "inline-image"
	var files []OddFile
	add := func(name, about string, pages func(k *oddKit, i int) []byte) {
		k := newOddKit(name)
		ps := k.pages(1, 4)
		for _, p := range ps {
			if p.i%2 == 1 {
				k.byNum(p.content).data = pages(k, p.i)
			}
		}
		root := k.node(ps...)
		k.tree(root, 0)
		k.catalog(root.num, "")
		// qpdf --check parses content: where the data holds an "EI" and
		// then a "(" it does not close, qpdf warns "EOF while reading
		// token" (it is as fooled as a scanner, but only warns).
		warns := name == "inline-ei-newline" || name == "inline-two-images"
		files = append(files, OddFile{Name: name, Class: class, About: about, Labels: labelsOf(root), PDF: k.whole("1.4", oddXref{}), QpdfWarns: warns})
	}
	const w = 64 // the image is w x 1, 8 bits gray: w bytes
	add("inline-issue-ei-lt", "issue 20 case 3: on odd pages an inline image whose data holds \" EI<\", then text in a font nothing before it uses",
		func(k *oddKit, i int) []byte {
			return inlinePage(k.label(i), fmt.Sprintf("/W %d /H 1 /BPC 8 /CS /G", w), imageBytes(rng, w, " EI<"), "Courier after the image")
		})
	add("inline-ei-space", "on odd pages an inline image whose data holds \" EI \" then \"<\", then text in a font nothing before it uses",
		func(k *oddKit, i int) []byte {
			return inlinePage(k.label(i), fmt.Sprintf("/W %d /H 1 /BPC 8 /CS /G", w), imageBytes(rng, w, " EI <"), "Courier after the image")
		})
	add("inline-ei-newline", "on odd pages an inline image whose data holds \"\\nEI\\n\" and a \"(\", then text in a font nothing before it uses",
		func(k *oddKit, i int) []byte {
			return inlinePage(k.label(i), fmt.Sprintf("/W %d /H 1 /BPC 8 /CS /G", w), imageBytes(rng, w, "\nEI\n/F9 1 Tf ("), "Courier after the image")
		})
	add("inline-l-key", "on odd pages an inline image with /L (its data length) whose data holds \" EI<\"",
		func(k *oddKit, i int) []byte {
			return inlinePage(k.label(i), fmt.Sprintf("/W %d /H 1 /BPC 8 /CS /G /L %d", w, w), imageBytes(rng, w, " EI<"), "Courier after the image")
		})
	add("inline-length-key", "on odd pages an inline image with /Length (its data length) whose data holds \" EI<\"",
		func(k *oddKit, i int) []byte {
			return inlinePage(k.label(i), fmt.Sprintf("/W %d /H 1 /BPC 8 /CS /G /Length %d", w, w), imageBytes(rng, w, " EI<"), "Courier after the image")
		})
	add("inline-ahx", "on odd pages an inline image in ASCIIHex (/F /AHx), then text in a font nothing before it uses",
		func(k *oddKit, i int) []byte {
			data := imageBytes(rng, w, "")
			return inlinePage(k.label(i), fmt.Sprintf("/W %d /H 1 /BPC 8 /CS /G /F /AHx", w), []byte(strings.ToUpper(hex.EncodeToString(data))+">"), "Courier after the image")
		})
	add("inline-a85-ei", "on odd pages an inline image in ASCII85 (/F /A85) whose encoded data holds \" EI \", then text in a font nothing before it uses",
		func(k *oddKit, i int) []byte {
			return inlinePage(k.label(i), fmt.Sprintf("/W %d /H 1 /BPC 8 /CS /G /F /A85", w), a85WithEI(rng, w), "Courier after the image")
		})
	add("inline-fl-stored", "on odd pages an inline image in Flate (/F /Fl, a stored block) whose data holds \" EI<\", then text in a font nothing before it uses",
		func(k *oddKit, i int) []byte {
			return inlinePage(k.label(i), fmt.Sprintf("/W %d /H 1 /BPC 8 /CS /G /F /Fl", w),
				deflate(imageBytes(rng, w, " EI<"), zlib.NoCompression), "Courier after the image")
		})
	add("inline-two-images", "on odd pages two inline images, the first's data holding \" EI \" and a \"(\", the second's \" EI<\"",
		func(k *oddKit, i int) []byte {
			first := inlinePage(k.label(i), fmt.Sprintf("/W %d /H 1 /BPC 8 /CS /G", w), imageBytes(rng, w, " EI ("), "Courier between the images")
			return slices.Concat(first, []byte("\nq 200 0 0 20 72 500 cm\nBI /W 64 /H 1 /BPC 8 /CS /G ID "),
				imageBytes(rng, w, " EI<"), []byte("\nEI Q\nBT /F3 12 Tf 72 460 Td (Times after the second image) Tj ET\nBT /F1 10 Tf 72 440 Td <4869> Tj ET"))
		})
	return files
}

// a85WithEI is n bytes of image data in ASCII85, with "~>" at the end,
// where a 5-character group "EI!!!" (4 bytes of data) is written with a
// space before and after its "EI": white space inside ASCII85 data means
// nothing.
func a85WithEI(rng *rand.Rand, n int) []byte {
	data := imageBytes(rng, n-4, "")
	// "EI!!!" is the group of these 4 bytes.
	v := uint32(('E'-33)*85*85*85*85 + ('I'-33)*85*85*85)
	group := []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	data = slices.Concat(data[:n/2-4], group, data[n/2-4:])
	var out []byte
	for g := 0; g < len(data); g += 4 {
		chunk := data[g:min(g+4, len(data))]
		var v uint32
		for j := range 4 {
			v <<= 8
			if j < len(chunk) {
				v |= uint32(chunk[j])
			}
		}
		var c [5]byte
		for j := 4; j >= 0; j-- {
			c[j] = byte(v%85) + '!'
			v /= 85
		}
		enc := c[:len(chunk)+1]
		if string(enc) == "EI!!!" {
			out = append(out, " EI !!!"...)
			continue
		}
		out = append(out, enc...)
	}
	return append(out, "~>"...)
}

func oddBorrowers(rng *rand.Rand) []OddFile {
	const class = "borrowed-resources"
	var files []OddFile
	add := func(name, about string, labels bool, build func(k *oddKit, ps []*oddNode)) {
		k := newOddKit(name)
		ps := k.pages(1, 4)
		build(k, ps)
		root := k.node(ps...)
		k.tree(root, 0)
		k.catalog(root.num, "")
		var l []string
		if labels {
			l = labelsOf(root)
		}
		files = append(files, OddFile{Name: name, Class: class, About: about, Labels: l, PDF: k.whole("1.4", oddXref{})})
	}
	form := func(k *oddKit, dict, content string) int {
		return k.addStream(strings.TrimSpace("/Type /XObject /Subtype /Form /BBox [0 0 612 792] "+dict), []byte(content))
	}
	draw := func(k *oddKit, p *oddNode, res, extra string) {
		o := k.byNum(p.content)
		o.data = append(o.data, "\n"+extra...)
		p.res = res
	}
	add("form-issue-nested-nores", "issue 20 case 4: on pages 1 and 3 a form (with /Resources naming only a second form) draws a form without /Resources that shows text in the page's /F3",
		true, func(k *oddKit, ps []*oddNode) {
			inner := form(k, "", "BT /F3 14 Tf 72 500 Td (Times from a form without resources) Tj ET")
			outer := form(k, fmt.Sprintf("/Resources << /XObject << /Fm2 %d 0 R >> >>", inner), "q /Fm2 Do Q")
			for _, p := range []*oddNode{ps[0], ps[2]} {
				draw(k, p, fmt.Sprintf("<< /Font 6 0 R /XObject << /Fm1 %d 0 R >> >>", outer), "q /Fm1 Do Q")
			}
		})
	add("form-nores-direct", "on page 2 a form without /Resources, named by the page, shows text in the page's /F3",
		true, func(k *oddKit, ps []*oddNode) {
			f := form(k, "", "BT /F3 14 Tf 72 500 Td (Times from a form) Tj ET")
			draw(k, ps[1], fmt.Sprintf("<< /Font 6 0 R /XObject << /Fx %d 0 R >> >>", f), "q /Fx Do Q")
		})
	add("form-nores-three-levels", "on page 3 a form draws a form draws a form without /Resources, which uses the page's /F3; the middle one has /Resources with no fonts",
		true, func(k *oddKit, ps []*oddNode) {
			f3 := form(k, "", "BT /F3 14 Tf 72 500 Td (Three levels down) Tj ET")
			f2 := form(k, fmt.Sprintf("/Resources << /XObject << /C %d 0 R >> /ProcSet [/PDF] >>", f3), "/C Do")
			f1 := form(k, fmt.Sprintf("/Resources << /XObject << /B %d 0 R >> >>", f2), "/B Do")
			draw(k, ps[2], fmt.Sprintf("<< /Font 6 0 R /XObject << /A %d 0 R >> >>", f1), "q /A Do Q")
		})
	add("form-nores-two-mappings", "one form without /Resources (showing /F3) drawn on pages 1 and 2, whose /F3 are different fonts (Times, Courier)",
		true, func(k *oddKit, ps []*oddNode) {
			f := form(k, "", "BT /F3 14 Tf 72 500 Td (Shared form text) Tj ET")
			draw(k, ps[0], fmt.Sprintf("<< /Font << /F1 3 0 R /F2 4 0 R /F3 5 0 R >> /XObject << /S %d 0 R >> >>", f), "q /S Do Q")
			draw(k, ps[1], fmt.Sprintf("<< /Font << /F1 3 0 R /F2 4 0 R /F3 4 0 R >> /XObject << /S %d 0 R >> >>", f), "q /S Do Q")
		})
	annot := func(k *oddKit, p *oddNode, subtype, ap string) {
		p.extra = fmt.Sprintf("/Annots [<< /Type /Annot /Subtype /%s /Rect [72 400 400 440] /F 4 /AP << /N %s >> %s >>]", subtype, ap,
			map[bool]string{true: "/Contents (note) /Name /Draft", false: ""}[subtype == "Stamp"])
	}
	add("annot-issue-ap-nores", "issue 20 case 4: on pages 2 and 4 a stamp annotation whose appearance stream has no /Resources and shows text in the page's /F3",
		true, func(k *oddKit, ps []*oddNode) {
			for _, p := range []*oddNode{ps[1], ps[3]} {
				ap := k.addStream("/Type /XObject /Subtype /Form /BBox [0 0 328 40]", []byte("BT /F3 14 Tf 4 12 Td (Appearance in Times) Tj ET"))
				annot(k, p, "Stamp", fmt.Sprintf("%d 0 R", ap))
			}
		})
	add("annot-ap-states-nores", "on page 3 a square annotation whose appearance is a dictionary of states (/AS /On), each a stream without /Resources using the page's /F3",
		true, func(k *oddKit, ps []*oddNode) {
			on := k.addStream("/Type /XObject /Subtype /Form /BBox [0 0 328 40]", []byte("BT /F3 14 Tf 4 12 Td (State on) Tj ET"))
			off := k.addStream("/Type /XObject /Subtype /Form /BBox [0 0 328 40]", []byte("BT /F2 14 Tf 4 12 Td (State off) Tj ET"))
			annot(k, ps[2], "Square", fmt.Sprintf("<< /On %d 0 R /Off %d 0 R >>", on, off))
			ps[2].extra = strings.Replace(ps[2].extra, "/F 4", "/F 4 /AS /On", 1)
		})
	add("inline-in-borrowing-form", "on page 1 a form without /Resources draws an inline image whose data holds \" EI<\", then shows text in the page's /F3",
		true, func(k *oddKit, ps []*oddNode) {
			content := inlinePage("in the form", "/W 64 /H 1 /BPC 8 /CS /G", imageBytes(rng, 64, " EI<"), "Times in the form")
			content = bytes.Replace(content, []byte("/F2 12 Tf"), []byte("/F3 12 Tf"), 1)
			content = bytes.Replace(content, []byte("72 720 Td"), []byte("72 540 Td"), 1)
			f := form(k, "", string(content))
			draw(k, ps[0], fmt.Sprintf("<< /Font 6 0 R /XObject << /Fi %d 0 R >> >>", f), "q /Fi Do Q")
		})
	return files
}

func oddEncrypted(*rand.Rand) []OddFile {
	const class = "encryption"
	var files []OddFile
	// A file with a bit of everything, to be encrypted.
	rich := func(name string) (*oddKit, *oddNode) {
		k := newOddKit(name)
		k.flate = true
		leaves := k.pages(1, 12)
		for _, p := range leaves {
			p.res, p.media = "-", "-"
		}
		f := k.addStream("/Type /XObject /Subtype /Form /BBox [0 0 612 792]", []byte("BT /F3 14 Tf 72 500 Td (Form text \\(encrypted\\)) Tj ET"))
		c := k.byNum(leaves[2].content)
		c.data = deflate(append(k.pageContent(3, leaves[2].label), "\nq /Fx Do Q"...), zlib.BestCompression)
		leaves[4].extra = "/Annots [<< /Type /Annot /Subtype /Link /Rect [72 100 200 120] /Dest [" + fmt.Sprint(leaves[0].num) + " 0 R /Fit] >>]"
		a, b := k.node(leaves[:5]...), k.node(leaves[5:]...)
		root := k.node(a, b)
		root.extra = fmt.Sprintf("/Resources << /Font 6 0 R /XObject << /Fx %d 0 R >> >> /MediaBox [0 0 612 792]", f)
		b.extra = "/Rotate 90"
		k.tree(root, 0)
		k.catalog(root.num, "")
		return k, root
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"encrypt-rc4-40", []string{"--allow-weak-crypto", "--encrypt", "", "owner", "40", "--"}},
		{"encrypt-rc4-128", []string{"--allow-weak-crypto", "--encrypt", "", "owner", "128", "--use-aes=n", "--"}},
		{"encrypt-aes-128", []string{"--encrypt", "", "owner", "128", "--use-aes=y", "--"}},
		{"encrypt-aes-256", []string{"--encrypt", "", "owner", "256", "--"}},
		{"encrypt-aes-256-objstm", []string{"--object-streams=generate", "--encrypt", "", "owner", "256", "--"}},
		{"encrypt-rc4-128-objstm-restricted", []string{"--allow-weak-crypto", "--object-streams=generate", "--encrypt", "", "owner", "128", "--use-aes=n", "--print=none", "--modify=none", "--extract=n", "--"}},
	} {
		k, root := rich(tc.name)
		files = append(files, OddFile{Name: tc.name, Class: class, Labels: labelsOf(root), PDF: k.whole("1.4", oddXref{}),
			About: "owner-password-only encryption by qpdf (" + strings.Join(tc.args, " ") + ") of a 12-page file with inherited attributes, a form and a link",
			Tool:  slices.Concat([]string{"qpdf"}, tc.args[:len(tc.args)-1], []string{"--", "IN", "OUT"})})
	}
	{
		// Case 1's tree, encrypted.
		k := newOddKit("encrypt-aes-256-empty-node")
		ps := k.pages(1, 30)
		e := k.node()
		n := k.node(ps[28:]...)
		root := k.node(slices.Concat(ps[:5], []*oddNode{e}, ps[5:28], []*oddNode{n})...)
		k.tree(root, 0)
		k.catalog(root.num, "")
		files = append(files, OddFile{Name: k.name, Class: class, Labels: labelsOf(root), PDF: k.whole("1.4", oddXref{}),
			About: "issue 20 case 1's tree (an empty node among the kids, the last two pages in a node; /Count 30 equals the number of kids), encrypted with AES-256 by qpdf",
			Tool:  []string{"qpdf", "--encrypt", "", "owner", "256", "--", "IN", "OUT"}})
	}
	return files
}
