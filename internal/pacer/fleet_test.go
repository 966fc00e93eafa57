package pacer

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// A simulation of a fleet of daemons, each with its own control, reading
// the same cold objects from a store that lets a fixed number of requests
// a second through and throttles the rest: the pacer's arithmetic, in
// virtual time, with the daemon's reader, readahead and retries as
// s3store and chunkcache make them.

type simConfig struct {
	daemons   int
	chunks    int                                          // GETs each daemon needs
	storeRate float64                                      // requests a second the store lets through
	readahead int                                          // chunks fetched ahead of the reader
	backoff   func(throttles int, u float64) time.Duration // u is uniform in [0, 1)
	pacer     Config
	seed      uint64
	trace     bool
}

type simResult struct {
	sent, throttled, needed int
	done                    int // daemons that read every chunk
	wall, ideal             time.Duration
	maxWait                 time.Duration // longest a reader waited for one chunk
}

type simEvent struct {
	at  time.Duration
	seq int
	fn  func()
}

type simQueue []*simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type simReq struct {
	chunk     int // -1: the lookup (HEAD)
	fg        bool
	throttles int
}

type simDaemon struct {
	c        *control
	waiting  []*simReq
	flight   map[*simReq]time.Time
	wakeSeq  int
	wanted   map[int]*simReq // chunk → request (queued, in flight or backing off)
	have     map[int]bool
	next     int // chunk the reader reads next
	reading  bool
	waitFrom time.Duration
	done     time.Duration
}

func simulate(cfg simConfig) simResult {
	rng := rand.New(rand.NewPCG(cfg.seed, 1))
	epoch := time.Unix(1e9, 0)
	var q simQueue
	var now time.Duration
	seq := 0
	at := func(t time.Duration, fn func()) {
		seq++
		heap.Push(&q, &simEvent{at: t, seq: seq, fn: fn})
	}
	// The store: a token bucket of storeRate a second, one second deep.
	tokens, filled := cfg.storeRate, time.Duration(0)
	take := func() bool {
		tokens = min(cfg.storeRate, tokens+cfg.storeRate*(now-filled).Seconds())
		filled = now
		if tokens >= 1 {
			tokens--
			return true
		}
		return false
	}
	var res simResult
	thr := map[int]int{}
	defer func() {
		if cfg.trace {
			for i := 0; i < 60; i++ {
				fmt.Print(thr[i], " ")
			}
			fmt.Println()
		}
	}()
	res.needed = cfg.daemons * cfg.chunks
	res.ideal = time.Duration(float64(res.needed) / cfg.storeRate * float64(time.Second))
	ds := make([]*simDaemon, cfg.daemons)
	var dispatch func(d *simDaemon)
	var want func(d *simDaemon, chunk int, fg bool)
	var read func(d *simDaemon)
	send := func(d *simDaemon, r *simReq) {
		res.sent++
		sentAt := epoch.Add(now)
		d.flight[r] = sentAt
		ok := false
		at(now+500*time.Microsecond, func() { ok = take() })
		at(now+2*time.Millisecond, func() {
			delete(d.flight, r)
			if !ok {
				if cfg.trace {
					thr[int(now.Seconds())]++
				}
				res.throttled++
				d.c.answered(epoch.Add(now), sentAt, true)
				r.throttles++
				at(now+cfg.backoff(r.throttles, rng.Float64()), func() {
					d.waiting = append(d.waiting, r)
					dispatch(d)
				})
				dispatch(d)
				return
			}
			d.c.answered(epoch.Add(now), sentAt, false)
			dispatch(d)
			if r.chunk < 0 {
				read(d)
				return
			}
			// The body: 8 MiB at 400 MB/s.
			at(now+20*time.Millisecond, func() {
				d.have[r.chunk] = true
				read(d)
			})
		})
	}
	dispatch = func(d *simDaemon) {
		d.c.endIfCalm(epoch.Add(now))
		for len(d.waiting) > 0 {
			var flight []time.Time
			for _, t := range d.flight {
				flight = append(flight, t)
			}
			next := d.c.nextAt(epoch.Add(now), flight)
			if next.IsZero() {
				return
			}
			if wait := next.Sub(epoch.Add(now)); wait > 0 {
				d.wakeSeq++
				s := d.wakeSeq
				at(now+wait, func() {
					if d.wakeSeq == s {
						dispatch(d)
					}
				})
				return
			}
			best := 0
			for i, r := range d.waiting {
				if r.fg {
					best = i
					break
				}
			}
			r := d.waiting[best]
			d.waiting = append(d.waiting[:best], d.waiting[best+1:]...)
			d.c.sent(epoch.Add(now))
			send(d, r)
		}
	}
	want = func(d *simDaemon, chunk int, fg bool) {
		if chunk >= cfg.chunks || d.have[chunk] {
			return
		}
		if r, ok := d.wanted[chunk]; ok {
			r.fg = r.fg || fg
			return
		}
		r := &simReq{chunk: chunk, fg: fg}
		d.wanted[chunk] = r
		d.waiting = append(d.waiting, r)
		dispatch(d)
	}
	read = func(d *simDaemon) {
		if d.reading || d.done > 0 {
			return
		}
		if d.next == cfg.chunks {
			d.done = now
			return
		}
		if !d.have[d.next] {
			if d.waitFrom < 0 {
				d.waitFrom = now
			}
			want(d, d.next, true)
			for i := 1; i <= cfg.readahead; i++ {
				want(d, d.next+i, false)
			}
			return
		}
		if d.waitFrom >= 0 {
			res.maxWait = max(res.maxWait, now-d.waitFrom)
			d.waitFrom = -1
		}
		// sha256sum of 8 MiB.
		d.reading = true
		at(now+16*time.Millisecond, func() {
			d.reading = false
			d.next++
			read(d)
		})
	}
	for i := range ds {
		d := &simDaemon{c: newControl(cfg.pacer, rand.New(rand.NewPCG(cfg.seed, uint64(i)))), flight: map[*simReq]time.Time{}, wanted: map[int]*simReq{},
			have: map[int]bool{}, waitFrom: -1}
		ds[i] = d
		start := time.Duration(rng.IntN(50)) * time.Millisecond
		at(start, func() {
			d.waiting = append(d.waiting, &simReq{chunk: -1, fg: true})
			dispatch(d)
		})
	}
	for q.Len() > 0 {
		e := heap.Pop(&q).(*simEvent)
		now = e.at
		e.fn()
		if now > time.Hour {
			panic("simulation runs over an hour")
		}
	}
	for _, d := range ds {
		res.wall = max(res.wall, d.done)
		if d.done > 0 {
			res.done++
		}
	}
	return res
}

// s3Backoff is s3store's throttleBackoff with its defaults.
func s3Backoff(throttles int, u float64) time.Duration {
	d := min(time.Second<<(throttles-1), 8*time.Second)
	return d/2 + time.Duration(u*float64(d/2))
}

// A fleet of daemons that each pace themselves settles near the store's
// rate together: every read completes, with few throttled requests, and
// the store is kept busy. Virtual time: the bounds are the algorithm's,
// not this machine's. The fleets: 8 daemons reading 128 MiB (16
// chunks) through a store of 8 requests a second, 16 reading 64 MiB at 4;
// and a few others. Sent counts every request (the lookup's HEAD, and
// every throttled one); needed is one GET per chunk.
func TestFleetSettles(t *testing.T) {
	for _, tc := range []struct {
		daemons, chunks int
		rate            float64
		maxSent         float64 // sent / needed
		maxWall         float64 // wall / ideal
	}{
		{8, 16, 8, 1.5, 1.25},
		{16, 8, 4, 2.5, 1.4},
		{4, 16, 8, 1.4, 1.5},
		{32, 8, 16, 2, 1.45},
		{1, 64, 8, 1.2, 1.1},
	} {
		t.Run(fmt.Sprintf("%dx%d@%.0f", tc.daemons, tc.chunks, tc.rate), func(t *testing.T) {
			var sent, throttled, needed int
			var wall, ideal time.Duration
			const runs = 20
			for seed := range uint64(runs) {
				r := simulate(simConfig{daemons: tc.daemons, chunks: tc.chunks, storeRate: tc.rate, readahead: 8,
					backoff: s3Backoff, seed: seed})
				if r.done != tc.daemons {
					t.Fatalf("seed %d: %d of %d daemons read everything", seed, r.done, tc.daemons)
				}
				sent += r.sent
				throttled += r.throttled
				needed += r.needed
				wall += r.wall
				ideal += r.ideal
			}
			sentRatio, wallRatio := float64(sent)/float64(needed), float64(wall)/float64(ideal)
			t.Logf("%d runs: sent/needed %.2f (%d throttled of %d), wall/ideal %.2f", runs, sentRatio, throttled, sent, wallRatio)
			if sentRatio > tc.maxSent {
				t.Errorf("sent %.2f× the requests needed, want at most %.2f×", sentRatio, tc.maxSent)
			}
			if wallRatio > tc.maxWall {
				t.Errorf("took %.2f× the ideal time, want at most %.2f×", wallRatio, tc.maxWall)
			}
		})
	}
}
