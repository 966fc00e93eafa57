package pdfgen

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"s3docs/internal/testenv"
)

func TestOddFilesDeterministic(t *testing.T) {
	a, b := OddFiles(20), OddFiles(20)
	if len(a) != len(b) {
		t.Fatalf("%d files, then %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].PDF, b[i].PDF) || !slices.Equal(a[i].Labels, b[i].Labels) {
			t.Errorf("%s: two calls with one seed differ", a[i].Name)
		}
	}
	// Another seed varies what the classes draw (shifts, image data), not
	// which files there are.
	c := OddFiles(21)
	differ := 0
	for i := range a {
		if a[i].Name != c[i].Name {
			t.Fatalf("file %d is %s with seed 20, %s with seed 21", i, a[i].Name, c[i].Name)
		}
		if !bytes.Equal(a[i].PDF, c[i].PDF) {
			differ++
		}
	}
	if differ < 5 {
		t.Errorf("only %d files depend on the seed", differ)
	}
}

var oddName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func TestOddFilesWellFormed(t *testing.T) {
	files := OddFiles(20)
	names := map[string]bool{}
	classes := map[string]int{}
	for _, f := range files {
		if !oddName.MatchString(f.Name) || names[f.Name] {
			t.Errorf("name %q: not unique or not of [a-z0-9-]", f.Name)
		}
		names[f.Name] = true
		classes[f.Class]++
		if f.About == "" {
			t.Errorf("%s: no About", f.Name)
		}
		if !bytes.HasPrefix(f.PDF, []byte("%PDF-1.")) || !bytes.HasSuffix(f.PDF, []byte("%%EOF\n")) {
			t.Errorf("%s: not a PDF from header to %%%%EOF", f.Name)
		}
		if len(f.PDF) > 128<<10 {
			t.Errorf("%s: %d bytes; odd files are small", f.Name, len(f.PDF))
		}
		if f.Tool != nil && (!slices.Contains([]string{"qpdf", "mutool"}, f.Tool[0]) ||
			!slices.Contains(f.Tool, "IN") || !slices.Contains(f.Tool, "OUT")) {
			t.Errorf("%s: Tool %q", f.Name, f.Tool)
		}
		if len(f.Labels) > 120 {
			t.Errorf("%s: %d pages", f.Name, len(f.Labels))
		}
		seen := map[string]bool{}
		for _, l := range f.Labels {
			if l == "" || (seen[l] && f.Name != "pagetree-page-twice") {
				t.Errorf("%s: label %q empty or repeated", f.Name, l)
			}
			seen[l] = true
		}
	}
	for _, class := range []string{"xref-offsets", "update", "xref-stream", "hybrid", "objstm", "pagetree",
		"inherit", "stream", "inline-image", "borrowed-resources", "encryption"} {
		if classes[class] < 3 {
			t.Errorf("class %s has %d files, want several", class, classes[class])
		}
	}
	for _, name := range []string{"pagetree-issue-empty-node", "pagetree-issue-count-lie", "stream-issue-space-crlf", "inline-issue-ei-lt",
		"form-issue-nested-nores", "annot-issue-ap-nores", "pagetree-issue-missing-kid", "pagetree-issue-deep-300",
		"objstm-issue-first-off-2", "pagetree-issue-kids-freed"} {
		if !names[name] {
			t.Errorf("no file %s", name)
		}
	}
}

// TestOddFilesAsMeant checks the generator against qpdf: every file is
// damaged to qpdf exactly when QpdfWarns says so (so the oddity is really
// in the bytes, and nothing else is), and qpdf's pages, as poppler shows
// them, carry the Labels in order.
func TestOddFilesAsMeant(t *testing.T) {
	qpdf, pdftotext, mutool := testenv.Tool(t, "qpdf"), testenv.Tool(t, "pdftotext"), testenv.Tool(t, "mutool")
	for _, f := range OddFiles(20) {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src, err := f.Make(dir, func(program string, args ...string) error {
				path := map[string]string{"qpdf": qpdf, "mutool": mutool}[program]
				out, err := testenv.Command(path, args...).CombinedOutput()
				var ee *exec.ExitError
				if errors.As(err, &ee) && program == "qpdf" && ee.ExitCode() == 3 {
					return nil // warnings
				}
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			out, err := testenv.Command(qpdf, "--check", src).CombinedOutput()
			warns := err != nil || !strings.Contains(string(out), "No syntax or stream encoding errors found") || strings.Contains(string(out), "WARNING")
			if warns != f.QpdfWarns {
				t.Errorf("qpdf --check warns = %v, QpdfWarns = %v:\n%s", warns, f.QpdfWarns, out)
			}
			if f.Labels == nil {
				return
			}
			if why, ok := qpdfMisreads()[f.Name]; ok {
				t.Logf("qpdf's pages are not the labels: %s", why)
				return
			}
			ref := dir + "/qpdf-pages.pdf"
			var ee *exec.ExitError
			if out, err := testenv.Command(qpdf, "--empty", "--pages", src, "1-z", "--", ref).CombinedOutput(); err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
				t.Fatalf("qpdf --pages: %v\n%s", err, out)
			}
			text, err := testenv.Command(pdftotext, "-enc", "UTF-8", ref, "-").Output()
			if err != nil {
				t.Fatalf("pdftotext of qpdf's pages: %v", err)
			}
			var got []string
			for _, page := range strings.Split(strings.TrimSuffix(string(text), "\f"), "\f") {
				got = append(got, labelLine(page, f.Name))
			}
			if !slices.Equal(got, f.Labels) {
				t.Errorf("qpdf's pages show\n%q\nLabels are\n%q", got, f.Labels)
			}
		})
	}
}

// labelLine returns the line of a page's text that is its label, which
// starts with the file's name ("" if none): not always the first line,
// pdftotext orders rotated pages otherwise.
func labelLine(text, name string) string {
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, name+" page ") {
			return line
		}
	}
	return ""
}

// qpdfMisreads are the files whose pages qpdf does not read as their
// labels say, with what it does instead.
func qpdfMisreads() map[string]string {
	return map[string]string{
		"xref-some-zero": "an object whose offset is 0 is null to qpdf (it warns, and does not rebuild the table): page 3's dictionary is lost " +
			"(its page list has a null there) and page 7's content (blank)",
		"pagetree-kids-null-and-number": "qpdf fails on /Kids holding null: \"operation for dictionary attempted on object of type null\"",
	}
}
