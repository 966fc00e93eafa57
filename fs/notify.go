package fs

import (
	"context"
	"sync"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// pageDropper asks the kernel to drop the cached pages of inodes whose
// version was found gone. It cannot be done on the goroutine that learns
// it: that one often serves a read whose page the kernel keeps locked until
// the read is answered, and the invalidation waits for that lock. So the
// inodes are queued, and one goroutine, owned by the mount (run, stopped
// with the file system's context), sends the notifications. The queue is a
// set: an inode is queued once however often it is asked for, so it holds
// at most one entry per inode.
type pageDropper struct {
	mu      sync.Mutex
	pending map[*gofs.Inode]struct{}
	wake    chan struct{} // holds at most one wake-up
}

func newPageDropper() *pageDropper {
	return &pageDropper{pending: map[*gofs.Inode]struct{}{}, wake: make(chan struct{}, 1)}
}

// drop queues n.
func (d *pageDropper) drop(n *gofs.Inode) {
	d.mu.Lock()
	d.pending[n] = struct{}{}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run sends the queued notifications until ctx ends.
func (d *pageDropper) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		}
		d.mu.Lock()
		batch := d.pending
		d.pending = map[*gofs.Inode]struct{}{}
		d.mu.Unlock()
		for n := range batch {
			if ctx.Err() != nil {
				return
			}
			// ENOENT (the kernel forgot the inode meanwhile) is fine:
			// it has no pages left to drop.
			n.NotifyContent(0, 0)
		}
	}
}

// dropPages asks the kernel to drop n's cached pages (see pageDropper).
func (f *FS) dropPages(n *gofs.Inode) { f.pages.drop(n) }
