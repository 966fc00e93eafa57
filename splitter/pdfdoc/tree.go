package pdfdoc

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// The page tree, walked whole and soundly at Open.
//
// The pages are what qpdf lists (QPDF::getAllPages), in its order: a kid
// that has /Kids is an inner node, whatever its /Type; any other kid is a
// page. /Count is never trusted: it says nothing a kid cannot contradict
// (an empty node, a node of two pages, a count that lies), and a descent
// that trusted it would land on the wrong page with nothing to tell. So
// every kid is read, once, and the document's pages are kept as a flat
// list: page i is looked up, not searched for.
//
// Reading every kid of a big flat tree would fetch the whole file if each
// kid cost a chunk of it (a 1 GiB file with each page's dictionary beside
// its image). So kids are read a batch at a time, and before each batch the
// source is told where the batch's objects start (Prefetcher): a remote
// source fetches small ranges around them, all at once, instead of a chunk
// for each.
//
// What qpdf counts as a page but no reader can show (a kid that is missing,
// freed, not a dictionary or a direct object, or a dictionary that says it
// is something else) is a broken page: it counts, so that the pages after
// it keep their numbers, and a part that includes it fails.

// inherited holds the inheritable attributes (ISO 32000-1, 7.7.3.4) in
// effect, unresolved (they may be references); nil when absent all the way
// up.
type inherited struct {
	resources, mediaBox, cropBox, rotate types.Object
}

func (in inherited) with(d types.Dict) inherited {
	if v, ok := d["Resources"]; ok && v != nil {
		in.resources = v
	}
	if v, ok := d["MediaBox"]; ok && v != nil {
		in.mediaBox = v
	}
	if v, ok := d["CropBox"]; ok && v != nil {
		in.cropBox = v
	}
	if v, ok := d["Rotate"]; ok && v != nil {
		in.rotate = v
	}
	return in
}

// hasInherited tells whether d sets an inheritable attribute.
func hasInherited(d types.Dict) bool {
	for _, k := range []string{"Resources", "MediaBox", "CropBox", "Rotate"} {
		if v, ok := d[k]; ok && v != nil {
			return true
		}
	}
	return false
}

// treeNode is an inner node of the page tree: its object number and the
// attributes in effect for its kids, its own included (an index into
// Doc.attrs: most nodes set none and share their parent's). A node costs
// 8 bytes and a page 12 (pageRef), so that the page tree's memory stays
// small however many kids a small file can make the walk find (a /Kids
// array shared by many nodes, a page listed over and over).
type treeNode struct {
	num   int32
	attrs int32
}

// pageRef is one page of the document: its page dictionary's object
// number and its parent (an index into Doc.nodes). A broken page has num
// 0 and why saying what it is instead.
type pageRef struct {
	num    int32
	parent int32
	why    brokenKid
}

// brokenKid says why a kid that counts as a page is not one.
type brokenKid uint8

const (
	kidPage      brokenKid = iota
	kidMissing             // a reference to no object (freed, or never there)
	kidNotDict             // a reference to something other than a dictionary
	kidDirect              // not a reference: qpdf makes it a page, with a warning
	kidWrongType           // a dictionary whose /Type is another (a node without /Kids)
)

func (b brokenKid) String() string {
	switch b {
	case kidMissing:
		return "refers to an object the file does not have"
	case kidNotDict:
		return "refers to something other than a dictionary"
	case kidDirect:
		return "is a direct object, not a reference"
	case kidWrongType:
		return "is a dictionary of another type"
	}
	return "is a page"
}

// page is one page as Extract uses it: its number, dictionary and
// attributes.
type page struct {
	num  int
	dict types.Dict
	in   inherited // its own attributes included
}

// walkBatch is how many kids are read between two prefetches: enough for
// many reads in flight, few enough that what was prefetched is still
// cached when it is read.
const walkBatch = 1024

// kidSlot is a kid of a node, as the walk classifies it: a page, an inner
// node (an index into Doc.nodes) or a broken page.
type kidSlot struct {
	num  int32
	node int32 // -1 for a page
	why  brokenKid
}

// treeWalk is the state of readTree: the kids read so far, every node's
// in one array (node i's are kids[first[i]:first[i]+count[i]]), and the
// budget they are counted against.
type treeWalk struct {
	kids         []kidSlot
	first, count []int32
	limit        int
}

// readTree reads the catalog and walks the whole page tree, level by
// level, filling d.nodes and d.pages. The kids of a whole level are read
// in batches, so that a balanced tree has as many reads in flight as a flat
// one.
func (d *Doc) readTree(ctx context.Context) error {
	r := d.r
	rootRef, ok := r.trailer["Root"].(types.IndirectRef)
	if !ok {
		return errors.New("no catalog reference in the trailer")
	}
	d.catalog = rootRef.ObjectNumber.Value()
	cat, err := r.resolveDict(ctx, rootRef)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	if cat == nil {
		return errors.New("no catalog")
	}
	if v := cat.NameEntry("Version"); v != nil && *v > d.version && len(*v) == 3 {
		d.version = *v
	}
	num, dict, err := d.treeRoot(ctx, cat)
	if err != nil {
		return err
	}
	d.attrs = []inherited{inherited{}.with(dict)}
	d.nodes = []treeNode{{num: int32(num)}}
	d.tree, d.inner = newObjSet(r.x.size()), newObjSet(r.x.size())
	d.tree.add(d.catalog)
	d.tree.add(num)
	d.inner.add(num)
	w := &treeWalk{first: []int32{0}, count: []int32{0}, limit: r.opts.MaxPages}
	for level := []int32{0}; len(level) > 0; {
		todo, err := d.levelKids(ctx, level, w)
		if err != nil {
			return err
		}
		level = level[:0:0]
		for start := 0; start < len(todo); start += walkBatch {
			batch := todo[start:min(len(todo), start+walkBatch)]
			nums := make([]int, len(batch))
			for i, k := range batch {
				nums[i] = int(k.num)
			}
			r.prefetchObjects(ctx, nums)
			for _, k := range batch {
				slot, err := d.classifyKid(ctx, k)
				if err != nil {
					return err
				}
				w.kids[k.slot] = slot
				if slot.node >= 0 {
					w.first = append(w.first, 0)
					w.count = append(w.count, 0)
					level = append(level, slot.node)
				}
			}
		}
	}
	d.listPages(w)
	return nil
}

// treeRoot returns the root of the page tree: the catalog's /Pages, or, as
// qpdf corrects it, the node above it when /Pages names a node with a
// /Parent. A root without /Kids is refused: qpdf finds no pages there and
// poppler reports a malformed document.
func (d *Doc) treeRoot(ctx context.Context, cat types.Dict) (int, types.Dict, error) {
	ref, ok := cat["Pages"].(types.IndirectRef)
	if !ok {
		return 0, nil, errors.New("no page tree")
	}
	num := ref.ObjectNumber.Value()
	dict, err := d.nodeDict(ctx, num)
	if err != nil {
		return 0, nil, fmt.Errorf("page tree: %w", err)
	}
	seen := map[int]bool{num: true}
	for {
		parent, ok := dict["Parent"].(types.IndirectRef)
		if !ok || seen[parent.ObjectNumber.Value()] {
			break
		}
		pnum := parent.ObjectNumber.Value()
		pdict, err := d.nodeDict(ctx, pnum)
		if err != nil {
			break
		}
		seen[pnum] = true
		num, dict = pnum, pdict
	}
	if _, hasKids := dict["Kids"]; !hasKids {
		return 0, nil, fmt.Errorf("%w: the root of the page tree (object %d) has no /Kids", errPageTree, num)
	}
	return num, dict, nil
}

// pendingKid is a kid to classify: its slot in treeWalk.kids, the node
// it belongs to (an index into Doc.nodes), its position there, and the
// object /Kids refers to.
type pendingKid struct {
	slot, node, pos, num int32
}

// levelKids returns the kids of the nodes of a level that are references,
// in order, to be classified; it gives every kid of those nodes a slot in
// w.kids, and classifies the direct ones at once. The kids are counted
// against the budget before anything is kept for them: a small file can
// name one big /Kids array from many nodes.
func (d *Doc) levelKids(ctx context.Context, level []int32, w *treeWalk) ([]pendingKid, error) {
	var todo []pendingKid
	for _, ni := range level {
		n := d.nodes[ni]
		dict, err := d.nodeDict(ctx, int(n.num))
		if err != nil {
			return nil, fmt.Errorf("page tree: %w", err)
		}
		arr, err := d.r.resolveArray(ctx, dict["Kids"])
		if err != nil {
			return nil, fmt.Errorf("page tree node %d: /Kids: %w", n.num, err)
		}
		if len(w.kids)+len(arr) > w.limit {
			return nil, fmt.Errorf("%w: over %d pages and page tree nodes", ErrTooLarge, w.limit)
		}
		w.first[ni], w.count[ni] = int32(len(w.kids)), int32(len(arr))
		for pos, k := range arr {
			slot := int32(len(w.kids))
			ir, ok := k.(types.IndirectRef)
			if !ok {
				if hasKey(k, "Kids") {
					return nil, fmt.Errorf("%w: node %d has an inner node as a direct object", errPageTree, n.num)
				}
				w.kids = append(w.kids, kidSlot{node: -1, why: kidDirect})
				continue
			}
			num := ir.ObjectNumber.Value()
			if num <= 0 || num > math.MaxInt32 {
				// No such object: the table refuses numbers this big.
				w.kids = append(w.kids, kidSlot{node: -1, why: kidMissing})
				continue
			}
			w.kids = append(w.kids, kidSlot{})
			todo = append(todo, pendingKid{slot: slot, node: ni, pos: int32(pos), num: int32(num)})
		}
	}
	return todo, nil
}

// classifyKid reads kid k and says what it is; an inner node is added to
// d.nodes, to be read at the next level.
func (d *Doc) classifyKid(ctx context.Context, k pendingKid) (kidSlot, error) {
	r := d.r
	parent := d.nodes[k.node]
	slot := kidSlot{node: -1, num: k.num}
	num := int(k.num)
	o, err := r.object(ctx, num)
	if err != nil {
		return slot, fmt.Errorf("page tree node %d, kid %d (object %d): %w", parent.num, k.pos, num, err)
	}
	kd, isDict := o.(types.Dict)
	switch {
	case o == nil:
		slot.why = kidMissing
	case !isDict:
		slot.why = kidNotDict
	case hasKey(kd, "Kids"):
		if d.tree.has(num) {
			return slot, fmt.Errorf("%w: object %d is reached twice (a loop)", errPageTree, num)
		}
		d.tree.add(num)
		d.inner.add(num)
		attrs := parent.attrs
		if hasInherited(kd) {
			attrs = int32(len(d.attrs))
			d.attrs = append(d.attrs, d.attrs[parent.attrs].with(kd))
		}
		slot.node = int32(len(d.nodes))
		d.nodes = append(d.nodes, treeNode{num: k.num, attrs: attrs})
	default:
		if t := kd.Type(); t != nil && *t != "Page" {
			// Not a page, and perhaps something pages use (a font): a
			// part must copy it like any other object.
			slot.why = kidWrongType
			break
		}
		d.tree.add(num)
	}
	return slot, nil
}

// listPages lists the pages in document order: a depth-first walk of the
// kids read, kept on a stack of its own (a tree may be thousands of levels
// deep).
func (d *Doc) listPages(w *treeWalk) {
	type frame struct{ node, next, end int32 }
	open := func(node int32) frame { return frame{node, w.first[node], w.first[node] + w.count[node]} }
	stack := []frame{open(0)}
	d.pages = make([]pageRef, 0, len(w.kids)-len(d.nodes)+1)
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.next >= top.end {
			stack = stack[:len(stack)-1]
			continue
		}
		k := w.kids[top.next]
		top.next++
		if k.node >= 0 {
			stack = append(stack, open(k.node))
			continue
		}
		ref := pageRef{num: k.num, parent: top.node, why: k.why}
		if k.why != kidPage {
			ref.num = 0
		}
		d.pages = append(d.pages, ref)
	}
}

func hasKey(o types.Object, key string) bool {
	d, ok := o.(types.Dict)
	if !ok {
		return false
	}
	_, has := d[key]
	return has
}

// nodeDict returns the dictionary of page tree object num.
func (d *Doc) nodeDict(ctx context.Context, num int) (types.Dict, error) {
	o, err := d.r.object(ctx, num)
	if err != nil {
		return nil, fmt.Errorf("object %d: %w", num, err)
	}
	dict, ok := o.(types.Dict)
	if !ok {
		return nil, fmt.Errorf("object %d: not a page or page tree node", num)
	}
	return dict, nil
}

// findPage returns page i (0-based): its dictionary, read now, and its
// attributes.
func (d *Doc) findPage(ctx context.Context, i int) (page, error) {
	if i < 0 || i >= len(d.pages) {
		return page{}, fmt.Errorf("page %d of %d", i+1, len(d.pages))
	}
	ref := d.pages[i]
	if ref.why != kidPage {
		return page{}, fmt.Errorf("%w: page %d %s", errBrokenPage, i+1, ref.why)
	}
	num := int(ref.num)
	dict, err := d.nodeDict(ctx, num)
	if err != nil {
		return page{}, err
	}
	return page{num: num, dict: dict, in: d.attrs[d.nodes[ref.parent].attrs].with(dict)}, nil
}

var (
	// errPageTree: the page tree is not one qpdf and the other readers
	// agree on (a loop, a root that is no node).
	errPageTree = errors.New("broken page tree")
	// errBrokenPage: a page qpdf counts but no reader can show.
	errBrokenPage = errors.New("broken page")
)

// objSet is a set of object numbers, a bit each: the page tree's objects,
// which a part must not copy as ordinary objects.
type objSet struct{ bits []uint64 }

func newObjSet(n int) objSet { return objSet{bits: make([]uint64, (n+63)/64)} }

func (s *objSet) add(num int) {
	if num < 0 {
		return
	}
	if w := num / 64; w >= len(s.bits) {
		s.bits = append(s.bits, make([]uint64, w+1-len(s.bits))...)
	}
	s.bits[num/64] |= 1 << (num % 64)
}

func (s objSet) has(num int) bool {
	w := num / 64
	return num >= 0 && w < len(s.bits) && s.bits[w]&(1<<(num%64)) != 0
}
