package fs

import (
	"context"
	"math"
	"runtime"
	"sync"
	"syscall"
	"weak"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// maxKernelNodes bounds the nodes the daemon keeps for the kernel. The
// kernel keeps an inode for every name it has looked up (a listing through
// READDIRPLUS looks up every entry) until memory pressure evicts it, and
// go-fuse keeps a node for each, about 600 bytes with ours: `find` over a
// million objects would hold them all. Past this many, the least recently
// looked up are handed back (see pruneKernelNodes); a later access looks
// the name up again, from the metadata cache when it is fresh.
const maxKernelNodes = 8192

// pruneBatch is how many nodes one prune hands back at most: the table
// goes down to maxKernelNodes - pruneBatch, so that pruning is occasional.
const pruneBatch = 1024

// nodeTable maps each inode number to the one node that stands for it, so
// that a lookup refreshes the very node the kernel uses. go-fuse keeps the
// node it already has for an inode number and drops a new one silently,
// and it forgets a node when the kernel does; so the table holds its nodes
// weakly: a node lives as long as go-fuse (or a lookup in progress) holds
// it, a lookup finds it until then, and its entry goes when it is
// collected. A node the kernel has forgotten but that is not collected yet
// is handed out again, and go-fuse takes it back as it is.
//
// It also keeps the nodes the kernel holds in order of last lookup, to
// hand the oldest back past maxKernelNodes.
type nodeTable struct {
	mu    sync.Mutex
	nodes map[uint64]weak.Pointer[gofs.Inode]
	// kernel holds the nodes returned to the kernel and not forgotten
	// since, in order of last lookup (hashicorp's simplelru, unbounded:
	// the pruner, not an insertion, hands the oldest back).
	kernel *simplelru.LRU[*gofs.Inode, struct{}]
	// prune wakes the pruner; it holds at most one wake-up.
	prune chan struct{}
}

func newNodeTable() *nodeTable {
	kernel, _ := simplelru.NewLRU[*gofs.Inode, struct{}](math.MaxInt, nil) // fails only for a size below 1
	return &nodeTable{
		nodes:  map[uint64]weak.Pointer[gofs.Inode]{},
		kernel: kernel,
		prune:  make(chan struct{}, 1),
	}
}

// node returns the node for ino, making it with mk (under the table's
// lock, so that two lookups of a new name agree on one node) if there is
// none. mk must return an initialized inode (Inode.NewInode).
func (t *nodeTable) node(ino uint64, mk func() *gofs.Inode) *gofs.Inode {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.nodes[ino].Value(); n != nil {
		t.touchLocked(n)
		return n
	}
	n := mk()
	wp := weak.Make(n)
	t.nodes[ino] = wp
	runtime.AddCleanup(n, t.collected, collectedNode{ino: ino, wp: wp})
	t.touchLocked(n)
	return n
}

type collectedNode struct {
	ino uint64
	wp  weak.Pointer[gofs.Inode]
}

// collected drops the entry of a node that nobody holds any more, unless a
// newer node has taken its place.
func (t *nodeTable) collected(c collectedNode) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nodes[c.ino] == c.wp {
		delete(t.nodes, c.ino)
	}
}

// touchLocked records that n is being returned to the kernel.
func (t *nodeTable) touchLocked(n *gofs.Inode) {
	if t.kernel.Contains(n) {
		t.kernel.Get(n) // most recent now
		return
	}
	t.kernel.Add(n, struct{}{})
	if t.kernel.Len() > maxKernelNodes {
		select {
		case t.prune <- struct{}{}:
		default:
		}
	}
}

// forgotten is called when the kernel forgot n (OnForget): n no longer
// counts against maxKernelNodes, and only go-fuse's hold on it is left.
func (t *nodeTable) forgotten(n *gofs.Inode) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.kernel.Remove(n)
}

// known is the number of nodes the kernel may hold, for tests.
func (t *nodeTable) known() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.kernel.Len()
}

// oldest takes the nodes to hand back off the list: the least recently
// looked up, down to maxKernelNodes - pruneBatch. Nodes that the kernel
// cannot forget (open files) are kept, moved to the front.
func (t *nodeTable) oldest() []*gofs.Inode {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*gofs.Inode
	for skipped := 0; t.kernel.Len() > maxKernelNodes-pruneBatch && skipped < t.kernel.Len(); {
		n, _, _ := t.kernel.GetOldest()
		if b, ok := n.Operations().(interface{ busy() bool }); ok && b.busy() {
			t.kernel.Get(n) // to the front
			skipped++
			continue
		}
		t.kernel.Remove(n)
		out = append(out, n)
	}
	return out
}

// pruneKernelNodes hands back the oldest nodes whenever the table grows
// past maxKernelNodes, until ctx ends. The kernel answers with FORGETs for
// the inodes it can drop (not those in use); go-fuse then lets go of them.
// It runs on its own goroutine: a notification is a write to the FUSE
// device that the kernel may hold up until a request in flight ends.
func (t *nodeTable) pruneKernelNodes(ctx context.Context, root *gofs.Inode) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.prune:
		}
		old := t.oldest()
		if len(old) == 0 {
			continue
		}
		if errno := root.NotifyPrune(old); errno == 0 {
			continue
		} else if errno != syscall.ENOSYS {
			// Pruning is a courtesy the kernel may refuse; the next wave
			// asks again.
			continue
		}
		// Kernels without FUSE_NOTIFY_PRUNE (protocol 7.45) cannot prune:
		// invalidating the entry has the same effect for a name nobody
		// holds.
		for _, n := range old {
			if ctx.Err() != nil {
				return
			}
			if name, parent := n.Parent(); parent != nil {
				parent.NotifyEntry(name)
			}
		}
	}
}
