package pacer

import (
	"math"
	"math/rand/v2"
	"time"
)

// Config is the pacer's arithmetic. The zero value of a field takes its
// default; the defaults are what the daemon uses.
type Config struct {
	// InitialWindow is how many requests may wait for their answers at
	// once when nothing is known of the store: at start, after IdleAfter
	// without requests, and after a throttling episode. Each answer widens
	// it by one, so it doubles every round trip and stops mattering past
	// MaxWindow. It keeps a fleet that starts at once from sending a
	// burst into a store that throttles: every daemon learns the store's
	// answer with its first requests, not with its first sixteen.
	InitialWindow int
	// MaxWindow: a window this wide no longer limits anything.
	MaxWindow int
	// StaleAfter: a request without an answer for this long no longer
	// counts in the window (a server that holds one request must not
	// hold every other one back).
	StaleAfter time.Duration
	// IdleAfter: with nothing in flight for this long, the window starts
	// again from InitialWindow.
	IdleAfter time.Duration
	// Decrease is what a throttled answer multiplies the allowed rate by,
	// once per round: answers to requests sent before the last decrease
	// carry no news and do not decrease it again.
	Decrease float64
	// Growth shapes how the allowed rate comes back after a decrease, as
	// a cubic of the time since (CUBIC's, relative to the rate cut): fast
	// at first, flat around the rate it was cut from (reached after
	// cbrt((1-Decrease)/Growth) seconds), then faster and faster beyond.
	Growth float64
	// MaxStep bounds the growth of the allowed rate from one request to
	// the next: MaxStep times after a cut, MaxStep² after one answer that
	// was not throttled, MaxStep³ after two... A daemon that sends a
	// request every few seconds (one of many sharing a slow store) learns
	// of the store that seldom, and must not grow as if it learnt every
	// second; one whose requests keep getting through soon may.
	MaxStep float64
	// MinRate is the lowest allowed rate, requests per second.
	MinRate float64
	// Calm ends a throttling episode: once no answer was throttled for
	// this long, requests are not paced any more.
	Calm time.Duration
	// Measure is the span over which answers are counted when throttling
	// starts: the rate the store let through lately, times Decrease, is
	// where pacing starts (one request per Measure if nothing came back).
	Measure time.Duration
}

// Defaults. Their reasons:
//   - InitialWindow 1: the first request of an idle daemon learns whether
//     the store throttles before a second one is sent; answers come in
//     milliseconds, so a cold read of a healthy store has 16 requests in
//     flight after four or five round trips.
//   - Throttling starts at the rate of answers of the last second (at
//     least one): what the store let through, the rest being throttled.
//   - Decrease 0.5 and Growth 0.03: a daemon cut back regains its rate in
//     2.6 s (times a random stretch between 0.5 and 1.5, so that daemons
//     cut together do not come back together) and doubles it 3.2 s later
//     if nothing is throttled. Faster growth keeps the store busier and
//     is throttled more often, slower the reverse.
//   - MaxStep 1.25: one request at most 25% faster than the one before,
//     56% after an answer that came through, 95% after two... Without it,
//     16 daemons sharing 4 requests a second (0.25/s each) grew back
//     faster than they learnt, and were throttled on half their requests;
//     with a fixed step, a daemon left alone at a low rate (the others
//     done) crept back for many seconds while the store was idle.
//   - MinRate 0.1/s: 16 daemons at a store that lets 4 requests a second
//     through get 0.25/s each, above the floor.
//   - Calm 20 s: far longer than a daemon at the store's limit goes
//     without a throttled answer.
//
// These were chosen on real mounts (TestFleetUnderThrottling;
// docs/performance.md) and fleet_test.go's simulation, which holds them.
const (
	defaultInitialWindow = 1
	defaultMaxWindow     = 64
	defaultStaleAfter    = time.Second
	defaultIdleAfter     = time.Second
	defaultDecrease      = 0.5
	defaultGrowth        = 0.03
	defaultMaxStep       = 1.25
	defaultMinRate       = 0.1
	defaultCalm          = 20 * time.Second
	defaultMeasure       = time.Second
)

func (c Config) withDefaults() Config {
	if c.InitialWindow <= 0 {
		c.InitialWindow = defaultInitialWindow
	}
	if c.MaxWindow <= 0 {
		c.MaxWindow = defaultMaxWindow
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = defaultStaleAfter
	}
	if c.IdleAfter <= 0 {
		c.IdleAfter = defaultIdleAfter
	}
	if c.Decrease <= 0 || c.Decrease >= 1 {
		c.Decrease = defaultDecrease
	}
	if c.Growth <= 0 {
		c.Growth = defaultGrowth
	}
	if c.MaxStep <= 1 {
		c.MaxStep = defaultMaxStep
	}
	if c.MinRate <= 0 {
		c.MinRate = defaultMinRate
	}
	if c.Calm <= 0 {
		c.Calm = defaultCalm
	}
	if c.Measure <= 0 {
		c.Measure = defaultMeasure
	}
	return c
}

// control is the pacer's state and arithmetic, apart from waiting: every
// method takes the time, so that a simulation can drive it (fleet_test.go).
// Unthrottled, requests go at once within the window; throttled, they are
// spaced by the allowed rate, which is cut on throttled answers (once per
// round: multiplicative decrease) and grows back while none come (a cubic
// of the time since the cut, as TCP CUBIC and the AWS SDK's adaptive mode
// grow theirs).
type control struct {
	cfg Config

	// Unthrottled.
	window   int
	lastBusy time.Time // last time a request was sent or in flight

	// Throttled: the allowed rate follows a cubic of the time since the
	// last cut, back to wMax (the rate cut) after k seconds, then beyond.
	limited bool
	wMax    float64
	cutAt   time.Time
	stretch float64 // of the cubic's time, drawn at each cut
	rng     *rand.Rand
	// stepFrom is the allowed rate when the last request was sent: the
	// next may go at most MaxStep^(streak+1) times faster, streak being
	// the answers since the last cut that were not throttled.
	stepFrom      float64
	streak        int
	k             float64   // seconds from the cut back to wMax, before the stretch
	lastSent      time.Time // pacing: the next request goes 1/rate after it
	lastCut       time.Time // requests sent before it bring no news
	lastThrottled time.Time

	// answers holds the times of the last answers, for the rate the store
	// let through lately.
	answers [64]time.Time
	nAnswer int

	ep episode
}

// episode counts one spell of throttling, for its log lines.
type episode struct {
	start     time.Time
	throttled int
	answered  int
	sent      int
	lowest    float64
}

func newControl(cfg Config, rng *rand.Rand) *control {
	cfg = cfg.withDefaults()
	return &control{cfg: cfg, window: cfg.InitialWindow, rng: rng, stretch: 1}
}

// rate is the allowed rate now, +Inf when unthrottled.
func (c *control) rate(now time.Time) float64 {
	if !c.limited {
		return math.Inf(1)
	}
	t := now.Sub(c.cutAt).Seconds()/c.stretch - c.k
	r := max(c.cfg.MinRate, c.wMax*(1+c.cfg.Growth*t*t*t))
	if c.stepFrom > 0 {
		r = min(r, c.stepFrom*math.Pow(c.cfg.MaxStep, float64(min(c.streak, 30)+1)))
	}
	return r
}

// nextAt says when the next request may be sent, given the times the
// requests in flight were sent: now, a later time, or the zero time when
// only an answer can free the window.
func (c *control) nextAt(now time.Time, flight []time.Time) time.Time {
	if c.limited {
		if c.lastSent.IsZero() {
			return now
		}
		at := c.lastSent.Add(time.Duration(float64(time.Second) / c.rate(now)))
		if at.Before(now) {
			return now
		}
		return at
	}
	if c.window >= c.cfg.MaxWindow {
		return now
	}
	if len(flight) == 0 && now.Sub(c.lastBusy) >= c.cfg.IdleAfter {
		c.window = c.cfg.InitialWindow
	}
	busy, oldest := 0, time.Time{}
	for _, t := range flight {
		if now.Sub(t) < c.cfg.StaleAfter {
			busy++
			if oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
		}
	}
	if busy < c.window {
		return now
	}
	// The oldest request leaves the window when it goes stale.
	return oldest.Add(c.cfg.StaleAfter)
}

// sent records a request sent now.
func (c *control) sent(now time.Time) {
	c.lastSent, c.lastBusy = now, now
	if c.limited {
		c.stepFrom = c.rate(now)
		c.ep.sent++
	}
}

// answered records the answer to a request sent at sentAt. It reports
// whether this answer started a throttling episode.
func (c *control) answered(now, sentAt time.Time, throttled bool) (started bool) {
	c.lastBusy = now
	if !throttled {
		c.answers[c.nAnswer%len(c.answers)] = now
		c.nAnswer++
		if c.limited {
			c.ep.answered++
			if !sentAt.Before(c.lastCut) {
				c.streak++
			}
		} else if c.window < c.cfg.MaxWindow {
			c.window++
		}
		return false
	}
	c.lastThrottled = now
	if !c.limited {
		c.limited = true
		c.start(now, c.recentRate(now))
		c.ep = episode{start: now, throttled: 1, lowest: c.rate(now)}
		return true
	}
	c.ep.throttled++
	if sentAt.Before(c.lastCut) {
		return false // sent before the last cut: no news
	}
	r := c.rate(now)
	c.cut(now, r, r < c.wMax)
	c.ep.lowest = min(c.ep.lowest, c.rate(now))
	return false
}

// start paces requests at r, the rate the store let through lately: what
// came on top of that was throttled.
func (c *control) start(now time.Time, r float64) {
	c.wMax = max(c.cfg.MinRate, r)
	c.cutAt, c.lastCut, c.k, c.stretch = now, now, 0, 1
	c.stepFrom, c.streak = c.wMax, 0
}

// cut narrows the allowed rate from r, throttled now. Below the rate cut
// last time, the store gives less than it did (another daemon started):
// the rate aimed at is lowered further, to make room sooner.
func (c *control) cut(now time.Time, r float64, shrinking bool) {
	c.wMax = max(c.cfg.MinRate, r)
	if shrinking {
		c.wMax = max(c.cfg.MinRate, r*(1+c.cfg.Decrease)/2)
	}
	c.cutAt, c.lastCut = now, now
	// wMax·(1 + Growth·(0-k)³) = Decrease·r
	c.k = math.Cbrt((1 - c.cfg.Decrease*r/c.wMax) / c.cfg.Growth)
	// Daemons cut at the same moment (a fleet that started together,
	// one burst of throttling) would grow back in step and be throttled
	// together again, in waves: each takes its own time, between half
	// and one and a half times the cubic's.
	c.stretch = 0.5 + c.rng.Float64()
	// The first request after the cut goes at the cubic's rate, and steps
	// from there.
	c.stepFrom, c.streak = 0, 0
	c.stepFrom = c.rate(now)
}

// recentRate is the rate of answers over the last Measure: what the store
// let through lately.
func (c *control) recentRate(now time.Time) float64 {
	n := min(c.nAnswer, len(c.answers))
	count := 0
	var oldest time.Time
	for i := range n {
		t := c.answers[(c.nAnswer-1-i)%len(c.answers)]
		if now.Sub(t) > c.cfg.Measure {
			break
		}
		count++
		oldest = t
	}
	if count == 0 {
		// Throttled before anything came back: nothing is known of the
		// store's rate; one request per Measure is where to start.
		count = 1
	}
	if count == len(c.answers) {
		// All the ring holds came within Measure: a rate above what it
		// can count.
		return float64(count) / max(now.Sub(oldest).Seconds(), 1e-3)
	}
	return float64(count) / c.cfg.Measure.Seconds()
}

// calmAt is when the current episode ends if nothing else is throttled;
// the zero time when unthrottled.
func (c *control) calmAt() time.Time {
	if !c.limited {
		return time.Time{}
	}
	return c.lastThrottled.Add(c.cfg.Calm)
}

// endIfCalm ends the episode if it is calm by now, and returns it.
func (c *control) endIfCalm(now time.Time) (ended bool, ep episode) {
	if !c.limited || now.Before(c.calmAt()) {
		return false, episode{}
	}
	c.limited = false
	c.window = c.cfg.InitialWindow
	return true, c.ep
}
