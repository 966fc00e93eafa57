package testenv

import (
	"bytes"
	"context"
	"encoding/xml"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is an HTTP reverse proxy in front of an S3 server. It records every
// request and can inject faults (see Fault and SetFault).
//
// It forwards the Host header unchanged, so requests signed (SigV4) for the
// proxy's address stay valid, and it streams bodies in both directions
// without buffering them.
type Proxy struct {
	ln   net.Listener
	srv  *http.Server
	rp   *httputil.ReverseProxy
	tr   *http.Transport
	done chan struct{} // closed when the proxy shuts down: ends delays and stalls

	mu      sync.Mutex
	closed  bool
	active  sync.WaitGroup // running handlers
	running int            // running handlers, for WaitIdle
	reqs    []*Request     // written only under mu
	fault   func(*http.Request) Fault
	// down: every connection is reset (see SetDown); conns are the open
	// client connections, to reset when the proxy goes down.
	down bool
	// refusing: the listener is closed (see SetRefusing); addr is where it
	// listens again.
	refusing bool
	addr     string
	conns    map[net.Conn]struct{}
	resets   int // connections reset because the proxy was down
}

// Request is what the proxy recorded of one request.
type Request struct {
	Start    time.Time // when the request arrived
	Method   string
	Path     string // decoded, e.g. "/bucket/dir/a b.pdf"
	RawQuery string
	Range    string // the Range header, "" if none
	// IfMatch and IfUnmodifiedSince are the request's conditional headers.
	IfMatch, IfUnmodifiedSince string
	// Status is the status sent to the client; 0 if no response was started
	// (the client went away during a Delay, or the proxy shut down).
	Status int
	// BodyBytes counts the response body bytes actually written to the client.
	BodyBytes int64
	// Fault is the fault applied to this request (zero value: none).
	Fault Fault
	// Err says why the request did not complete normally, "" if it did:
	// a cut or stalled body, the client going away, the upstream failing.
	Err string
	// Duration is from the arrival of the request to the end of the response.
	Duration time.Duration
}

// Fault is what the proxy injects into one request. The zero value passes
// the request through. At most one of Status, CutAfter and StallAfter takes
// effect, in that order.
type Fault struct {
	// Status, if non-zero, answers this status without forwarding, with an
	// S3-style XML error body (no body for HEAD).
	Status int
	// Code is the S3 error code in that body; "" picks one from Status
	// (500 InternalError, 503 SlowDown, 404 NoSuchKey, 412 PreconditionFailed, ...).
	Code string
	// CutAfter, if > 0, forwards the request, sends the response headers
	// (with the server's Content-Length) and the first CutAfter body bytes,
	// then closes the connection: the client sees a truncated body. A body
	// of at most CutAfter bytes passes whole.
	CutAfter int64
	// StallAfter, if > 0, forwards the request, sends the headers and the
	// first StallAfter body bytes, then sends nothing more until the client
	// gives up (or the proxy closes), then closes the connection.
	StallAfter int64
	// Delay is slept before anything else (before forwarding or answering);
	// it ends early, without any response, if the client goes away.
	Delay time.Duration
	// PauseAfter and Pause, if Pause > 0, forward the request and send the
	// first PauseAfter body bytes, then nothing for Pause, then the rest: a
	// server that stalls for a while and recovers. (With CutAfter or
	// StallAfter, the pause counts only if it comes before the cut.)
	PauseAfter int64
	Pause      time.Duration
	// Rate, if > 0, limits the response body to about Rate bytes per second
	// (with CutAfter or StallAfter, until the cut or the stall): a slow
	// but healthy server, so that a test can act while reads stream.
	Rate int64
}

// NewProxy starts a proxy to target (e.g. s.Endpoint) on a free 127.0.0.1
// port. It is closed in t.Cleanup: running requests are aborted.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		t.Fatalf("testenv: NewProxy: bad target %q (%v)", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: NewProxy: %v", err)
	}
	p := &Proxy{
		ln:    ln,
		done:  make(chan struct{}),
		conns: map[net.Conn]struct{}{},
		tr: &http.Transport{
			Proxy:               nil, // never an $HTTP_PROXY
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			DisableCompression:  true, // pass bodies and Content-Length through untouched
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = u.Scheme
			pr.Out.URL.Host = u.Host
			pr.Out.Host = pr.In.Host // the signature covers Host
		},
		Transport:     p.tr,
		FlushInterval: -1, // flush every write: stream, never buffer
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if cw, ok := w.(*countingWriter); ok {
				cw.err = "upstream: " + err.Error()
			}
			if r.Context().Err() != nil {
				return // the client is gone
			}
			writeS3Error(w, r, http.StatusBadGateway, "BadGateway", "testenv proxy: "+err.Error())
		},
	}
	baseCtx, cancelBase := context.WithCancel(context.Background())
	p.srv = &http.Server{
		Handler:           p,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ReadHeaderTimeout: 30 * time.Second,
		ConnState:         p.trackConn,
	}
	p.addr = ln.Addr().String()
	go func() { _ = p.srv.Serve(&downListener{Listener: ln, p: p}) }()
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		close(p.done)
		cancelBase()
		_ = p.srv.Close()
		waited := make(chan struct{})
		go func() { p.active.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			t.Errorf("testenv: proxy handlers still running 10s after close")
		}
		p.tr.CloseIdleConnections()
	})
	return p
}

// URL returns the proxy's base URL, "http://127.0.0.1:PORT".
func (p *Proxy) URL() string { return "http://" + p.addr }

// SetRefusing closes the proxy's port (true), so that connecting to it is
// refused (ECONNREFUSED) as from a server whose process is gone, and
// resets the open connections; false listens on the same port again.
func (p *Proxy) SetRefusing(refusing bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if refusing == p.refusing || p.closed {
		return nil
	}
	if refusing {
		p.refusing = true
		if err := p.ln.Close(); err != nil {
			return err
		}
		for c := range p.conns {
			resetConn(c)
		}
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.ln, p.refusing = ln, false
	go func() { _ = p.srv.Serve(&downListener{Listener: ln, p: p}) }()
	return nil
}

// SetFault sets the function that decides the fault of each request; it is
// called once per request, concurrently. nil clears it (pass everything).
func (p *Proxy) SetFault(f func(r *http.Request) Fault) {
	p.mu.Lock()
	p.fault = f
	p.mu.Unlock()
}

// SetDown takes the "server" down (true) or back up (false). While down,
// every connection is reset: the open ones at once (responses being sent are
// cut), new ones as soon as they are accepted, before any request is read.
// A client sees "connection reset by peer" (or EOF), as from a server that
// crashed and whose address answers with RSTs. Nothing reaches the server
// and nothing is recorded while down; Resets counts the connections reset.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	var victims []net.Conn
	if down {
		for c := range p.conns {
			victims = append(victims, c)
		}
		p.resets += len(victims)
	}
	p.mu.Unlock()
	for _, c := range victims {
		resetConn(c)
	}
}

// Resets is the number of connections reset because the proxy was down.
func (p *Proxy) Resets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resets
}

// resetConn closes c with an RST rather than a FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// trackConn keeps the set of open client connections for SetDown.
func (p *Proxy) trackConn(c net.Conn, state http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch state {
	case http.StateNew:
		p.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(p.conns, c)
	}
}

// downListener resets every connection it accepts while the proxy is down.
type downListener struct {
	net.Listener
	p *Proxy
}

func (l *downListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.p.mu.Lock()
		down := l.p.down
		if down {
			l.p.resets++
		}
		l.p.mu.Unlock()
		if !down {
			return c, nil
		}
		resetConn(c)
	}
}

// Requests returns a copy of the recorded requests, in completion order.
//
// A request is recorded before the client can see its response complete:
// just before the last byte of a body of known length is sent (or before
// the headers of a response without body), else when the handler ends. So a
// test that has read a whole response finds it here at once.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Request, len(p.reqs))
	for i, r := range p.reqs {
		out[i] = *r
	}
	return out
}

// Reset forgets the recorded requests (the fault stays).
func (p *Proxy) Reset() {
	p.mu.Lock()
	p.reqs = nil
	p.mu.Unlock()
}

// GETs returns the recorded object GETs (see IsObjectGET): the data fetches.
func (p *Proxy) GETs() []Request {
	var out []Request
	for _, r := range p.Requests() {
		q, _ := url.ParseQuery(r.RawQuery)
		if isObjectGET(r.Method, r.Path, q) {
			out = append(out, r)
		}
	}
	return out
}

// IsObjectGET reports whether r is a GET of an object (path-style: a
// non-empty key after the bucket), not a listing (list-type) nor a
// sub-resource such as ?acl or ?tagging.
func IsObjectGET(r *http.Request) bool {
	return isObjectGET(r.Method, r.URL.Path, r.URL.Query())
}

func isObjectGET(method, path string, q url.Values) bool {
	if method != http.MethodGet {
		return false
	}
	rest := strings.TrimPrefix(path, "/")
	i := strings.IndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return false
	}
	for k := range q {
		switch k {
		case "list-type", "acl", "tagging", "attributes", "uploadId", "uploads",
			"retention", "legal-hold", "torrent", "versions", "location", "policy":
			return false
		}
	}
	return true
}

// FailN returns a fault function that applies f to the first n object GETs
// (see IsObjectGET) and passes everything else through. It is safe for
// concurrent use.
func FailN(n int, f Fault) func(r *http.Request) Fault {
	var count atomic.Int64
	return func(r *http.Request) Fault {
		if !IsObjectGET(r) {
			return Fault{}
		}
		if count.Add(1) <= int64(n) {
			return f
		}
		return Fault{}
	}
}

// Throttle returns a fault function that lets perSecond requests a second
// through, of every kind, and answers the rest with over: a store that
// throttles (Fault{Status: 503} answers 503 SlowDown, Fault{Status: 429}
// 429). The rate is a token bucket one second deep, full at the start: a
// burst of perSecond passes, then perSecond a second. It is safe for
// concurrent use.
func Throttle(perSecond float64, over Fault) func(r *http.Request) Fault {
	var mu sync.Mutex
	tokens, filled := perSecond, time.Now()
	return func(*http.Request) Fault {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		tokens = min(perSecond, tokens+perSecond*now.Sub(filled).Seconds())
		filled = now
		if tokens >= 1 {
			tokens--
			return Fault{}
		}
		return over
	}
}

// Throttled counts the recorded requests answered with status by fault
// injection (a throttle's 503 or 429), and all the recorded requests.
func (p *Proxy) Throttled(status int) (throttled, all int) {
	for _, r := range p.Requests() {
		if r.Fault.Status == status {
			throttled++
		}
	}
	return throttled, len(p.Requests())
}

// enter registers a running handler; false once the proxy is closed.
func (p *Proxy) enter() (func(*http.Request) Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false
	}
	p.active.Add(1)
	p.running++
	return p.fault, true
}

func (p *Proxy) leave() {
	p.mu.Lock()
	p.running--
	p.mu.Unlock()
	p.active.Done()
}

// InFlight is the number of requests being handled now.
func (p *Proxy) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// WaitIdle waits until no request is being handled, at most timeout, and
// reports whether that happened. A request whose client gave up (a timeout
// during a Delay or StallAfter) may still be running, and be recorded, a
// little later: call WaitIdle before Reset to keep it out of the next count.
func (p *Proxy) WaitIdle(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		n := p.running
		p.mu.Unlock()
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// publish records rec early, as if its response had completed with status
// and bodyBytes; finish corrects it.
func (p *Proxy) publish(rec *Request, start time.Time, status int, bodyBytes int64) {
	p.mu.Lock()
	rec.Status, rec.BodyBytes, rec.Duration = status, bodyBytes, time.Since(start)
	p.reqs = append(p.reqs, rec)
	p.mu.Unlock()
}

// finish records the outcome of rec, appending it unless it was published.
func (p *Proxy) finish(rec *Request, start time.Time, cw *countingWriter) {
	p.mu.Lock()
	rec.Status, rec.BodyBytes, rec.Err = cw.status, cw.n, cw.err
	rec.Duration = time.Since(start)
	if !cw.published {
		p.reqs = append(p.reqs, rec)
	}
	p.mu.Unlock()
}

// cutError ends a response body early (CutAfter, StallAfter).
type cutError struct{}

func (cutError) Error() string { return "testenv: response body cut by fault injection" }

// ServeHTTP proxies one request, applying the fault of the moment.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	faultFn, ok := p.enter()
	if !ok {
		panic(http.ErrAbortHandler)
	}
	defer p.leave()
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		// Accepted just before the proxy went down: reset like the others.
		panic(http.ErrAbortHandler)
	}
	start := time.Now()
	rec := &Request{
		Start:             start,
		Method:            r.Method,
		Path:              r.URL.Path,
		RawQuery:          r.URL.RawQuery,
		Range:             r.Header.Get("Range"),
		IfMatch:           r.Header.Get("If-Match"),
		IfUnmodifiedSince: r.Header.Get("If-Unmodified-Since"),
	}
	if faultFn != nil {
		rec.Fault = faultFn(r)
	}
	f := rec.Fault
	cw := &countingWriter{ResponseWriter: w, limit: -1, expect: -1, head: r.Method == http.MethodHead,
		rate: f.Rate, start: time.Now(), gone: r.Context().Done(), closed: p.done,
		pauseAt: -1}
	if f.Pause > 0 {
		cw.pauseAt, cw.pause = f.PauseAfter, f.Pause
	}
	cw.publish = func(status int, bodyBytes int64) { p.publish(rec, start, status, bodyBytes) }
	// Record even when the handler panics (http.ErrAbortHandler), before
	// the connection is closed.
	defer p.finish(rec, start, cw)

	if f.Delay > 0 {
		timer := time.NewTimer(f.Delay)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			cw.err = "client went away during delay"
			return
		case <-p.done:
			timer.Stop()
			cw.err = "proxy closed during delay"
			return
		}
	}
	switch {
	case f.Status != 0:
		cw.err = "injected status " + strconv.Itoa(f.Status)
		writeS3Error(cw, r, f.Status, f.Code, "injected by testenv.Proxy")
		return
	case f.CutAfter > 0:
		cw.limit = f.CutAfter
	case f.StallAfter > 0:
		cw.limit = f.StallAfter
		cw.stall = r.Context().Done()
	}
	p.rp.ServeHTTP(cw, r)
	if cw.cut {
		// ReverseProxy normally panics itself on the write error; make sure
		// the connection is closed rather than the response finished.
		panic(http.ErrAbortHandler)
	}
}

// countingWriter counts body bytes, cuts or stalls the body at limit, and
// publishes the request just before the client can see the response end.
type countingWriter struct {
	http.ResponseWriter
	head      bool // HEAD request: no body whatever Content-Length says
	status    int
	n         int64
	expect    int64 // body length announced by Content-Length, -1 if unknown
	publish   func(status int, bodyBytes int64)
	published bool
	limit     int64           // < 0: none
	stall     <-chan struct{} // non-nil: at limit, wait for this (or closed) instead of cutting at once
	closed    <-chan struct{} // the proxy shut down
	cut       bool
	err       string
	pauseAt   int64 // < 0: no pause (or done)
	pause     time.Duration
	rate      int64 // body bytes per second, 0: unlimited
	start     time.Time
	gone      <-chan struct{} // the client went away
}

// throttle waits until sending n more bytes, after sent, keeps the body
// within rate.
func (w *countingWriter) throttle(sent int64, n int) error {
	due := w.start.Add(time.Duration(float64(sent+int64(n)) / float64(w.rate) * float64(time.Second)))
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-w.gone:
		return cutError{}
	case <-w.closed:
		return cutError{}
	}
}

// writeRated writes b, in pieces small enough to keep to the rate if there
// is one. It does not count the bytes: its callers do.
func (w *countingWriter) writeRated(b []byte) (int, error) {
	if w.rate <= 0 {
		return w.ResponseWriter.Write(b)
	}
	piece := int(max(w.rate/20, 1)) // about 20 writes a second
	written := 0
	for written < len(b) {
		m := min(piece, len(b)-written)
		if err := w.throttle(w.n+int64(written), m); err != nil {
			return written, err
		}
		n, err := w.ResponseWriter.Write(b[written : written+m])
		written += n
		w.Flush()
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		switch cl, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); {
		case w.head || code == http.StatusNoContent || code == http.StatusNotModified:
			w.expect = 0
		case err == nil && cl >= 0:
			w.expect = cl
		}
		if w.expect == 0 {
			// The headers go out at the next flush or at the end of the
			// handler, and with them the whole response.
			w.published = true
			w.publish(code, 0)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.pauseAt < 0 || w.n+int64(len(b)) <= w.pauseAt {
		return w.write(b)
	}
	// The body crosses the pause: send what comes before, wait, go on.
	before := b[:w.pauseAt-w.n]
	w.pauseAt = -1
	n, err := w.write(before)
	if err != nil {
		return n, err
	}
	w.Flush()
	t := time.NewTimer(w.pause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.gone:
		w.err = "client went away during a pause"
		return n, cutError{}
	case <-w.closed:
		return n, cutError{}
	}
	m, err := w.write(b[len(before):])
	return n + m, err
}

func (w *countingWriter) write(b []byte) (int, error) {
	if w.cut {
		return 0, cutError{}
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.limit < 0 || w.n+int64(len(b)) <= w.limit {
		if !w.published && w.expect >= 0 && w.n+int64(len(b)) >= w.expect {
			w.published = true
			w.publish(w.status, w.expect)
		}
		n, err := w.writeRated(b)
		w.n += int64(n)
		if err != nil && w.err == "" {
			w.err = "write to client: " + err.Error()
		}
		return n, err
	}
	n, err := w.writeRated(b[:w.limit-w.n])
	w.n += int64(n)
	w.Flush()
	w.cut = true
	if err != nil {
		w.err = "write to client: " + err.Error()
		return n, err
	}
	if w.stall != nil {
		w.err = "body stalled after " + strconv.FormatInt(w.n, 10) + " bytes"
		select {
		case <-w.stall:
		case <-w.closed:
		}
		return n, cutError{}
	}
	w.err = "body cut after " + strconv.FormatInt(w.n, 10) + " bytes"
	return n, cutError{}
}

// Flush sends what has been written to the client now.
func (w *countingWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeS3Error answers status with an S3-style XML error document.
func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if code == "" {
		code = s3ErrorCode(status)
	}
	var body bytes.Buffer
	body.WriteString(xml.Header)
	body.WriteString("<Error><Code>")
	_ = xml.EscapeText(&body, []byte(code))
	body.WriteString("</Code><Message>")
	_ = xml.EscapeText(&body, []byte(msg))
	body.WriteString("</Message><Resource>")
	_ = xml.EscapeText(&body, []byte(r.URL.Path))
	body.WriteString("</Resource><RequestId>testenv-proxy</RequestId></Error>")
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(body.Len()))
	h.Set("X-Amz-Request-Id", "testenv-proxy")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body.Bytes())
	}
}

// s3ErrorCode is the usual S3 error code for an HTTP status.
func s3ErrorCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "InvalidRequest"
	case http.StatusForbidden:
		return "AccessDenied"
	case http.StatusNotFound:
		return "NoSuchKey"
	case http.StatusMethodNotAllowed:
		return "MethodNotAllowed"
	case http.StatusConflict:
		return "OperationAborted"
	case http.StatusPreconditionFailed:
		return "PreconditionFailed"
	case http.StatusRequestedRangeNotSatisfiable:
		return "InvalidRange"
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return "SlowDown"
	case http.StatusInternalServerError:
		return "InternalError"
	case http.StatusNotImplemented:
		return "NotImplemented"
	case http.StatusBadGateway:
		return "BadGateway"
	case http.StatusGatewayTimeout:
		return "GatewayTimeout"
	}
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}
