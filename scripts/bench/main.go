// Command bench holds the small helpers of scripts/bench.sh that are easier in
// Go than in bash. It is not part of s3docs.
//
//	bench proxy -listen 127.0.0.1:PORT -target http://127.0.0.1:PORT
//	    a counting reverse proxy in front of the S3 server: it keeps the Host
//	    header (SigV4 covers it), streams bodies, and counts requests by kind
//	    and the body bytes of object GETs. GET /__stats answers
//	    "gets=N get_bytes=N heads=N lists=N other=N throttled=N".
//	    GET /__throttle?rate=R&status=S makes it a store that throttles: R
//	    requests a second pass (a token bucket one second deep, full when
//	    set), of every kind, and the rest are answered S (503 SlowDown, or
//	    429) and counted as throttled besides their kind; rate=0 turns it
//	    off.
//	bench ttfb FILE
//	    prints the seconds taken to open FILE and read its first byte.
//	bench stat FILE
//	    prints the seconds taken to stat FILE (the lookup of its name).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	if len(os.Args) < 2 {
		log.Fatal("usage: bench proxy|ttfb|stat ...")
	}
	switch os.Args[1] {
	case "proxy":
		runProxy(os.Args[2:])
	case "ttfb":
		if len(os.Args) != 3 {
			log.Fatal("usage: bench ttfb FILE")
		}
		ttfb(os.Args[2])
	case "stat":
		if len(os.Args) != 3 {
			log.Fatal("usage: bench stat FILE")
		}
		statTime(os.Args[2])
	default:
		log.Fatalf("unknown command %q", os.Args[1])
	}
}

func ttfb(path string) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	var b [1]byte
	n, err := f.Read(b[:])
	d := time.Since(start)
	f.Close()
	if n != 1 {
		log.Fatalf("read %s: %d bytes, %v", path, n, err)
	}
	fmt.Printf("%.6f\n", d.Seconds())
}

func statTime(path string) {
	start := time.Now()
	_, err := os.Stat(path)
	d := time.Since(start)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%.6f\n", d.Seconds())
}

type stats struct {
	gets, getBytes, heads, lists, other, throttled atomic.Int64
}

// throttle is the store's rate limit: a token bucket of rate requests a
// second, one second deep; rate 0 lets everything through.
type throttle struct {
	mu           sync.Mutex
	rate, tokens float64
	filled       time.Time
	status       int
}

func (t *throttle) set(rate float64, status int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rate, t.tokens, t.filled, t.status = rate, rate, time.Now(), status
}

// take says whether a request may pass, or the status to answer it with.
func (t *throttle) take() (pass bool, status int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rate <= 0 {
		return true, 0
	}
	now := time.Now()
	t.tokens = min(t.rate, t.tokens+t.rate*now.Sub(t.filled).Seconds())
	t.filled = now
	if t.tokens >= 1 {
		t.tokens--
		return true, 0
	}
	return false, t.status
}

// countingWriter counts the body bytes written to the client.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	if w.n != nil {
		w.n.Add(int64(n))
	}
	return n, err
}

func (w countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// isObjectGET: a GET of a key (path style), not a listing or sub-resource.
func isObjectGET(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	rest := strings.TrimPrefix(r.URL.Path, "/")
	i := strings.IndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return false
	}
	for k := range r.URL.Query() {
		switch k {
		case "list-type", "acl", "tagging", "attributes", "uploadId", "uploads",
			"retention", "legal-hold", "torrent", "versions", "location", "policy":
			return false
		}
	}
	return true
}

type bufPool struct{ p sync.Pool }

func (b *bufPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufPool) Put(p []byte) { b.p.Put(&p) }

func runProxy(args []string) {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	target := fs.String("target", "", "S3 server URL")
	_ = fs.Parse(args)
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		log.Fatalf("bad -target %q", *target)
	}
	var st stats
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     60 * time.Second,
	}
	pool := &bufPool{p: sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = u.Scheme
			pr.Out.URL.Host = u.Host
			pr.Out.Host = pr.In.Host // the signature covers Host
		},
		Transport:  tr,
		BufferPool: pool,
		ErrorLog:   log.New(io.Discard, "", 0),
	}
	var limit throttle
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/__stats":
			fmt.Fprintf(w, "gets=%d get_bytes=%d heads=%d lists=%d other=%d throttled=%d\n",
				st.gets.Load(), st.getBytes.Load(), st.heads.Load(), st.lists.Load(), st.other.Load(), st.throttled.Load())
			return
		case "/__throttle":
			var rate float64
			status := http.StatusServiceUnavailable
			if _, err := fmt.Sscan(r.URL.Query().Get("rate"), &rate); err != nil {
				http.Error(w, "rate: "+err.Error(), http.StatusBadRequest)
				return
			}
			if q := r.URL.Query().Get("status"); q != "" {
				if _, err := fmt.Sscan(q, &status); err != nil {
					http.Error(w, "status: "+err.Error(), http.StatusBadRequest)
					return
				}
			}
			limit.set(rate, status)
			fmt.Fprintln(w, "ok")
			return
		}
		var n *atomic.Int64
		switch {
		case isObjectGET(r):
			st.gets.Add(1)
			n = &st.getBytes
		case r.Method == http.MethodHead:
			st.heads.Add(1)
		case r.Method == http.MethodGet && r.URL.Query().Has("list-type") || r.Method == http.MethodGet && strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0:
			st.lists.Add(1)
		default:
			st.other.Add(1)
		}
		if pass, status := limit.take(); !pass {
			st.throttled.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(status)
			if r.Method != http.MethodHead {
				fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			}
			return
		}
		rp.ServeHTTP(countingWriter{w, n}, r)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; _ = srv.Close() }()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
