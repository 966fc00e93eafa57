package chunkcache

import (
	"context"
	"errors"
	"sync"
)

var errClosed = errors.New("chunk cache closed")

// tasks owns the cache's goroutines: downloads, readahead and the directory
// watcher. Each runs on one context, which stop cancels before it waits for
// them all; none starts once stop has begun.
type tasks struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	stopped bool
}

func newTasks() *tasks {
	t := &tasks{}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t
}

// add counts a task that is about to start, unless stop has begun; it
// reports whether it did. The task runs on t.ctx and calls done when it
// ends. (Callers start the goroutine themselves: one closure per download,
// not two.)
func (t *tasks) add() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.wg.Add(1)
	return true
}

// done ends a task that add counted.
func (t *tasks) done() { t.wg.Done() }

// stopping says whether stop has begun.
func (t *tasks) stopping() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopped
}

// stop cancels every task and waits for them.
func (t *tasks) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
}
