package main

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// Issue 19: a fleet of workers under S3 throttling. Several daemons, each
// with its own mount and cache, read the same cold objects at once
// through a store that lets a few requests a second through and throttles
// the rest. Throttling is the store asking for less: every read must come
// out right, none may fail before its deadline, and the fleet must not
// send several times the requests it needs.

// fleetFigures is what one fleet run did, from the proxy's records.
type fleetFigures struct {
	daemons, neededGETs        int
	gets, heads, lists, others int
	throttled                  int
	wall, ideal                time.Duration
}

// timeline is the requests that passed and those throttled, second by
// second from start, as "passed/throttled".
func timeline(p *testenv.Proxy, start time.Time, throttleStatus int) string {
	var passed, throttled []int
	for _, r := range p.Requests() {
		s := int(r.Start.Sub(start).Seconds())
		for len(passed) <= s {
			passed, throttled = append(passed, 0), append(throttled, 0)
		}
		if r.Fault.Status == throttleStatus {
			throttled[s]++
		} else {
			passed[s]++
		}
	}
	var b strings.Builder
	for i := range passed {
		fmt.Fprintf(&b, " %d/%d", passed[i], throttled[i])
	}
	return b.String()
}

func (f fleetFigures) sent() int { return f.gets + f.heads + f.lists + f.others }

func (f fleetFigures) String() string {
	return fmt.Sprintf("%d daemons: %d requests sent (%d GETs, %d HEADs, %d LISTs, %d other; %d throttled) for %d GETs needed: %.2f×; wall %v, ideal %v: %.2f×",
		f.daemons, f.sent(), f.gets, f.heads, f.lists, f.others, f.throttled, f.neededGETs,
		float64(f.sent())/float64(f.neededGETs), f.wall.Round(100*time.Millisecond), f.ideal.Round(100*time.Millisecond),
		f.wall.Seconds()/f.ideal.Seconds())
}

// countRequests sorts the proxy's records by kind.
func countRequests(p *testenv.Proxy, throttleStatus int) fleetFigures {
	var f fleetFigures
	for _, r := range p.Requests() {
		q, _ := url.ParseQuery(r.RawQuery)
		switch {
		case r.Method == http.MethodHead:
			f.heads++
		case r.Method == http.MethodGet && q.Has("list-type"):
			f.lists++
		case r.Method == http.MethodGet && len(strings.Split(strings.Trim(r.Path, "/"), "/")) > 1:
			f.gets++
		default:
			f.others++
		}
		if r.Fault.Status == throttleStatus {
			f.throttled++
		}
	}
	return f
}

// mountFleet mounts n daemons, each on its own mount point and cache.
func mountFleet(t *testing.T, w *world, n int, extra ...string) []*daemon {
	t.Helper()
	ds := make([]*daemon, n)
	for i := range ds {
		ds[i] = w.mount(t, mountOpts{extra: extra})
	}
	return ds
}

// fleetSize is the object each daemon reads: the sizes without the
// race detector, a quarter under it (every daemon is the race-enabled test
// binary, and CI has two cores).
func fleetSize(full int) int {
	if raceEnabled {
		return full / 4
	}
	return full
}

// 8 daemons read the same cold object at once, 8 requests a second getting
// through and the rest answered 503 SlowDown: every read is right, none
// fails, and the fleet sends little more than the GETs it needs (the
// issue's run sent 4.9 times as many, and one read failed).
func TestFleetUnderThrottling(t *testing.T) {
	w := newWorld(t)
	const daemons, rate = 8, 8
	size := fleetSize(128 * mib)
	sum := putRandom(t, w, "case.pdf", 19, size)
	w.proxy.SetFault(testenv.Throttle(rate, testenv.Fault{Status: http.StatusServiceUnavailable}))
	ds := mountFleet(t, w, daemons)
	w.proxy.WaitIdle(30 * time.Second) // the mounts' checks are not the figure
	w.proxy.Reset()

	results := make([]readResult, daemons)
	var wg sync.WaitGroup
	start := time.Now()
	for i, d := range ds {
		wg.Go(func() { results[i] = timedSum(d.path("case.pdf"), 10*time.Minute) })
	}
	wg.Wait()
	wall := time.Since(start)
	w.proxy.WaitIdle(10 * time.Second)
	f := countRequests(w.proxy, http.StatusServiceUnavailable)
	f.daemons, f.wall = daemons, wall
	f.neededGETs = daemons * ((size + testChunkSize - 1) / testChunkSize)
	f.ideal = time.Duration(float64(f.neededGETs) / rate * float64(time.Second))
	t.Logf("%d MiB each, %d requests a second: %v", size/mib, rate, f)
	t.Logf("requests passed/throttled, second by second:%s", timeline(w.proxy, start, http.StatusServiceUnavailable))
	for i, r := range results {
		t.Logf("daemon %d: read in %v", i, r.took.Round(100*time.Millisecond))
		if r.err != nil || r.sum != sum {
			t.Errorf("daemon %d: %v (%s) after %v, sha256 %s", i, r.err, r.msg, r.took, r.sum)
		}
	}
	if f.throttled == 0 {
		t.Fatal("nothing was throttled: the test did not test throttling")
	}
	// docs/performance.md's figure (1.5× at most, from scripts/bench.sh fleet) is a
	// benchmark's; this bound only catches a return of the retries that
	// multiplied (4.9×).
	if ratio := float64(f.sent()) / float64(f.neededGETs); ratio > 2 {
		t.Errorf("the fleet sent %.2f× the GETs it needed", ratio)
	}
	// Each daemon said once that the store throttles, and not once per
	// throttled request.
	for i, d := range ds {
		if n := strings.Count(d.stderr.String(), "S3 is throttling"); n < 1 || n > 3 {
			t.Errorf("daemon %d logged the start of throttling %d times", i, n)
		}
	}
}

// 16 daemons read 64 MiB each at once through a store that lets 4 requests
// a second through and answers the rest 429; each also stats a file and
// lists a directory of 1,000 keys (ls -l) during the reads. Every read,
// lookup and listing succeeds.
func TestFleetLookupsUnderThrottling(t *testing.T) {
	w := newWorld(t)
	const daemons, rate = 16, 4
	size := fleetSize(64 * mib)
	sum := putRandom(t, w, "hot/big.pdf", 20, size)
	for i := range 1000 {
		w.s3.PutRaw(t, testBucket, fmt.Sprintf("cases/f%04d.pdf", i), []byte(fmt.Sprintf("case %d", i)))
	}
	w.proxy.SetFault(testenv.Throttle(rate, testenv.Fault{Status: http.StatusTooManyRequests}))
	ds := mountFleet(t, w, daemons)
	w.proxy.WaitIdle(30 * time.Second) // the mounts' checks are not the figure
	w.proxy.Reset()

	type outcome struct {
		read         readResult
		statErr      error
		listed       int
		lsErr, lsMsg string
		statT, listT time.Duration
	}
	results := make([]outcome, daemons)
	var wg sync.WaitGroup
	start := time.Now()
	for i, d := range ds {
		wg.Go(func() { results[i].read = timedSum(d.path("hot/big.pdf"), 10*time.Minute) })
		wg.Go(func() {
			// Not waiting for an event: a second into the reads, so that
			// the lookups meet them.
			time.Sleep(time.Second)
			t0 := time.Now()
			_, results[i].statErr = os.Stat(d.path(fmt.Sprintf("cases/f%04d.pdf", 500+i)))
			results[i].statT = time.Since(t0)
			t0 = time.Now()
			out, err := testenv.Command("ls", "-l", d.path("cases")).CombinedOutput()
			results[i].listT = time.Since(t0)
			if err != nil {
				results[i].lsErr, results[i].lsMsg = err.Error(), string(out)
			}
			results[i].listed = strings.Count(string(out), ".pdf\n")
		})
	}
	wg.Wait()
	wall := time.Since(start)
	w.proxy.WaitIdle(10 * time.Second)
	f := countRequests(w.proxy, http.StatusTooManyRequests)
	f.daemons, f.wall = daemons, wall
	f.neededGETs = daemons * ((size + testChunkSize - 1) / testChunkSize)
	f.ideal = time.Duration(float64(f.neededGETs) / rate * float64(time.Second))
	t.Logf("%d MiB each, %d requests a second, stat and ls -l of 1,000 keys each: %v", size/mib, rate, f)
	t.Logf("requests passed/throttled, second by second:%s", timeline(w.proxy, start, http.StatusTooManyRequests))
	var slowest time.Duration
	for i, r := range results {
		if r.read.err != nil || r.read.sum != sum {
			t.Errorf("daemon %d: read %v (%s) after %v", i, r.read.err, r.read.msg, r.read.took)
		}
		if r.statErr != nil {
			t.Errorf("daemon %d: stat: %v after %v", i, r.statErr, r.statT)
		}
		if r.lsErr != "" || r.listed != 1000 {
			t.Errorf("daemon %d: ls -l listed %d of 1000 after %v: %s %s", i, r.listed, r.listT, r.lsErr, r.lsMsg)
		}
		slowest = max(slowest, r.statT, r.listT)
	}
	t.Logf("slowest stat or ls -l: %v", slowest.Round(100*time.Millisecond))
	if f.throttled == 0 {
		t.Fatal("nothing was throttled")
	}
}

// Throttling that lasts longer than --read-timeout: the read fails with EIO
// at the deadline (not seconds after it began, as when throttling counted
// as failures), with one line for the episode and one for the read, and
// the metrics say what happened: throttled answers by kind, retries by
// reason, and the allowed rate, which is +Inf while nothing is throttled.
func TestThrottlingPastTheReadDeadline(t *testing.T) {
	w := newWorld(t)
	const readTimeout = 10 * time.Second
	const key = "slow/doc.pdf"
	putRandom(t, w, key, 21, 20*mib)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d := w.mount(t, mountOpts{extra: []string{"--read-timeout", readTimeout.String(), "--metrics-addr", addr}})
	if _, err := os.Stat(d.path(key)); err != nil { // the lookup is not what this test throttles
		t.Fatal(err)
	}
	before := scrape(t, "http://"+addr+"/metrics")
	if v := metricValue(t, before, "s3docs_s3_allowed_rate"); !math.IsInf(v, 1) {
		t.Errorf("allowed rate %v before any throttling, want +Inf", v)
	}
	for _, series := range []string{`s3docs_s3_requests_total{kind="head",outcome="ok"}`, `s3docs_s3_requests_total{kind="list",outcome="ok"}`} {
		if v := metricValue(t, before, series); v < 1 {
			t.Errorf("%s = %v after the check and the lookup", series, v)
		}
	}
	w.proxy.SetFault(testenv.Throttle(0, testenv.Fault{Status: http.StatusServiceUnavailable}))
	r := timedSum(d.path(key), 10*readTimeout)
	t.Logf("read throttled all along: %v (%s) after %v, deadline %v", r.err, r.msg, r.took.Round(time.Millisecond), readTimeout)
	if !r.isEIO() {
		t.Fatalf("want EIO, got %v (%s)", r.err, r.msg)
	}
	// The issue asks for the deadline within +1 s; the margin beyond is
	// for a loaded machine.
	if r.took < readTimeout-500*time.Millisecond || r.took > readTimeout+3*time.Second {
		t.Errorf("EIO after %v, want at the %v deadline", r.took, readTimeout)
	}
	after := scrape(t, "http://"+addr+"/metrics")
	for series, atLeast := range map[string]float64{
		`s3docs_s3_requests_total{kind="get",outcome="throttled"}`: 2,
		`s3docs_s3_throttled_total{kind="get"}`:                    2,
		`s3docs_s3_retries_total{reason="throttled"}`:              2,
	} {
		if v := metricValue(t, after, series); v < atLeast {
			t.Errorf("%s = %v, want at least %v", series, v, atLeast)
		}
	}
	if v := metricValue(t, after, "s3docs_s3_allowed_rate"); math.IsInf(v, 1) || v <= 0 {
		t.Errorf("allowed rate %v while throttled", v)
	}
	for _, series := range []string{`s3docs_s3_throttled_total{kind="head"}`, `s3docs_s3_throttled_total{kind="list"}`,
		`s3docs_s3_retries_total{reason="server_error"}`, `s3docs_s3_retries_total{reason="network"}`,
		`s3docs_s3_retries_total{reason="resume"}`, `s3docs_s3_requests_total{kind="get",outcome="error"}`} {
		metricValue(t, after, series) // present, at 0
	}
	// One line when throttling started, one for the failed read, and no
	// line per throttled request.
	var lines []string
	for _, line := range strings.Split(d.stderr.String(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			lines = append(lines, line)
		}
	}
	throttling, read := 0, 0
	for _, l := range lines {
		switch {
		case strings.Contains(l, "S3 is throttling"):
			throttling++
		case strings.Contains(l, key):
			read++
		}
	}
	if throttling != 1 || read != 1 || len(lines) != 2 {
		t.Errorf("warning and error lines: %d\n%s", len(lines), strings.Join(lines, "\n"))
	}
}

// A store that is down or broken, not throttling, still fails reads fast:
// within seconds, not at the 2-minute deadline. Refused connections, and
// 500 InternalError to everything.
func TestDeadStoreFailsFast(t *testing.T) {
	w := newWorld(t)
	putRandom(t, w, "a.pdf", 22, 20*mib)
	putRandom(t, w, "b.pdf", 23, 20*mib)
	d := w.mount(t, mountOpts{})
	for _, key := range []string{"a.pdf", "b.pdf"} {
		if _, err := os.Stat(d.path(key)); err != nil {
			t.Fatal(err)
		}
	}
	// About 4 s measured: 5 attempts, waits of 0.25-2 s between them; the
	// bound is far from the 2-minute deadline, and loose for a busy
	// machine.
	const bound = 15 * time.Second
	check := func(what string, r readResult) {
		t.Helper()
		t.Logf("%s: %v (%s) after %v", what, r.err, r.msg, r.took.Round(time.Millisecond))
		if !r.isEIO() || r.took > bound {
			t.Errorf("%s: %v (%s) after %v, want EIO within %v", what, r.err, r.msg, r.took, bound)
		}
	}
	if err := w.proxy.SetRefusing(true); err != nil {
		t.Fatal(err)
	}
	check("connections refused", timedSum(d.path("a.pdf"), 3*time.Minute))
	if err := w.proxy.SetRefusing(false); err != nil {
		t.Fatal(err)
	}
	w.proxy.SetFault(func(r *http.Request) testenv.Fault {
		return testenv.Fault{Status: http.StatusInternalServerError}
	})
	check("500 to everything", timedSum(d.path("b.pdf"), 3*time.Minute))
	w.proxy.SetFault(nil)
}
