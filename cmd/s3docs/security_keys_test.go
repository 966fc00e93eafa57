package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"s3docs/internal/pdfgen"
)

// hostileKeys are keys that are dangerous as file names. The fs package's
// tests cover them against a fake store (TestHostileKeys); here they go
// through a real server, which accepts some of them.
func hostileKeys() []string {
	long := strings.Repeat("L", 300)
	return []string{
		"..", ".", "../escape.pdf", "a/../../escape.pdf", "a/./dot.pdf", "//", "a//double.pdf", "/lead.pdf",
		"trail/", "trail/marker/", long + ".pdf", "long/" + long + "/x.pdf", "nul\x00.pdf",
		"ctl\n.pdf", "tab\t.pdf", "soh\x01.pdf", "del\x7f.pdf", "esc\x1b[2J.pdf", "bad\xff\xfe.pdf",
		".parts", ".parts/x.pdf", ".parts/x/y.pdf", "ok/-rf", "ok/sp ace.pdf", "ok/ok.pdf",
		"ok/" + strings.Repeat("M", 251) + ".pdf",
	}
}

// hostileContent is what each key holds: a small PDF for .pdf keys, so
// that .parts has something to split.
func hostileContent(key string) []byte {
	if strings.HasSuffix(key, ".pdf") {
		return pdfgen.Bytes(pdfgen.Options{Pages: 2, Title: "k"})
	}
	return []byte("content of " + key)
}

// slogQuoted is how the text log writes key=VALUE.
func slogQuoted(key string) string {
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("", "key", key)
	_, q, _ := strings.Cut(strings.TrimSuffix(b.String(), "\n"), " key=")
	return "key=" + q
}

var (
	chunkFileName = regexp.MustCompile(`^[0-9a-f]{40}-[0-9]+-[0-9a-f]{8}$|^[0-9a-f]{40}(\.map)?$|^lock$`)
	// fsKeyWarning are the fs package's warnings about keys, each due once.
	fsKeyWarning = regexp.MustCompile(`msg="(skipping key|key holds control|key is not valid UTF-8|an object or prefix named .parts|a file and a directory share)`)
)

// TestHostileKeysThroughTheServer puts every hostile key the server takes,
// mounts with --metadata-ttl 0 (every lookup lists again), walks the tree
// and .parts three times and reads every file: each key is shown with its
// bytes or skipped, each skipped or odd key is warned about exactly once,
// the cache holds only hash-named files, nothing appears beside the cache
// or the mount point, and the daemon exits 0.
func TestHostileKeysThroughTheServer(t *testing.T) {
	w := newWorld(t)
	var accepted, refused []string
	want := map[string][]byte{}
	for _, key := range hostileKeys() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		b := hostileContent(key)
		_, err := w.s3.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: bytes.NewReader(b)})
		cancel()
		if err != nil {
			refused = append(refused, key)
			t.Logf("server refused %q: %v", key, firstLine(err.Error()))
			continue
		}
		accepted = append(accepted, key)
		want[key] = b
	}
	t.Logf("server accepted %d keys: %q", len(accepted), accepted)
	t.Logf("server refused %d keys: %q", len(refused), refused)

	base := t.TempDir()
	cacheDir := filepath.Join(base, "cache")
	mp := filepath.Join(base, "mnt")
	for _, dir := range []string{cacheDir, mp} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	d := w.mount(t, mountOpts{cacheDir: cacheDir, mountpoint: mp, extra: []string{"--metadata-ttl", "0"}})

	// The key ".parts" (accepted) must not bring the tree of parts into
	// the root's listing, where find and du would walk it.
	if slicesContains(readDirNames(t, d.mountpoint), ".parts") {
		t.Fatal("the root lists .parts")
	}
	var shown []string
	for round := 0; round < 3; round++ {
		shown = shown[:0]
		err := filepath.WalkDir(d.mountpoint, func(path string, de os.DirEntry, err error) error {
			if err != nil {
				t.Errorf("walk %q: %v", path, err)
				return nil
			}
			rel, _ := filepath.Rel(d.mountpoint, path)
			if de.Type().IsRegular() {
				shown = append(shown, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// .parts: a directory per PDF, whose listing asks for a page count.
		filepath.WalkDir(d.path(".parts"), func(path string, de os.DirEntry, err error) error {
			if err != nil && !strings.ContainsRune(path, utf8.RuneError) {
				t.Errorf("walk %q: %v", path, err)
			}
			return nil
		})
	}
	sort.Strings(shown)
	t.Logf("the mount shows %d files: %q", len(shown), shown)
	// versitygw keeps objects as files: it stores "a//b" and "a/./b" as
	// "a/b", and lists them so. Its listing XML cannot carry control
	// characters other than \t and \n, nor invalid UTF-8: it sends U+FFFD
	// instead, and that name is no key (GET: NoSuchKey).
	byName := map[string][]byte{}
	for key, b := range want {
		byName[strings.TrimPrefix(path.Clean(key), "/")] = b
	}
	mangled := 0
	for _, rel := range shown {
		if strings.ContainsRune(rel, utf8.RuneError) {
			mangled++
			if _, err := os.ReadFile(d.path(rel)); err == nil {
				t.Errorf("%q: read succeeded; it is no key", rel)
			} else {
				t.Logf("%q: %v", rel, err)
			}
			continue
		}
		b, ok := byName[rel]
		if !ok {
			t.Errorf("the mount shows %q, which is no key", rel)
			continue
		}
		got, err := os.ReadFile(d.path(rel))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%q: %d bytes, %v; want the object's %d", rel, len(got), err, len(b))
		}
		if strings.HasSuffix(rel, ".pdf") {
			part := d.path(filepath.Join(".parts", rel, "pages-2-2.pdf"))
			if pb, err := os.ReadFile(part); err != nil || !bytes.HasPrefix(pb, []byte("%PDF-")) {
				t.Errorf("part of %q: %d bytes, %v", rel, len(pb), err)
			}
		}
	}
	t.Logf("%d names mangled by the listing", mangled)

	// One warning per skipped or odd key, however often it was listed.
	logs := d.stderr.String()
	warnings := 0
	perKey := map[string]int{}
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "level=WARN") || !fsKeyWarning.MatchString(line) {
			continue
		}
		warnings++
		i := strings.Index(line, " key=")
		if i < 0 {
			continue
		}
		k, _, _ := strings.Cut(line[i+1:], " ")
		perKey[k]++
	}
	for k, n := range perKey {
		if n != 1 {
			t.Errorf("warned %d times: %s", n, k)
		}
	}
	t.Logf("%d warnings about keys", warnings)
	for _, key := range []string{"ctl\n.pdf", "tab\t.pdf", "del\x7f.pdf", ".parts"} {
		if slicesContains(accepted, key) && perKey[slogQuoted(key)] != 1 {
			t.Errorf("no warning names %q", key)
		}
	}

	// The cache holds objects' files, their maps and blobs by hash only;
	// nothing beside it.
	var stray []string
	filepath.WalkDir(cacheDir, func(path string, de os.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() && !chunkFileName.MatchString(de.Name()) {
			stray = append(stray, strings.TrimPrefix(path, cacheDir))
		}
		return nil
	})
	if len(stray) > 0 {
		t.Errorf("cache files not named by hash: %q", stray)
	}
	if des, _ := os.ReadDir(base); len(des) != 2 {
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		t.Errorf("beside the cache and the mount point: %q", names)
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if strings.Contains(logs, "panic") {
		t.Fatalf("the daemon panicked:\n%s", logs)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
