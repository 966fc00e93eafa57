package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the pool, wrapped in an *Error whose Outcome says whose fault
// they are.
var (
	ErrMemoryLimit = errors.New("split worker killed: memory limit exceeded")
	ErrTimeout     = errors.New("split worker timed out")
	ErrCrashed     = errors.New("split worker crashed")
	ErrProtocol    = errors.New("split worker broke the protocol")
	ErrPoolClosed  = errors.New("split pool closed")
)

// DocError is a failure the worker reported for its document.
type DocError struct {
	Kind string // ServeOptions.Classify's name for it, or KindPanic
	Msg  string
}

func (e *DocError) Error() string { return e.Msg }

// Options configure a Pool. The caller supplies every limit (mountopts
// holds the defaults); NewPool refuses zero values.
type Options struct {
	// Command is the argv of a worker: a process whose body is Main (itself,
	// not a wrapper that forks it: pipes must close when it is killed).
	Command []string
	// Env is added to the workers' environment, which holds nothing else
	// but what the pool sets (GOMEMLIMIT, GODEBUG): not the daemon's.
	Env         []string
	MemoryLimit int64         // bytes per worker; it is killed past this
	Timeout     time.Duration // per request, the open (parse) included, reads of the source too
	IdleTimeout time.Duration // a worker with no request for this long exits
	MaxWorkers  int           // workers at once; further documents wait
	// UID and GID are the user a worker runs as when the daemon is root;
	// 0 and 0 keep root (still without capabilities).
	UID, GID int
	Logger   *slog.Logger
}

// SourceReader reads a document's bytes for a worker.
type SourceReader interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
}

// Prefetcher is a SourceReader that can fetch, at once, what the reads a
// worker announces will need: reads of n bytes at each of offs.
type Prefetcher interface {
	Prefetch(ctx context.Context, offs []int64, n int) error
}

// Source is one version of one document.
type Source struct {
	// ID names the version: one worker per ID, shared by concurrent callers.
	ID     string
	Size   int64
	Reader SourceReader
}

// Pool runs document parsing in worker processes, one per Source, each
// holding its opened document while requests keep coming, so that one parse
// serves every part of a document.
type Pool struct {
	o      Options
	log    *slog.Logger
	ctx    context.Context // cancelled by Close: ends reads and kills workers
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per worker's run loop
	stamp  string         // with seq, names cgroups uniquely even with several pools in a process
	seq    atomic.Int64

	memOnce sync.Once
	mem     memoryEnforcement

	mu      sync.Mutex
	closed  bool
	workers map[string]*poolWorker // by Source.ID, until the process is gone
	changed chan struct{}          // closed and replaced when a worker goes idle or away
	waiting int                    // callers waiting for a free slot
}

// NewPool returns a pool; it starts no process until asked.
func NewPool(o Options) (*Pool, error) {
	switch {
	case len(o.Command) == 0:
		return nil, errors.New("worker: Options.Command is empty")
	case o.MemoryLimit <= 0, o.Timeout <= 0, o.IdleTimeout <= 0, o.MaxWorkers <= 0:
		return nil, fmt.Errorf("worker: Options need a memory limit, timeouts and a worker count (got %d, %v, %v, %d)",
			o.MemoryLimit, o.Timeout, o.IdleTimeout, o.MaxWorkers)
	case o.UID < 0 || o.GID < 0:
		return nil, fmt.Errorf("worker: negative uid or gid %d:%d", o.UID, o.GID)
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
	}, nil
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

// PageCount returns the number of pages of src, starting a worker (one open)
// unless one holds src already.
func (p *Pool) PageCount(ctx context.Context, src Source) (int, error) {
	if err := checkSource(src); err != nil {
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

// Extract writes pages from..thru (1-based, inclusive) of src to out and
// returns how many bytes it wrote. On error, out may hold part of a part. If
// ctx ends first, Extract returns at once and nothing more is written to
// out.
func (p *Pool) Extract(ctx context.Context, src Source, from, thru int, out io.Writer) (int64, error) {
	if err := checkSource(src); err != nil {
		return 0, err
	}
	if out == nil {
		return 0, errors.New("worker: Extract: nil writer")
	}
	if from < 1 || thru < from {
		return 0, fmt.Errorf("worker: %s: bad page range %d-%d", src.ID, from, thru)
	}
	for {
		w, err := p.acquire(ctx, src)
		if err != nil {
			return 0, err
		}
		c := &call{from: from, thru: thru, out: out, res: make(chan result, 1)}
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

func checkSource(src Source) error {
	switch {
	case src.ID == "":
		return errors.New("worker: Source.ID is empty")
	case src.Reader == nil:
		return fmt.Errorf("worker: %s: Source.Reader is nil", src.ID)
	case src.Size < 0:
		return fmt.Errorf("worker: %s: negative size %d", src.ID, src.Size)
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
			return nil, errClosed()
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
		calls: make(chan *call),
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
	calls chan *call
	ready chan struct{} // closed once opened; pages is set before
	done  chan struct{} // closed once the process is gone; err is set before
	evict chan struct{} // closed, under p.mu, to ask an idle worker to exit
	pages int
	err   error // why it ended before ready

	// guarded by p.mu
	idle      bool
	idleSince time.Time
	evicting  bool
}

type result struct {
	size int64
	err  error
}

// call is one Extract request; its caller may give up at any time, after
// which nothing more is written to out.
type call struct {
	from, thru int
	res        chan result // buffered: the run loop never blocks on it

	mu       sync.Mutex
	out      io.Writer // nil once the caller gave up
	n        int64
	writeErr error // out failed (a full disk): not the document's fault
}

func (c *call) wait(ctx context.Context) (int64, error) {
	select {
	case r := <-c.res:
		return r.size, r.err
	case <-ctx.Done():
		c.mu.Lock()
		c.out = nil
		c.mu.Unlock()
		return 0, ctx.Err()
	}
}

func (c *call) abandoned() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out == nil
}

// write passes a piece of the part on to the caller, unless it has gone or
// its writer failed before.
func (c *call) write(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out == nil || c.writeErr != nil {
		return
	}
	n, err := c.out.Write(p)
	c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	c.writeErr = err
}

func (c *call) answer(r result) { c.res <- r }

// ending is how a worker's session ended: whether to let the process exit
// or kill it, and who waits for the story of its end.
type ending struct {
	graceful bool
	note     string // what the pool knows ("idle", a panic message)
	said     error  // what the worker reported before it ended, if anything
	opening  bool   // the open (parse) was in flight: w.err gets the story
	call     *call  // the request in flight, answered with the story
	source   error  // a read of the source failed during the request
	starting bool   // the worker never got as far as its document
}

func (w *poolWorker) run() {
	p := w.p
	defer p.wg.Done()
	defer p.remove(w)
	if p.ctx.Err() != nil {
		w.err = errClosed()
		return
	}
	pr, err := p.spawn(w.src)
	if err != nil {
		w.err = w.fail(NotStarted, fmt.Errorf("starting split worker: %w", err))
		return
	}
	end := w.session(pr)
	e := pr.stop(end.graceful)
	story := e.story(end.note, end.said)
	pr.logEnd(e, end.note, story)
	err = w.endError(classify(end, e), end, e, story)
	if end.opening {
		w.err = err
	}
	if end.call != nil {
		end.call.answer(result{err: err})
	}
}

// endError is the error of a worker's end, with its outcome, for whoever
// waits on it; story is what the process's end says.
func (w *poolWorker) endError(o Outcome, end ending, e exit, story error) error {
	switch o {
	case None:
		return nil
	case Closed:
		return errClosed()
	case NotStarted:
		return w.fail(o, fmt.Errorf("starting split worker: %w", firstErr(story, end.said)))
	case SourceFailed:
		cause := end.source
		if e.killed == killedSourceTimeout {
			cause = story
		}
		return w.fail(o, fmt.Errorf("reading the source: %w", cause))
	}
	switch {
	case story != nil:
		return w.fail(o, story)
	case end.said != nil:
		return w.fail(o, end.said)
	}
	// It went when asked, yet someone still waited for an answer.
	return w.fail(o, fmt.Errorf("%w: exited without an answer", ErrCrashed))
}

// fail is the error of an outcome for w's source; what the worker said,
// if err holds it, gives its kind.
func (w *poolWorker) fail(o Outcome, err error) error {
	return &Error{Outcome: o, Kind: saidKind(err), Err: fmt.Errorf("%s: %w", w.src.ID, err)}
}

func errClosed() error { return &Error{Outcome: Closed, Err: ErrPoolClosed} }

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return errors.New("no reason given")
}

// session drives the worker from its start until it must go: the open, then
// requests until it is idle too long, evicted, closed, or fails.
func (w *poolWorker) session(pr *proc) ending {
	p := w.p
	began := time.Now()
	// Starting (two executions of the binary, see confine) is no work on
	// the document: it has a bound of its own, and the split timeout
	// starts with the open.
	_, started := pr.deadline(startTimeout, "starting")
	err := pr.hello()
	started()
	if killed, _ := pr.killReason(); err != nil || killed != "" {
		note := "started too slowly"
		if err != nil {
			note = err.Error()
		}
		return ending{note: note, opening: true, starting: true}
	}
	pr.sourceErr = nil
	ctx, done := pr.deadline(p.o.Timeout, "opening the document")
	if err := writeJSON(pr.stdin, frameOpen, openMsg{Size: w.src.Size}); err != nil {
		done()
		return ending{note: "", opening: true}
	}
	typ, payload, err := pr.exchange(ctx, nil)
	done()
	if err != nil {
		return ending{note: err.Error(), opening: true, source: pr.sourceErr}
	}
	if killed, _ := pr.killReason(); killed != "" {
		// Its time ran out as it answered: the kill stands.
		return ending{opening: true, source: pr.sourceErr}
	}
	switch typ {
	case frameError:
		said := pr.docError(payload)
		return ending{graceful: true, note: "open failed: " + said.Error(), said: said, opening: true, source: pr.sourceErr}
	case frameParsed:
		var m parsedMsg
		if err := decodeJSON(typ, payload, &m); err != nil || m.Pages < 0 {
			pr.kill(killedProtocol, fmt.Sprintf("bad page count %q", payload))
			return ending{opening: true}
		}
		w.pages = m.Pages
	default:
		pr.kill(killedProtocol, fmt.Sprintf("frame %q in answer to the open", typ))
		return ending{opening: true}
	}
	p.log.Debug("split worker parsed", "id", w.src.ID, "pid", pr.pid, "pages", w.pages,
		"source_bytes", pr.sourceBytes, "seconds", time.Since(began).Seconds())
	close(w.ready)

	idle := time.NewTimer(p.o.IdleTimeout)
	defer idle.Stop()
	for {
		var c *call
		select {
		case c = <-w.calls:
			// Queued callers go before an eviction.
		default:
			p.setIdle(w, true)
			select {
			case c = <-w.calls:
			case <-idle.C:
				return ending{graceful: true, note: "idle"}
			case <-w.evict:
				return ending{graceful: true, note: "evicted to make room"}
			case <-p.ctx.Done():
				return ending{note: "pool closed"}
			case <-pr.exited:
				return ending{note: "exited while idle"}
			}
			p.setIdle(w, false)
		}
		if end, ok := w.serve(pr, c); !ok {
			return end
		}
		idle.Reset(p.o.IdleTimeout)
	}
}

// serve runs one request; false means the worker must go.
func (w *poolWorker) serve(pr *proc, c *call) (ending, bool) {
	if c.abandoned() {
		return ending{}, true
	}
	pr.sourceErr = nil
	ctx, done := pr.deadline(w.p.o.Timeout, fmt.Sprintf("extracting pages %d-%d", c.from, c.thru))
	defer done()
	if err := writeJSON(pr.stdin, frameExtract, extractMsg{From: c.from, Thru: c.thru}); err != nil {
		return ending{call: c}, false
	}
	typ, payload, err := pr.exchange(ctx, c)
	done()
	if err != nil {
		return ending{note: err.Error(), call: c, source: pr.sourceErr}, false
	}
	if killed, _ := pr.killReason(); killed != "" {
		return ending{call: c, source: pr.sourceErr}, false
	}
	switch typ {
	case frameDone:
		var m doneMsg
		if err := decodeJSON(typ, payload, &m); err != nil || m.Size != c.n {
			pr.kill(killedProtocol, fmt.Sprintf("part of %d bytes, said %q", c.n, payload))
			return ending{call: c}, false
		}
		if pr.sourceErr != nil {
			// Whatever the worker made of a failed read, it is not to be
			// trusted: start afresh next time.
			c.answer(result{err: w.fail(SourceFailed, fmt.Errorf("reading the source: %w", pr.sourceErr))})
			return ending{graceful: true, note: "a read of the source failed"}, false
		}
		c.mu.Lock()
		werr := c.writeErr
		c.mu.Unlock()
		if werr != nil {
			c.answer(result{err: w.fail(WriteFailed, fmt.Errorf("writing the part: %w", werr))})
			return ending{}, true
		}
		c.answer(result{size: m.Size})
		return ending{}, true
	case frameError:
		said := pr.docError(payload)
		var de *DocError
		if !errors.As(said, &de) {
			return ending{call: c}, false // it broke the protocol
		}
		if de.Kind == KindPanic {
			// The worker exits by itself after a panic, with a status
			// worth reporting.
			return ending{graceful: true, note: said.Error(), said: said, call: c, source: pr.sourceErr}, false
		}
		if pr.sourceErr != nil {
			c.answer(result{err: w.fail(SourceFailed, fmt.Errorf("reading the source: %w", pr.sourceErr))})
			return ending{graceful: true, note: "a read of the source failed"}, false
		}
		c.answer(result{err: w.fail(Refused, said)})
		return ending{}, true
	}
	pr.kill(killedProtocol, fmt.Sprintf("frame %q in answer to an extract", typ))
	return ending{call: c}, false
}

// startTimeout bounds a worker's start, up to its hello.
const startTimeout = 30 * time.Second

// maxPart bounds the part a worker may send for a source of size bytes:
// parts hold a subset of the source's objects, written out again (objects
// from compressed object streams uncompressed), so this is generous; it
// only stops a compromised worker from filling the cache's disk.
func maxPart(size int64) int64 { return 4*size + 64<<20 }
