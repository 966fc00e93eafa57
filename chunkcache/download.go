package chunkcache

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"sync"
	"time"

	"s3docs/internal/object"
	"s3docs/internal/pacer"
)

// downloads are the fetches of entries running now: one per entry (a chunk
// or a piece) however many readers want it, each one ranged GET (the store
// retries it) under one deadline (retry.go), within a limit of GETs in
// flight. A download writes its range in place into its object's file,
// where readers of the flight see it as it grows (flight.go), and commits
// it to the disk. Which entries
// to fetch, and when, is for the readers to say (read.go, pieces.go,
// readahead.go).
type downloads struct {
	geo     geometry
	fetcher Fetcher
	disk    *disk
	full    *fullDisk
	tasks   *tasks
	stats   *counters
	log     *slog.Logger
	timeout time.Duration // Options.ReadTimeout
	onFetch func(bytes int64, d time.Duration, err error)
	// gets bounds GETs in flight: downloads, foreground and readahead,
	// and uncached reads.
	gets *slots

	mu      sync.Mutex
	flights map[string]*flight // by entry id
	failed  map[string]failure // by chunk id: see retry.go
	now     func() time.Time   // the clock of failed's memory
}

// copyBufs keep the per-fetch copy buffer off the heap's growth path: entry
// bytes only pass through one of these on their way to disk.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// join returns the running download of s, starting one if there is none
// (started), or a nil flight if the disk holds s already. The download
// runs on the tasks' context: a caller that gives up (its FUSE request was
// interrupted) stops waiting but does not cancel the download others wait
// for. An entry of a chunk whose download failed moments ago is not tried
// again: join returns that failure (see failedRangeMemory). A download
// started for background work (readahead, a background reader) becomes
// foreground when a foreground caller joins it.
func (d *downloads) join(v object.Version, s span, background bool) (f *flight, started bool, err error) {
	chunk := d.geo.chunkID(v, s.off/d.geo.chunkSize)
	d.mu.Lock()
	if d.tasks.stopping() {
		d.mu.Unlock()
		return nil, false, errClosed
	}
	if running, ok := d.flights[s.id]; ok {
		d.mu.Unlock()
		if !background {
			running.background.Store(false)
		}
		return running, false, nil
	}
	if err := d.recentFailureLocked(chunk, d.now()); err != nil {
		d.mu.Unlock()
		d.log.Debug("range failed moments ago: failing at once", "key", v.Key, "offset", s.off, "err", err)
		return nil, false, err
	}
	// The caller may have missed s just before another download of it
	// ended: downloads commit their entry before they leave flights.
	if d.disk.has(s) {
		d.mu.Unlock()
		return nil, false, nil
	}
	// Not the named result: the goroutine below would capture it by
	// reference, which costs an allocation per download.
	fl := newFlight()
	fl.background.Store(background)
	d.flights[s.id] = fl
	if !d.tasks.add() {
		delete(d.flights, s.id)
		d.mu.Unlock()
		return nil, false, errClosed
	}
	d.mu.Unlock()
	go func() {
		defer d.tasks.done()
		err := d.download(d.tasks.ctx, fl, v, s)
		// Only a failure some reader was told of is remembered: it is
		// the kernel's asking again for that read that the memory
		// answers. A readahead that failed unseen (its reader gone, or
		// not there yet) must not fail the next reader's first try,
		// which may come just as the store is back.
		if err == nil || !fl.background.Load() {
			d.noteFailure(d.tasks.ctx, chunk, err)
		}
		// The entry is admitted (or the download failed) before the
		// flight goes: a caller finds one or the other, never neither.
		d.mu.Lock()
		delete(d.flights, s.id)
		d.mu.Unlock()
		fl.end(err)
	}()
	return fl, true, nil
}

// fetching says whether a download of entry id is running.
func (d *downloads) fetching(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.flights[id]
	return ok
}

// running is how many downloads are running now.
func (d *downloads) running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.flights)
}

// download fetches s under one deadline, ReadTimeout (see retry.go); ctx
// ends when the cache closes. The fetcher retries within the deadline; a
// download is tried again only when the cache directory was lost and made
// again under it (recover.go). Failures are logged at debug level only:
// the read that fails says so, once, where errors become errno values.
func (d *downloads) download(ctx context.Context, f *flight, v object.Version, s span) error {
	dl, cancel := context.WithTimeout(pacer.WithPriority(ctx, f), d.timeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := d.fetchOnce(dl, f, v, s)
		if err == nil {
			return nil
		}
		if isNoSpace(err) {
			d.noteNoSpace(err)
			return fmt.Errorf("fetch %s at %d: %w: %w", v.Key, s.off, errNoSpace, err)
		}
		if lost, retry := d.disk.dirLost(ctx, err); lost {
			if retry && attempt < dirLostAttempts {
				continue
			}
			return fmt.Errorf("fetch %s at %d: %w: %w", v.Key, s.off, errDirLost, err)
		}
		d.log.Debug("chunk fetch failed", "key", v.Key, "offset", s.off, "length", s.n, "err", err)
		if dl.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("fetch %s at %d: no complete answer within %v: %w", v.Key, s.off, d.timeout, err)
		}
		return fmt.Errorf("fetch %s at %d: %w", v.Key, s.off, err)
	}
}

// fetchOnce is one attempt: a GET slot and one GET saved to the disk, within the
// download's deadline.
func (d *downloads) fetchOnce(ctx context.Context, f *flight, v object.Version, s span) error {
	if err := d.gets.acquire(ctx, f); err != nil {
		return err
	}
	defer d.gets.release()
	d.stats.gets.Add(1)
	d.stats.inFlight.Add(1)
	start := time.Now()
	stored, err := d.save(ctx, f, v, s)
	d.stats.inFlight.Add(-1)
	if d.onFetch != nil {
		d.onFetch(stored, time.Since(start), err)
	}
	if err != nil {
		return err
	}
	d.stats.getBytes.Add(s.n)
	return nil
}

// save streams s into its range of the object's file, checks its length,
// and commits it under the checksum of what came. A short body never
// becomes an entry (its bytes are punched out again); readers of the
// flight see its bytes as they land. It returns the bytes stored.
func (d *downloads) save(ctx context.Context, f *flight, v object.Version, s span) (int64, error) {
	body, err := d.fetcher.GetRange(ctx, v, s.off, s.n)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	w, err := d.disk.beginWrite(s)
	if err != nil {
		return 0, err
	}
	f.setFile(w.f, s.off)
	defer func() {
		f.setFile(nil, 0)
		w.close()
	}()
	h := crc32.New(castagnoli)
	buf := copyBufs.Get().(*[]byte)
	got, err := io.CopyBuffer(io.MultiWriter(progressWriter{f, io.NewOffsetWriter(w, s.off)}, h), io.LimitReader(body, s.n+1), *buf)
	copyBufs.Put(buf)
	if err != nil {
		return 0, err
	}
	if got != s.n {
		return 0, fmt.Errorf("got %d bytes for a range of %d: %w", got, s.n, io.ErrUnexpectedEOF)
	}
	// The flight's readers read the file only while the range is the
	// download's: once committed, the entry may be evicted (and punched)
	// at once, and they must read it from the disk, under its lock.
	f.setFile(nil, 0)
	if _, err := w.commit(h.Sum32()); err != nil {
		return 0, err
	}
	return s.n, nil
}
