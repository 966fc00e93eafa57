package pdfdoc

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// The page tree, read lazily.
//
// Open reads the inner nodes (/Pages) it needs to count the pages, but no
// page: a node whose /Count equals the length of its /Kids is taken to have
// only pages as kids ("flat") and counts len(/Kids) without reading them;
// any other node has each kid read, and counts what its kids count, not what
// its own /Count claims. So a balanced tree costs its inner nodes, a flat
// tree of 3,000 pages whose page dictionaries sit beside their images costs
// one dictionary, and a lying /Count (two billion over one page) is ignored
// because the kids contradict it.
//
// Finding page i descends from the root by the kids' counts. On a flat node
// the kid is indexed directly and checked: it must be a page (/Type /Page,
// or no /Kids) whose /Parent, if any, is that node. If it is not, the node
// is walked (every kid read, inner ones expanded) and the descent retried.
//
// Limits of the rule: a flat-looking node whose kids are not all pages (an
// inner node with /Count 1 among them, say) makes Open count len(/Kids)
// pages; the walk on landing then finds the real number, and if it differs
// from the count already given out, Extract fails rather than shift the
// pages. Open lands on the first page, so a tree that is wrong at its very
// start fails or is corrected there. When the count exceeds the number of
// objects in the file (impossible without repeating pages), every flat node
// is walked and a page listed twice is an error.

// maxTreeDepth bounds the page tree's depth: real trees are a few levels
// deep; a cycle or a hostile file must not exhaust the stack.
const maxTreeDepth = 256

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

// pageNode is an inner node of the page tree.
type pageNode struct {
	num   int       // object number
	in    inherited // in effect for its kids, its own attributes included
	count int       // pages below
	kids  []int     // object numbers of the kids
	flat  bool      // kids taken to be pages, indexed directly
	// For a node that is not flat: per kid, its node (nil for a page) and
	// the number of pages before it.
	sub []*pageNode
	cum []int
}

// page is one leaf of the tree: its number, dictionary and attributes.
type page struct {
	num  int
	dict types.Dict
	in   inherited // its own attributes included
}

// isLeaf tells a page from an inner node as poppler does: a page says so or
// has no kids, whatever its /Type.
func isLeaf(d types.Dict) bool {
	_, hasKids := d["Kids"]
	t := d.Type()
	return (t != nil && *t == "Page") || !hasKids
}

// kidNumbers returns the object numbers of the references among kids;
// other values (null, a stray number) are skipped, as readers do. all is
// false if there were any.
func kidNumbers(kids types.Array) (nums []int, all bool) {
	nums = make([]int, 0, len(kids))
	for _, k := range kids {
		if ir, ok := k.(types.IndirectRef); ok {
			nums = append(nums, ir.ObjectNumber.Value())
		}
	}
	return nums, len(nums) == len(kids)
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

// expand reads inner node num (reached with in) and, unless it is flat,
// its kids, recursively. Each inner node may be reached once: twice is a
// cycle or a malicious DAG.
func (d *Doc) expand(ctx context.Context, num int, dict types.Dict, in inherited, depth int) (*pageNode, error) {
	if depth > maxTreeDepth {
		return nil, fmt.Errorf("page tree deeper than %d levels", maxTreeDepth)
	}
	if _, seen := d.nodes[num]; seen {
		return nil, fmt.Errorf("object %d: page tree node reached twice", num)
	}
	kids, err := d.r.resolveArray(ctx, dict["Kids"])
	if err != nil {
		return nil, fmt.Errorf("object %d: /Kids: %w", num, err)
	}
	n := &pageNode{num: num, in: in.with(dict)}
	d.nodes[num] = n
	nums, all := kidNumbers(kids)
	n.kids = nums
	if c := intOf(dict["Count"], -1); all && c == len(nums) && !d.walkAll {
		n.flat, n.count = true, c
		return n, nil
	}
	return n, d.expandKids(ctx, n, depth)
}

// expandKids reads every kid of n: pages count one, inner nodes what they
// hold.
func (d *Doc) expandKids(ctx context.Context, n *pageNode, depth int) error {
	n.flat = false
	n.sub = make([]*pageNode, len(n.kids))
	n.cum = make([]int, len(n.kids))
	n.count = 0
	for i, k := range n.kids {
		n.cum[i] = n.count
		kd, err := d.nodeDict(ctx, k)
		if err != nil {
			return err
		}
		if isLeaf(kd) {
			if d.seenPages != nil {
				if d.seenPages[k] {
					return fmt.Errorf("object %d: a page listed twice", k)
				}
				d.seenPages[k] = true
			}
			n.count++
			continue
		}
		sub, err := d.expand(ctx, k, kd, n.in, depth+1)
		if err != nil {
			return err
		}
		n.sub[i] = sub
		n.count += sub.count
		if n.count > d.r.x.max {
			return fmt.Errorf("%w: over %d pages", ErrTooLarge, d.r.x.max)
		}
	}
	return nil
}

// recount sums the counts up the tree after a node was walked.
func recount(n *pageNode) int {
	if n.flat || n.sub == nil {
		return n.count
	}
	c := 0
	for i, s := range n.sub {
		n.cum[i] = c
		if s == nil {
			c++
		} else {
			c += recount(s)
		}
	}
	n.count = c
	return c
}

// findPage returns page i (0-based) of the tree.
func (d *Doc) findPage(ctx context.Context, i int) (page, error) {
	if d.leafRoot != nil {
		return *d.leafRoot, nil
	}
	n := d.root
	for range 2 * maxTreeDepth {
		if i < 0 || i >= n.count {
			return page{}, fmt.Errorf("page %d outside node %d of %d pages", i+1, n.num, n.count)
		}
		if n.flat {
			num := n.kids[i]
			kd, err := d.nodeDict(ctx, num)
			if err != nil {
				return page{}, err
			}
			parent, hasParent := kd["Parent"].(types.IndirectRef)
			if isLeaf(kd) && (!hasParent || parent.ObjectNumber.Value() == n.num) {
				return page{num: num, dict: kd, in: n.in.with(kd)}, nil
			}
			// Not what the flat rule assumed: walk this node.
			before := n.count
			if err := d.expandKids(ctx, n, 0); err != nil {
				return page{}, err
			}
			if n.count != before {
				total := recount(d.root)
				if d.counted && total != d.count {
					return page{}, fmt.Errorf("%w: node %d has %d pages, not the %d its /Count says; the document has %d pages, not %d",
						errPageTree, n.num, n.count, before, total, d.count)
				}
				d.count = total
				if i >= n.count {
					return page{}, fmt.Errorf("page %d outside node %d of %d pages", i+1, n.num, n.count)
				}
			}
			continue
		}
		j := sort.Search(len(n.cum), func(k int) bool { return n.cum[k] > i }) - 1
		if j < 0 {
			return page{}, errors.New("page tree index out of order")
		}
		i -= n.cum[j]
		if s := n.sub[j]; s != nil {
			n = s
			continue
		}
		if i != 0 {
			return page{}, errors.New("page tree index out of order")
		}
		num := n.kids[j]
		kd, err := d.nodeDict(ctx, num)
		if err != nil {
			return page{}, err
		}
		return page{num: num, dict: kd, in: n.in.with(kd)}, nil
	}
	return page{}, errors.New("page tree deeper than it can be")
}

// errPageTree: the tree holds a different number of pages than the count
// given out at Open; pages would shift.
var errPageTree = errors.New("the page tree contradicts its counts")
