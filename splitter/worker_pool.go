package splitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the pool itself, beside the document's ErrNotPDF, ErrEncrypted and
// ErrPageRange, which errors.Is also finds in the pool's errors.
var (
	ErrWorkerMemoryLimit = errors.New("split worker killed: memory limit exceeded")
	ErrWorkerTimeout     = errors.New("split worker timed out")
	ErrWorkerCrashed     = errors.New("split worker crashed")
	ErrPoolClosed        = errors.New("split pool closed")
)

// PoolOptions configure a Pool. Zero values take the defaults noted.
type PoolOptions struct {
	Command     []string      // argv of a worker: a process whose body is ServeWorker (itself, not a wrapper that forks it: pipes must close when it is killed)
	Env         []string      // added to os.Environ() for workers
	MemoryLimit int64         // bytes per worker; it is killed past this (default 2 GiB)
	Timeout     time.Duration // per request; the parse and the fetch by Source.Open each count as one (default 2m)
	IdleTimeout time.Duration // a worker with no request for this long exits (default 30s)
	MaxWorkers  int           // workers at once; further documents wait (default 2)
	Logger      *slog.Logger
}

// Source is one version of one PDF.
type Source struct {
	// ID names the object version: one worker per ID, shared by concurrent callers.
	ID   string
	Size int64
	// Open makes the bytes available as files whose concatenation, in order, is
	// the PDF, pinned until release is called. The pool calls it once per worker,
	// under the pool's own context (not a caller's, since callers share it), and
	// releases as soon as the worker has the files open.
	Open func(ctx context.Context) (paths []string, release func(), err error)
}

// Pool runs PDF parsing in worker processes, one per Source, each holding its
// parsed document while requests keep coming, so that one parse serves every
// part of a PDF.
type Pool struct {
	o      PoolOptions
	log    *slog.Logger
	ctx    context.Context // cancelled by Close: ends fetches and kills workers
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per worker's run loop
	stamp  string         // with seq, names cgroups uniquely even with several pools in a process
	seq    atomic.Int64

	memOnce sync.Once
	mem     workerMemory

	mu      sync.Mutex
	closed  bool
	workers map[string]*poolWorker // by Source.ID, until the process is gone
	changed chan struct{}          // closed and replaced when a worker goes idle or away
	waiting int                    // callers waiting for a free slot
}

// NewPool returns a pool; it starts no process until asked.
func NewPool(o PoolOptions) *Pool {
	if o.MemoryLimit <= 0 {
		o.MemoryLimit = 2 << 30
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Second
	}
	if o.MaxWorkers <= 0 {
		o.MaxWorkers = 2
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool{
		o:       o,
		log:     log,
		ctx:     ctx,
		cancel:  cancel,
		stamp:   strconv.FormatInt(time.Now().UnixNano(), 36),
		workers: make(map[string]*poolWorker),
		changed: make(chan struct{}),
	}
}

// Close kills every worker and returns once all processes and goroutines of
// the pool are gone. Calls after Close fail with ErrPoolClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return nil
}

// PageCount returns the number of pages of src, starting a worker (one fetch,
// one parse) unless one holds src already.
func (p *Pool) PageCount(ctx context.Context, src Source) (int, error) {
	if err := p.check(src); err != nil {
		return 0, err
	}
	w, err := p.acquire(ctx, src)
	if err != nil {
		return 0, err
	}
	select {
	case <-w.ready:
		return w.pages, nil
	case <-w.done:
		select {
		case <-w.ready:
			return w.pages, nil
		default:
			return 0, w.err
		}
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Extract writes pages from..thru (1-based, inclusive) of src as a PDF to
// outPath and returns its size. On error nothing is left at outPath; if ctx
// ends while the worker is writing, Extract returns at once and the pool
// removes outPath when the worker is done with it.
func (p *Pool) Extract(ctx context.Context, src Source, from, thru int, outPath string) (int64, error) {
	if err := p.check(src); err != nil {
		return 0, err
	}
	if outPath == "" {
		return 0, errors.New("splitter: Extract: empty output path")
	}
	if from < 1 || thru < from {
		return 0, fmt.Errorf("splitter: %s: %w: pages %d-%d", src.ID, ErrPageRange, from, thru)
	}
	req := workerRequest{Op: workerOpExtract, From: from, Thru: thru, Out: outPath}
	for {
		w, err := p.acquire(ctx, src)
		if err != nil {
			return 0, err
		}
		c := &workerCall{req: req, res: make(chan workerResult, 1)}
		select {
		case w.calls <- c:
			return c.wait(ctx)
		case <-w.done:
			select {
			case <-w.ready:
				// It served others, then went idle, was evicted or crashed on
				// someone else's request: a fresh worker will do.
				continue
			default:
				return 0, w.err
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (p *Pool) check(src Source) error {
	switch {
	case len(p.o.Command) == 0:
		return errors.New("splitter: PoolOptions.Command is empty")
	case src.ID == "":
		return errors.New("splitter: Source.ID is empty")
	case src.Open == nil:
		return fmt.Errorf("splitter: %s: Source.Open is nil", src.ID)
	case src.Size < 0:
		return fmt.Errorf("splitter: %s: negative size %d", src.ID, src.Size)
	}
	return nil
}

// acquire returns the worker for src, starting one if there is a free slot,
// else asking the longest-idle worker to make room and waiting.
func (p *Pool) acquire(ctx context.Context, src Source) (*poolWorker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	counted := false
	defer func() {
		if counted {
			p.waiting--
		}
	}()
	for {
		if p.closed {
			return nil, ErrPoolClosed
		}
		if w := p.workers[src.ID]; w != nil {
			return w, nil
		}
		if len(p.workers) < p.o.MaxWorkers {
			return p.startLocked(src), nil
		}
		if !counted {
			counted = true
			p.waiting++
		}
		p.evictLocked()
		changed := p.changed
		p.mu.Unlock()
		var err error
		select {
		case <-changed:
		case <-p.ctx.Done():
		case <-ctx.Done():
			err = ctx.Err()
		}
		p.mu.Lock()
		if err != nil {
			return nil, err
		}
	}
}

// evictLocked asks one idle worker to exit, unless enough are already going
// for the callers waiting; the oldest idle goes first.
func (p *Pool) evictLocked() {
	going := 0
	var oldest *poolWorker
	for _, w := range p.workers {
		if w.evicting {
			going++
			continue
		}
		if w.idle && (oldest == nil || w.idleSince.Before(oldest.idleSince)) {
			oldest = w
		}
	}
	if oldest != nil && going < p.waiting {
		oldest.evicting = true
		close(oldest.evict)
	}
}

func (p *Pool) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Pool) startLocked(src Source) *poolWorker {
	w := &poolWorker{
		p:     p,
		src:   src,
		calls: make(chan *workerCall),
		ready: make(chan struct{}),
		done:  make(chan struct{}),
		evict: make(chan struct{}),
	}
	p.workers[src.ID] = w
	p.wg.Add(1)
	go w.run()
	return w
}

func (p *Pool) setIdle(w *poolWorker, idle bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w.idle = idle
	if idle {
		w.idleSince = time.Now()
		p.broadcastLocked()
	}
}

// remove frees the slot; only once the process is gone, so that memory is
// back before another worker may take it.
func (p *Pool) remove(w *poolWorker) {
	p.mu.Lock()
	if p.workers[w.src.ID] == w {
		delete(p.workers, w.src.ID)
	}
	p.broadcastLocked()
	p.mu.Unlock()
	close(w.done)
}

// poolWorker is the parent's side of one worker process; its run loop is the
// only goroutine that talks to the process.
type poolWorker struct {
	p     *Pool
	src   Source
	calls chan *workerCall
	ready chan struct{} // closed once parsed; pages is set before
	done  chan struct{} // closed once the process is gone; err is set before
	evict chan struct{} // closed, under p.mu, to ask an idle worker to exit
	pages int
	err   error // why it ended before ready

	// guarded by p.mu
	idle      bool
	idleSince time.Time
	evicting  bool
}

type workerResult struct {
	size int64
	err  error
}

const (
	callPending int32 = iota
	callAnswered
	callAbandoned
)

// workerCall is one Extract request; the caller may abandon it (its ctx
// ended) at any time, and exactly one of caller and run loop wins the state.
type workerCall struct {
	req   workerRequest
	res   chan workerResult // buffered: the run loop never blocks on it
	state atomic.Int32
}

func (c *workerCall) wait(ctx context.Context) (int64, error) {
	select {
	case r := <-c.res:
		return r.size, r.err
	case <-ctx.Done():
		if c.state.CompareAndSwap(callPending, callAbandoned) {
			return 0, ctx.Err()
		}
		r := <-c.res
		return r.size, r.err
	}
}

// answer delivers r, or cleans up after a caller that has gone: nobody will
// collect its part.
func (c *workerCall) answer(r workerResult) {
	if r.err != nil {
		os.Remove(c.req.Out)
	}
	if c.state.CompareAndSwap(callPending, callAnswered) {
		c.res <- r
	} else if r.err == nil {
		os.Remove(c.req.Out)
	}
}

func (w *poolWorker) run() {
	p := w.p
	defer p.wg.Done()
	pr, err := w.start()
	if err != nil {
		w.err = fmt.Errorf("splitter: %s: %w", w.src.ID, err)
		p.remove(w)
		return
	}
	close(w.ready)
	w.serve(pr)
	p.remove(w)
}

// start fetches the source, starts the process and waits for the parse. On
// error the process is gone.
func (w *poolWorker) start() (*workerProc, error) {
	p := w.p
	fctx, cancel := context.WithTimeout(p.ctx, p.o.Timeout)
	paths, release, err := w.src.Open(fctx)
	cancel()
	if err != nil {
		if p.ctx.Err() != nil {
			return nil, ErrPoolClosed
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: fetching the source took over %v: %w", ErrWorkerTimeout, p.o.Timeout, err)
		}
		return nil, fmt.Errorf("fetching the source: %w", err)
	}
	var releaseOnce sync.Once
	unpin := func() {
		if release != nil {
			releaseOnce.Do(release)
		}
	}
	defer unpin()
	if p.ctx.Err() != nil {
		return nil, ErrPoolClosed
	}

	pr, err := p.spawn(w.src.ID)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	timer := time.AfterFunc(p.o.Timeout, func() {
		pr.kill(workerKilledTimeout, fmt.Sprintf("after %v parsing", p.o.Timeout))
	})
	defer timer.Stop()
	if err := pr.send(workerRequest{Op: workerOpOpen, Paths: paths, Size: w.src.Size}); err != nil {
		return nil, pr.end(false, "")
	}
	r, err := pr.receive(workerOpOpened)
	if err != nil {
		return nil, pr.end(false, err.Error())
	}
	unpin()
	if r.Err != "" {
		err := r.error()
		return nil, workerFirst(pr.end(true, "opening the source files failed: "+r.Err), err)
	}
	r, err = pr.receive(workerOpParsed)
	if err != nil {
		return nil, pr.end(false, err.Error())
	}
	if r.Err != "" {
		err := r.error()
		if r.Kind == workerKindPanic {
			// The worker exits by itself after a panic, with a status worth
			// reporting.
			return nil, pr.end(true, r.Err)
		}
		return nil, workerFirst(pr.end(true, "parse failed: "+r.Err), err)
	}
	w.pages = r.Pages
	p.log.Debug("split worker parsed", "id", w.src.ID, "pid", pr.pid, "pages", r.Pages,
		"seconds", time.Since(began).Seconds())
	return pr, nil
}

// workerFirst prefers how the process died (killed for memory, say) over what
// it said before dying.
func workerFirst(death, said error) error {
	if death != nil {
		return death
	}
	return said
}

// serve answers calls until the worker should go, then ends the process.
func (w *poolWorker) serve(pr *workerProc) {
	p := w.p
	idle := time.NewTimer(p.o.IdleTimeout)
	defer idle.Stop()
	for {
		var c *workerCall
		select {
		case c = <-w.calls:
			// Queued callers go before an eviction.
		default:
			p.setIdle(w, true)
			select {
			case c = <-w.calls:
			case <-idle.C:
				pr.end(true, "idle")
				return
			case <-w.evict:
				pr.end(true, "evicted to make room")
				return
			case <-p.ctx.Done():
				pr.end(false, "pool closed")
				return
			case r, ok := <-pr.resps:
				if ok {
					pr.end(false, fmt.Sprintf("protocol: unasked response %q", r.Op))
				} else {
					pr.end(false, "")
				}
				return
			}
			p.setIdle(w, false)
		}
		if !w.call(pr, c) {
			return
		}
		idle.Reset(p.o.IdleTimeout)
	}
}

// call runs one request; false means the process is gone.
func (w *poolWorker) call(pr *workerProc, c *workerCall) bool {
	if c.state.Load() == callAbandoned {
		return true
	}
	timeout := w.p.o.Timeout
	timer := time.AfterFunc(timeout, func() {
		pr.kill(workerKilledTimeout, fmt.Sprintf("after %v extracting pages %d-%d", timeout, c.req.From, c.req.Thru))
	})
	defer timer.Stop()
	wrap := func(err error) error { return fmt.Errorf("splitter: %s: %w", w.src.ID, err) }
	if err := pr.send(c.req); err != nil {
		c.answer(workerResult{err: wrap(pr.end(false, ""))})
		return false
	}
	r, err := pr.receive(c.req.Op)
	if err != nil {
		c.answer(workerResult{err: wrap(pr.end(false, err.Error()))})
		return false
	}
	if r.Kind == workerKindPanic {
		c.answer(workerResult{err: wrap(workerFirst(pr.end(true, r.Err), r.error()))})
		return false
	}
	if r.Err != "" {
		c.answer(workerResult{err: wrap(r.error())})
		return true
	}
	c.answer(workerResult{size: r.Size})
	return true
}

// error rebuilds the worker's error on this side of the process boundary.
func (r workerResponse) error() error {
	var sentinel error
	switch r.Kind {
	case workerKindNotPDF:
		sentinel = ErrNotPDF
	case workerKindEncrypted:
		sentinel = ErrEncrypted
	case workerKindPageRange:
		sentinel = ErrPageRange
	case workerKindPanic:
		sentinel = ErrWorkerCrashed
	case workerKindIO:
		// The worker's own files failed (a full disk): try again later.
		return errors.New(r.Err)
	}
	// Without a kind it is still the document's fault (a parse error).
	return &workerDocError{sentinel: sentinel, msg: r.Err}
}

// workerDocError keeps the worker's message and matches the sentinel it was
// made from.
type workerDocError struct {
	sentinel error
	msg      string
}

func (e *workerDocError) Error() string { return e.msg }
func (e *workerDocError) Unwrap() error { return e.sentinel }
