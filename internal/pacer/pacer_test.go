package pacer

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

var epoch = time.Unix(1e9, 0)

func at(ms int) time.Time { return epoch.Add(time.Duration(ms) * time.Millisecond) }

// Unthrottled, the window opens by one with each answer: one request, then
// two, then four...; a request without an answer for StaleAfter leaves it;
// after IdleAfter without requests it starts again from one.
func TestWindow(t *testing.T) {
	c := newControl(Config{}, rand.New(rand.NewPCG(1, 2)))
	if got := c.nextAt(at(0), nil); !got.Equal(at(0)) {
		t.Fatalf("first request waits until %v", got)
	}
	c.sent(at(0))
	if got := c.nextAt(at(1), []time.Time{at(0)}); !got.Equal(at(1000)) {
		t.Fatalf("second request before the first answer: %v, want when the first goes stale", got)
	}
	c.answered(at(5), at(0), false)
	c.sent(at(5))
	c.sent(at(5))
	if got := c.nextAt(at(5), []time.Time{at(5), at(5)}); got.Equal(at(5)) {
		t.Fatal("a third request with two in a window of two")
	}
	c.answered(at(10), at(5), false)
	c.answered(at(10), at(5), false)
	flight := []time.Time{}
	for i := range 4 {
		if got := c.nextAt(at(10), flight); !got.Equal(at(10)) {
			t.Fatalf("request %d of a window of four waits", i+1)
		}
		c.sent(at(10))
		flight = append(flight, at(10))
	}
	if got := c.nextAt(at(10), flight); got.Equal(at(10)) {
		t.Fatal("a fifth request in a window of four")
	}
	if got := c.nextAt(at(1010), flight); !got.Equal(at(1010)) {
		t.Fatalf("stale requests still hold the window: %v", got)
	}
	// Idle for a second: one at a time again.
	c.answered(at(20), at(10), false)
	if got := c.nextAt(at(3000), nil); !got.Equal(at(3000)) || c.window != c.cfg.InitialWindow {
		t.Fatalf("window %d after idling", c.window)
	}
}

// Throttled: pacing starts at the rate that came back in the last second;
// a throttled answer cuts it in half once per round (not for requests sent
// before the cut), never below MinRate; it grows back to the rate cut and
// beyond; a calm spell ends the episode.
func TestRate(t *testing.T) {
	c := newControl(Config{}, rand.New(rand.NewPCG(1, 2)))
	for i := range 10 {
		c.sent(at(i * 100))
		c.answered(at(i*100+5), at(i*100), false)
	}
	if !c.answered(at(1000), at(990), true) {
		t.Fatal("the first throttled answer did not start an episode")
	}
	if r := c.rate(at(1000)); math.Abs(r-10) > 0.01 {
		t.Fatalf("rate %.2f after 10 answers in a second, want 10", r)
	}
	// Answers to requests sent before the cut bring no news.
	c.answered(at(1001), at(999), true)
	if r := c.rate(at(1001)); r < 9.9 {
		t.Fatalf("rate %.2f after a throttled answer to a request sent before the cut", r)
	}
	// Spacing at the allowed rate.
	c.sent(at(1002))
	if got := c.nextAt(at(1002), nil); got.Sub(at(1002)) < 95*time.Millisecond {
		t.Fatalf("next request at +%v at 10/s", got.Sub(at(1002)))
	}
	// A request sent after the cut, throttled: cut in half.
	c.answered(at(1100), at(1002), true)
	r := c.rate(at(1100))
	if r > 5.5 || r < 4.5 {
		t.Fatalf("rate %.2f after a second cut", r)
	}
	// Sending all along, the rate follows the cubic: back to the rate cut
	// after cbrt(0.5/0.03) = 2.6 s (stretched), and beyond after that.
	cubic := func(now time.Time) float64 {
		x := now.Sub(at(1100)).Seconds()/c.stretch - c.k
		return c.wMax * (1 + c.cfg.Growth*x*x*x)
	}
	back := at(1100).Add(time.Duration(c.stretch * c.k * float64(time.Second)))
	for now := at(1150); now.Before(back.Add(4 * time.Second)); now = now.Add(50 * time.Millisecond) {
		if r := c.rate(now); math.Abs(r-cubic(now)) > 0.01*cubic(now) {
			t.Fatalf("rate %.3f at +%v, the cubic says %.3f", r, now.Sub(at(1100)), cubic(now))
		}
		c.sent(now)
	}
	if r := c.rate(back.Add(4 * time.Second)); r < 1.5*c.wMax {
		t.Fatalf("rate %.2f 4 s after it came back to %.2f: not growing", r, c.wMax)
	}
	// Without requests, it grows at most MaxStep past the last one's.
	last := back.Add(4 * time.Second)
	c.sent(last)
	if r, from := c.rate(last.Add(time.Minute)), c.rate(last); r > from*c.cfg.MaxStep*1.0001 {
		t.Fatalf("rate %.2f a minute after a request at %.2f", r, from)
	}
	// Cut after cut, never below the floor.
	base := last.Add(time.Minute)
	for i := range 40 {
		now := base.Add(time.Duration(i) * 10 * time.Millisecond)
		c.sent(now)
		c.answered(now, now, true)
	}
	end := base.Add(390 * time.Millisecond)
	if r := c.rate(end); r != c.cfg.MinRate {
		t.Fatalf("rate %.3f after 40 cuts, want the floor %.1f", r, c.cfg.MinRate)
	}
	if ended, _ := c.endIfCalm(end.Add(c.cfg.Calm - time.Millisecond)); ended {
		t.Fatal("episode ended before Calm")
	}
	sent := c.ep.sent
	ended, ep := c.endIfCalm(end.Add(c.cfg.Calm))
	if !ended || ep.throttled != 43 || ep.sent != sent || ep.lowest != c.cfg.MinRate {
		t.Fatalf("episode end: %v %+v", ended, ep)
	}
	if !math.IsInf(c.rate(end.Add(c.cfg.Calm)), 1) {
		t.Fatal("still paced after the episode")
	}
}

// Throttled before any answer came back: pacing starts at one request a
// second, not at the floor.
func TestThrottledAtOnce(t *testing.T) {
	c := newControl(Config{}, rand.New(rand.NewPCG(1, 2)))
	c.sent(at(0))
	c.answered(at(2), at(0), true)
	if r := c.rate(at(2)); math.Abs(r-1) > 0.01 {
		t.Fatalf("rate %.2f, want 1", r)
	}
}

func TestPriorityAndPacing(t *testing.T) {
	var logs bytes.Buffer
	p := New(Config{Calm: time.Second, MinRate: 10},
		slog.New(slog.NewTextHandler(&logs, nil)))
	defer p.Close()
	ctx := context.Background()
	// Throttled at once: 10 requests a second (the floor) from now on.
	tk, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Done(tk, Throttled)
	if r := p.Rate(); math.Abs(r-10) > 0.01 {
		t.Fatalf("allowed rate %v", r)
	}
	// Background requests queue first, foreground ones after: the
	// foreground ones go first, then the background ones, 100 ms apart.
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	start := time.Now()
	var times []time.Duration
	for i, name := range []string{"bg1", "bg2", "fg1", "fg2"} {
		wctx := ctx
		if strings.HasPrefix(name, "bg") {
			wctx = WithPriority(ctx, Background)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk, err := p.Wait(wctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, name)
			times = append(times, time.Since(start))
			mu.Unlock()
			p.Done(tk, Answered)
		}()
		// Queued in this order (the first request waits for the slot
		// after the throttled one).
		time.Sleep(time.Duration(10*(i+1)) * time.Millisecond)
	}
	wg.Wait()
	if got := strings.Join(order, " "); got != "fg1 fg2 bg1 bg2" {
		t.Fatalf("order %s, want the foreground requests first", got)
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i] - times[i-1]; gap < 80*time.Millisecond {
			t.Errorf("requests %d and %d %v apart at 10/s", i, i+1, gap)
		}
	}
	// A waiter whose context ends leaves the queue with its error.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	tk, _ = p.Wait(ctx)
	p.Done(tk, Answered)
	if _, err := p.Wait(short); err == nil {
		t.Fatal("a wait past its context succeeded")
	}
	// Calm: the episode ends, with one line, and nothing is paced.
	time.Sleep(time.Until(start.Add(1200 * time.Millisecond)))
	if r := p.Rate(); !math.IsInf(r, 1) {
		t.Fatalf("allowed rate %v after the episode", r)
	}
	text := logs.String()
	if strings.Count(text, "S3 is throttling") != 1 || strings.Count(text, "throttling is over") != 1 ||
		strings.Count(text, "\n") != 2 || !strings.Contains(text, "throttled=1") || !strings.Contains(text, "sent=") {
		t.Fatalf("log:\n%s", text)
	}
}
