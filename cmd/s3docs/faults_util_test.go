package main

import (
	"fmt"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"s3docs/chunkcache"
	"s3docs/internal/testenv"
)

// Helpers of the fault tests (issue 6).

// testChunkSize is the daemon's default --chunk-size, which the fault tests
// keep: the chunk files on disk are checked against slices of this size.
const testChunkSize = 8 * mib

var castagnoliTable = crc32.MakeTable(crc32.Castagnoli)

// chunkRef names one chunk of one source object.
type chunkRef struct {
	key string
	idx int
}

func (r chunkRef) String() string { return fmt.Sprintf("%s#%d", r.key, r.idx) }

// rangeHeader is the Range of the GET that fetches the whole chunk.
func (r chunkRef) rangeHeader(size int) string {
	from := r.idx * testChunkSize
	return fmt.Sprintf("bytes=%d-%d", from, min(from+testChunkSize, size)-1)
}

// chunkSig is what a chunk file's name and content say of it: its length
// and crc32c. Over random data it identifies the source slice.
type chunkSig struct {
	size int
	crc  uint32
}

// throttleGETs makes the proxy send every object GET's body at about rate
// bytes per second, so that a test finds reads in flight.
func throttleGETs(w *world, rate int64) {
	w.proxy.SetFault(func(r *http.Request) testenv.Fault {
		if testenv.IsObjectGET(r) {
			return testenv.Fault{Rate: rate}
		}
		return testenv.Fault{}
	})
}

// putObjects puts n objects of size random bytes under prefix (seeded from
// seed) and returns their sha256 by key and their chunk slices.
func putObjects(t *testing.T, w *world, prefix string, n, size int, seed int64) (map[string]string, map[chunkSig]chunkRef) {
	t.Helper()
	sums := map[string]string{}
	slices := map[chunkSig]chunkRef{}
	for i := range n {
		key := fmt.Sprintf("%s/obj-%d.pdf", prefix, i)
		data := testenv.RandomBytes(seed+int64(i), size)
		sourceChunks(slices, key, data)
		w.s3.Put(t, testBucket, key, data)
		sums[key] = sha256Hex(data)
	}
	return sums, slices
}

// sourceChunks maps the signature of every chunk-sized slice of data to the
// slice, so that each file of the cache can be matched to its source.
func sourceChunks(into map[chunkSig]chunkRef, key string, data []byte) {
	for i := 0; i*testChunkSize < len(data); i++ {
		b := data[i*testChunkSize : min((i+1)*testChunkSize, len(data))]
		into[chunkSig{len(b), crc32.Checksum(b, castagnoliTable)}] = chunkRef{key, i}
	}
}

// checkChunkFiles holds every entry of the objects' files in cacheDir to
// what their maps claim and to the source: its bytes have the length and
// crc32c its map records, and a chunk's are those of one of the source's
// chunk slices. It returns the chunks found, each with the entry holding it
// ("objects/<id>@offset"). Pieces and fragments are held to their checksums.
func checkChunkFiles(t *testing.T, cacheDir string, want map[chunkSig]chunkRef) map[chunkRef]string {
	t.Helper()
	ranges, err := chunkcache.ReadRanges(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	found := map[chunkRef]string{}
	for _, r := range ranges {
		name := fmt.Sprintf("%s@%d", r.File, r.Offset)
		b := make([]byte, r.Length)
		f, err := os.Open(filepath.Join(cacheDir, r.File))
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.ReadAt(b, r.Offset)
		f.Close()
		if err != nil {
			t.Errorf("%s %s: %v", r.Kind, name, err)
			continue
		}
		sig := chunkSig{len(b), crc32.Checksum(b, castagnoliTable)}
		if sig.crc != r.CRC32C {
			t.Errorf("%s %s holds %d bytes with crc32c %08x, its map says %08x", r.Kind, name, sig.size, sig.crc, r.CRC32C)
			continue
		}
		if r.Kind != "chunk" {
			continue
		}
		ref, ok := want[sig]
		if !ok {
			t.Errorf("chunk %s (%d bytes) is no chunk-aligned slice of any source object", name, sig.size)
			continue
		}
		if other, dup := found[ref]; dup {
			t.Errorf("%v is cached twice: %s and %s", ref, other, name)
		}
		found[ref] = name
	}
	return found
}

// chunkCount is how many whole chunks the maps in cacheDir record.
func chunkCount(cacheDir string) int {
	ranges, _ := chunkcache.ReadRanges(cacheDir)
	n := 0
	for _, r := range ranges {
		if r.Kind == "chunk" {
			n++
		}
	}
	return n
}

// unrecordedBytes is how much the objects' files in cacheDir take on disk
// beyond the entries their maps record (each rounded up to a block): bytes
// of downloads a kill cut short, which a start punches out.
func unrecordedBytes(t *testing.T, cacheDir string) int64 {
	t.Helper()
	ranges, err := chunkcache.ReadRanges(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]int64{}
	for _, r := range ranges {
		recorded[r.File] += (r.Length + 4095) / 4096 * 4096
	}
	var extra int64
	des, _ := os.ReadDir(filepath.Join(cacheDir, "objects"))
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".map") {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		if on := info.Sys().(*syscall.Stat_t).Blocks * 512; on > recorded["objects/"+de.Name()] {
			extra += on - recorded["objects/"+de.Name()]
		}
	}
	return extra
}

// tmpFiles lists what is left in cacheDir/tmp.
func tmpFiles(t *testing.T, cacheDir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(cacheDir, "tmp"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// mountAt is w.mount on a given mount point, to remount where a killed
// daemon was: the mount point must be usable again.
func (w *world) mountAt(t *testing.T, mp string, o mountOpts) *daemon {
	t.Helper()
	if o.cacheSize == "" {
		o.cacheSize = "1GiB"
	}
	args := append([]string{"mount", "--endpoint-url", w.proxy.URL(), "--force-path-style", "--region", "us-east-1",
		"--cache-dir", o.cacheDir, "--cache-size", o.cacheSize, "--log-level", "debug"}, o.extra...)
	args = append(args, "s3://"+testBucket, mp)
	d := startDaemon(t, w.s3.Env(), args...)
	d.mountpoint, d.cacheDir = mp, o.cacheDir
	d.waitMounted()
	t.Cleanup(func() { d.stop() })
	return d
}

// openFDs lists what the daemon's open file descriptors point to
// ("socket:[123]", "/dev/fuse", a path).
func (d *daemon) openFDs() []string {
	d.t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", d.cmd.Process.Pid)
	des, err := os.ReadDir(dir)
	if err != nil {
		d.t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		target, err := os.Readlink(filepath.Join(dir, de.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		out = append(out, target)
	}
	return out
}

// readResult is how one whole-file read in a subprocess ended.
type readResult struct {
	took time.Duration
	err  error // nil: read to the end
	hung bool  // killed at the time limit
	msg  string
	sum  string // sha256 of what was read, if it succeeded
}

// timedSum reads a whole file in a subprocess (sha256sum, as a legacy tool
// would) and says how long it took and how it ended. A read that outlives
// limit is killed and reported as hung.
func timedSum(path string, limit time.Duration) readResult {
	cmd := testenv.Command("sha256sum", path)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return readResult{err: err}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		r := readResult{took: time.Since(start), err: err, msg: strings.TrimSpace(stderr.String())}
		if err == nil {
			r.sum, _, _ = strings.Cut(stdout.String(), " ")
		}
		return r
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		return readResult{took: time.Since(start), hung: true, err: fmt.Errorf("still reading after %v", limit)}
	}
}

// isEIO reports whether a cat failed with EIO.
func (r readResult) isEIO() bool {
	return r.err != nil && !r.hung && strings.Contains(strings.ToLower(r.msg), strings.ToLower(syscall.EIO.Error()))
}

// putRandom uploads size random bytes made from seed as key, and returns
// their sha256; the bytes are not kept, so a test can make many large
// objects without holding them all (testenv.RandomBytes makes them again).
func putRandom(t *testing.T, w *world, key string, seed int64, size int) string {
	t.Helper()
	data := testenv.RandomBytes(seed, size)
	w.s3.Put(t, testBucket, key, data)
	return sha256Hex(data)
}
