package fs

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"s3docs/internal/object"
)

// TestHostileKeys lists a bucket of keys that are dangerous as file names:
// each is either skipped or shown under its own bytes, and logged once
// however often it is listed; none reaches outside the tree; .parts keys
// never show up in (or take over) the tree of parts.
func TestHostileKeys(t *testing.T) {
	long := strings.Repeat("L", 300)
	max := strings.Repeat("M", 251) + ".pdf" // 255 bytes: the longest name
	skipped := map[string]string{
		// key → the key the warning names (a directory's, for a bad segment)
		"..":                  "..",
		".":                   ".",
		"//":                  "/",
		"/lead.pdf":           "/",
		"a//b.pdf":            "a//",
		"a/./c.pdf":           "a/./",
		"a/../../etc/passwd":  "a/../",
		"../../escape.pdf":    "../",
		long + ".pdf":         long + ".pdf",
		long + "/x.pdf":       long + "/",
		"nul\x00.pdf":         "nul\x00.pdf",
		"dir/nul\x00/x.pdf":   "dir/nul\x00/",
		".parts":              ".parts",
		".parts/x.pdf":        ".parts",
		".parts/x/inner.pdf":  ".parts",
		"dir/sub/..":          "dir/sub/..",
		"dir/sub/.":           "dir/sub/.",
		"trail/" + long + "/": "trail/" + long + "/",
	}
	shown := map[string]string{
		// key → what its file name is
		"ctl\n.pdf":          "ctl\n.pdf",
		"tab\t.pdf":          "tab\t.pdf",
		"soh\x01.pdf":        "soh\x01.pdf",
		"del\x7f.pdf":        "del\x7f.pdf",
		"esc\x1b[31m.pdf":    "esc\x1b[31m.pdf",
		"bad\xff\xfe.pdf":    "bad\xff\xfe.pdf",
		max:                  max,
		"dir/ok.pdf":         "ok.pdf",
		"trail/marker/":      "", // a folder marker: the directory trail/marker, empty
		"dir/sp ace .pdf":    "sp ace .pdf",
		"dir/-rf":            "-rf",
		"dir/back\\sl.pdf":   "back\\sl.pdf",
		"dir/\u202eevil.pdf": "\u202eevil.pdf",
	}
	store := &fakeStore{Objs: map[string]object.Version{}}
	content := newContents(map[string][]byte{})
	pages := map[string]int{}
	i := 0
	for _, m := range []map[string]string{skipped, shown} {
		for key := range m {
			i++
			etag := `"` + strings.Repeat("e", i) + `"`
			store.Objs[key] = version(key, etag, len(key))
			content.set("etag:"+etag, []byte(key))
			if isPDFKey(key) {
				pages[key] = 3
			}
		}
	}
	parts := &fakeParts{pages: pages, dir: t.TempDir()}
	mp, logs := mountFake(t, store, content, time.Minute, func(o *Options) {
		o.Parts = parts
		o.PartPages = 2
	})
	path := func(rel string) string { return mp + "/" + rel }

	// Three rounds: the warnings must not repeat.
	for round := 0; round < 3; round++ {
		want := []string{"a", "bad\xff\xfe.pdf", "ctl\n.pdf", "del\x7f.pdf", "dir", "esc\x1b[31m.pdf", max, "soh\x01.pdf", "tab\t.pdf", "trail"}
		sort.Strings(want)
		if got := names(t, mp); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("root lists %q\nwant %q", got, want)
		}
		if got := names(t, path("a")); len(got) != 0 {
			t.Fatalf("a/ lists %q", got)
		}
		if got := strings.Join(names(t, path("dir")), "|"); got != "-rf|back\\sl.pdf|ok.pdf|sp ace .pdf|sub|\u202eevil.pdf" {
			t.Fatalf("dir/ lists %q", got)
		}
		if got := names(t, path("dir/sub")); len(got) != 0 {
			t.Fatalf("dir/sub/ lists %q", got)
		}
		if got := strings.Join(names(t, path("trail")), "|"); got != "marker" {
			t.Fatalf("trail/ lists %q", got)
		}
		if got := names(t, path("trail/marker")); len(got) != 0 {
			t.Fatalf("trail/marker/ lists %q", got)
		}
		// The tree of parts mirrors the same names, PDFs only.
		wantParts := []string{"a", "bad\xff\xfe.pdf", "ctl\n.pdf", "del\x7f.pdf", "dir", "esc\x1b[31m.pdf", max, "soh\x01.pdf", "tab\t.pdf", "trail"}
		sort.Strings(wantParts)
		if got := names(t, path(".parts")); strings.Join(got, "|") != strings.Join(wantParts, "|") {
			t.Fatalf(".parts lists %q\nwant %q", got, wantParts)
		}
	}
	// Shown names read their own bytes, under .parts too.
	for key, name := range shown {
		if name == "" {
			continue
		}
		b, err := os.ReadFile(path(key))
		if err != nil || string(b) != key {
			t.Errorf("%q: read %q, %v", key, b, err)
		}
		if isPDFKey(key) {
			got := names(t, path(".parts/"+key))
			if strings.Join(got, ",") != "pages-0001-0002.pdf,pages-0003-0003.pdf" {
				t.Errorf(".parts/%q lists %q", key, got)
			}
			b, err := os.ReadFile(path(".parts/" + key + "/pages-2-3.pdf"))
			if want := key + ":2-3"; err != nil || string(b) != want {
				t.Errorf(".parts/%q/pages-2-3.pdf: %q, %v", key, b, err)
			}
		}
	}

	// What a client may look up by hand: never outside the tree, never a
	// skipped key.
	for _, rel := range []string{
		".parts/.parts", ".parts/.parts/x.pdf", ".parts/x.pdf", ".parts/x", "a/b.pdf", "dir/sub/x",
		".parts/dir/ok.pdf/pages-1-1.pdf\n", ".parts/dir/ok.pdf/pages-1-1.pdf\x01", ".parts/dir/ok.pdf/pages-\u0661-1.pdf",
		".parts/dir/ok.pdf/pages-1-1.pdf ", ".parts/dir/ok.pdf/ pages-1-1.pdf", ".parts/dir/ok.pdf/pages-1-1.pdf.pdf",
		".parts/dir/ok.pdf/pages-1-99999999999.pdf", ".parts/dir/ok.pdf/" + long, ".parts/dir/-rf", ".parts/dir/ok.pdf/x",
		".parts/ctl\n.pdf/.parts", "ctl\n.pdf/x", "nul", ".parts/trail/marker/x.pdf",
	} {
		_, err := os.Lstat(path(rel))
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("lookup %q: %v, want ENOENT, ENOTDIR or ENAMETOOLONG", rel, err)
		}
	}
	// ".." walks up inside the tree, and from its root to the mount's
	// parent, as on any file system: never into the bucket's other keys.
	same := func(a, b string) {
		t.Helper()
		sa, err1 := os.Stat(path(a))
		sb, err2 := os.Stat(b)
		if err1 != nil || err2 != nil {
			t.Fatalf("stat %q, %q: %v, %v", a, b, err1, err2)
		}
		if !os.SameFile(sa, sb) {
			t.Errorf("%q is not %q", path(a), b)
		}
	}
	same(".parts/dir/ok.pdf/..", path(".parts/dir"))
	same(".parts/dir/ok.pdf/../..", path(".parts"))
	same(".parts/dir/ok.pdf/../../..", mp)
	same(".parts/dir/ok.pdf/../../../..", filepath.Dir(mp))
	same(".parts/../dir/./ok.pdf", path("dir/ok.pdf"))
	same("dir/../.parts/dir/../dir/ok.pdf/pages-1-2.pdf", path(".parts/dir/ok.pdf/pages-0001-0002.pdf"))

	// Every skipped key and every odd name warned about exactly once; the
	// log is one line per record (names are quoted, not raw).
	warned := map[string]int{}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	for _, line := range lines {
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("a log record spans lines: %q", line)
		}
		if !strings.Contains(line, "level=WARN") {
			continue
		}
		_, key, _ := strings.Cut(line, " key=")
		warned[key]++
	}
	wantWarned := map[string]bool{}
	for _, key := range skipped {
		wantWarned[quoteKey(key)] = true
	}
	for key, name := range shown {
		if !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
			wantWarned[quoteKey(key)] = true
		}
	}
	for key, n := range warned {
		if n != 1 {
			t.Errorf("key=%s warned %d times", key, n)
		}
		if !wantWarned[key] {
			t.Errorf("unexpected warning for key=%s", key)
		}
	}
	for key := range wantWarned {
		if warned[key] == 0 {
			t.Errorf("no warning for key=%s:\n%s", key, logs.String())
		}
	}
	t.Logf("%d keys skipped, %d shown, %d warnings", len(skipped), len(shown), len(warned))
}

// quoteKey is how slog's text handler writes a key attribute.
func quoteKey(key string) string {
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("", "key", key)
	_, q, _ := strings.Cut(strings.TrimSuffix(b.String(), "\n"), " key=")
	return q
}
