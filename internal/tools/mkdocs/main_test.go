package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"s3docs/mountopts"
)

// repoRoot is the directory of go.mod above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The option table checked in is the one the generator writes from the
// code's option table: an option added, removed or reworded in mountopts
// and not in the document fails here.
func TestConfigurationDocIsGenerated(t *testing.T) {
	doc := readRepoFile(t, "docs/configuration.md")
	want, err := withTable([]byte(doc))
	if err != nil {
		t.Fatalf("docs/configuration.md: %v", err)
	}
	if string(want) != doc {
		got, gen := strings.Split(doc, "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(got) && i < len(gen) && got[i] == gen[i] {
			i++
		}
		line := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(end of file)"
		}
		t.Errorf("docs/configuration.md's option table is not the one mountopts generates: run\n\t%s\nand commit the result. First difference, line %d:\n\thave: %s\n\twant: %s",
			regenerate, i+1, line(got), line(gen))
	}
}

// Every flag of `s3docs mount`, with its argument and its -o key, is in
// docs/configuration.md: a second check, by name, that also holds the
// generator to listing every option.
func TestConfigurationDocListsEveryOption(t *testing.T) {
	doc := readRepoFile(t, "docs/configuration.md")
	opts := mountopts.Options()
	if len(opts) < 20 {
		t.Fatalf("mountopts.Options() has %d options: the test would prove little", len(opts))
	}
	for _, generated := range []bool{false, true} {
		text := doc
		if generated {
			text = optionTable()
		}
		for _, o := range opts {
			flag := "`--" + o.Name
			if o.Arg != "" {
				flag += " " + o.Arg
			}
			flag += "`"
			if !strings.Contains(text, "| "+flag+" |") {
				t.Errorf("generated=%v: no row for %s (run %s)", generated, flag, regenerate)
			}
			if o.Fstab != "" && !strings.Contains(text, "| `"+o.Fstab+"` |") {
				t.Errorf("generated=%v: no -o key `%s` for --%s (run %s)", generated, o.Fstab, o.Name, regenerate)
			}
		}
	}
}

// markdownFiles are the repository's Markdown files, relative to root.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "build", "dist", "testdata", "node_modules", "mnt":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".md") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	for _, must := range []string{"README.md", "docs/configuration.md", "docs/semantics.md"} {
		if i := sort.SearchStrings(files, must); i == len(files) || files[i] != must {
			t.Fatalf("%s not found among %v", must, files)
		}
	}
	return files
}

// prose is a Markdown text line by line, with the lines of fenced code
// blocks blanked (they hold commands, not links or headings).
func prose(text string) []string {
	lines := strings.Split(text, "\n")
	fenced := false
	for i, line := range lines {
		fence := strings.HasPrefix(strings.TrimSpace(line), "```")
		if fence || fenced {
			lines[i] = ""
		}
		if fence {
			fenced = !fenced
		}
	}
	return lines
}

var codeSpan = regexp.MustCompile("`[^`]*`")

// anchors are the fragment identifiers a Markdown renderer (GitHub's)
// gives the headings of text: lower case, punctuation dropped, spaces
// as hyphens, and -1, -2, ... on repeats.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range prose(text) {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slug := b.String()
		if n := seen[slug]; n > 0 {
			out[slug+"-"+strconv.Itoa(n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// Every relative link in the repository's Markdown leads to a file that
// exists, and its #anchor to a heading of that file.
func TestMarkdownLinksResolve(t *testing.T) {
	root := repoRoot(t)
	checked := 0
	for _, rel := range markdownFiles(t, root) {
		text := readRepoFile(t, rel)
		for n, line := range prose(text) {
			line = codeSpan.ReplaceAllString(line, "")
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				path, frag, _ := strings.Cut(target, "#")
				file := rel
				if path != "" {
					file = filepath.Join(filepath.Dir(rel), path)
				}
				b, err := os.ReadFile(filepath.Join(root, file))
				if err != nil {
					t.Errorf("%s:%d: link %q: %v", rel, n+1, target, err)
					continue
				}
				if frag != "" && !anchors(string(b))[frag] {
					t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", rel, n+1, target, file, frag)
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d relative links found: the test would prove little", checked)
	}
}

// Flags that README and the documents name besides those of `s3docs
// mount`: other commands' and other programs', each with its owner.
var otherFlags = map[string]string{
	"help":           "s3docs --help, s3docs mount --help",
	"check":          "scripts/demo.sh --check; qpdf --check",
	"mount":          "s3docs warm --mount",
	"pages":          "qpdf --empty --pages",
	"empty":          "qpdf --empty --pages",
	"show-npages":    "qpdf --show-npages",
	"aws-sigv4":      "curl --aws-sigv4",
	"vfs-cache-mode": "rclone mount --vfs-cache-mode",
}

var (
	docFlag     = regexp.MustCompile(`(?:^|[^A-Za-z0-9-])--([a-z][a-z0-9-]*)`)
	benchFlag   = regexp.MustCompile(`\[--([a-z][a-z0-9-]*)`)
	docFstabKey = regexp.MustCompile(`\b([a-z]+(?:_[a-z]+)+)=`)
)

// README and the documents name no flag that `s3docs mount` lacks (a
// renamed or removed option left behind in the prose), and no -o key.
func TestDocsNameOnlyRealOptions(t *testing.T) {
	root := repoRoot(t)
	known := map[string]string{}
	fstab := map[string]bool{}
	for _, o := range mountopts.Options() {
		known[o.Name] = "s3docs mount"
		if o.Fstab != "" {
			fstab[o.Fstab] = true
		}
	}
	for name, owner := range otherFlags {
		known[name] = owner
	}
	// scripts/bench.sh's own flags, from its usage line.
	bench := readRepoFile(t, "scripts/bench.sh")
	_, usage, ok := strings.Cut(bench, "# Usage: scripts/bench.sh")
	if !ok {
		t.Fatal("scripts/bench.sh has no line \"# Usage: scripts/bench.sh ...\"")
	}
	usage, _, _ = strings.Cut(usage, "\n#\n")
	for _, m := range benchFlag.FindAllStringSubmatch(usage, -1) {
		known[m[1]] = "scripts/bench.sh"
	}
	if known["rounds"] != "scripts/bench.sh" {
		t.Fatalf("found no flags in scripts/bench.sh's usage:\n%s", usage)
	}
	seen := 0
	for _, rel := range markdownFiles(t, root) {
		text := readRepoFile(t, rel)
		for _, m := range docFlag.FindAllStringSubmatch(text, -1) {
			seen++
			if _, ok := known[m[1]]; !ok {
				t.Errorf("%s names --%s, which s3docs mount does not have (nor any command the documents use)", rel, m[1])
			}
		}
		for _, m := range docFstabKey.FindAllStringSubmatch(text, -1) {
			seen++
			if !fstab[m[1]] {
				t.Errorf("%s names the -o key %s=, which s3docs mount does not have", rel, m[1])
			}
		}
	}
	if seen < 50 {
		t.Errorf("only %d flags found in the documents: the test would prove little", seen)
	}
}
