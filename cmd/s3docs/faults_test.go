package main

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"s3docs/internal/testenv"
)

// Reads through a flaky server: 1 in 5 object GETs answered 500 or 503, 1 in
// 7 bodies cut halfway, 1 in 20 stalled for 2 s. Every byte read must be
// exact, and every chunk left on disk sound: a remount on the same cache
// serves all of it again with no GET, byte for byte.
func TestFlakyServerGivesExactBytes(t *testing.T) {
	w := newWorld(t)
	const objects = 8
	want := map[string]string{}
	for i := 0; i < objects; i++ {
		key := fmt.Sprintf("flaky/obj-%d.pdf", i)
		data := testenv.RandomBytes(int64(100+i), (10+3*i)*mib+i)
		w.s3.Put(t, testBucket, key, data)
		want[key] = sha256Hex(data)
	}
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(7, 11))
	injected := map[string]int{}
	w.proxy.SetFault(func(req *http.Request) testenv.Fault {
		if !testenv.IsObjectGET(req) {
			return testenv.Fault{}
		}
		mu.Lock()
		defer mu.Unlock()
		switch n := r.IntN(140); {
		case n < 28: // 1 in 5
			injected["5xx"]++
			return testenv.Fault{Status: []int{500, 503}[n%2]}
		case n < 48: // 1 in 7
			injected["cut"]++
			return testenv.Fault{CutAfter: 1 << 20}
		case n < 55: // 1 in 20
			injected["stall"]++
			return testenv.Fault{Delay: 2 * time.Second}
		}
		return testenv.Fault{}
	})
	cacheDir := t.TempDir()
	d := w.mount(t, mountOpts{cacheDir: cacheDir})
	var wg sync.WaitGroup
	errs := make(chan error, objects)
	for key, sum := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := sha256Of(t, d.path(key)); got != sum {
				errs <- fmt.Errorf("%s: sha256 %s, want %s", key, got, sum)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mu.Lock()
	t.Logf("injected: %v over %d object GETs", injected, len(w.proxy.GETs()))
	mu.Unlock()
	if injected["5xx"] == 0 || injected["cut"] == 0 {
		t.Fatalf("faults were not injected: %v", injected)
	}
	w.proxy.SetFault(nil)
	w.proxy.WaitIdle(10 * time.Second)
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// Every chunk file holds what its name says: its length and crc32c.
	chunks, err := os.ReadDir(filepath.Join(cacheDir, "chunks"))
	if err != nil {
		t.Fatal(err)
	}
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for _, c := range chunks {
		parts := strings.Split(c.Name(), "-")
		b, err := os.ReadFile(filepath.Join(cacheDir, "chunks", c.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) != 3 || strconv.Itoa(len(b)) != parts[1] || fmt.Sprintf("%08x", crc32.Checksum(b, castagnoli)) != parts[2] {
			t.Fatalf("chunk %s holds %d bytes with another checksum", c.Name(), len(b))
		}
	}
	if tmps, _ := os.ReadDir(filepath.Join(cacheDir, "tmp")); len(tmps) != 0 {
		t.Fatalf("%d temp files left", len(tmps))
	}
	// And they are the right bytes: a remount serves everything from them.
	d2 := w.mount(t, mountOpts{cacheDir: cacheDir})
	w.proxy.Reset()
	for key, sum := range want {
		if got := sha256Of(t, d2.path(key)); got != sum {
			t.Fatalf("%s from the cache: sha256 %s, want %s", key, got, sum)
		}
	}
	if n := len(w.proxy.GETs()); n != 0 {
		t.Fatalf("re-read from the cache made %d GETs", n)
	}
}
