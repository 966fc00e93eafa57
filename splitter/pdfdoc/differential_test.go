package pdfdoc

// The differential test of issue 20: every odd file of pdfgen.OddFiles is
// read by pdfdoc and by qpdf, and every part pdfdoc makes is compared with
// qpdf's pages.
//
// qpdf's view of a source:
//   - qpdf --check: clean, or the warnings and errors it reports;
//   - its page list (qpdf --json's "pages", in the order qpdf --pages
//     numbers them). --show-npages, which only reports the root's /Count,
//     is logged where it differs. An entry that is null (a missing or free
//     object in /Kids, which qpdf warns about and would copy as a null
//     page) is no page: qpdf's pages are the others, as poppler and
//     --show-npages count them;
//   - REF = qpdf --empty --remove-unreferenced-resources=no --pages SRC
//     <its pages> -- REF, whose page i is qpdf's page i: its text
//     (pdftotext), its boxes and rotation (pdfinfo -box), and what qpdf
//     --check says of it. Resources are kept whole, so that qpdf's own
//     content parsing cannot drop a font.
//
// pdfdoc's view: Open over the bytes; PageCount must equal the number of
// qpdf's pages (or, for a file with null entries, the length of qpdf's
// list: then pdfdoc may only refuse those pages). Then parts: the
// listing's parts of 3 pages (and of 50 for files over 50 pages), every
// single page, all pages and three seeded random ranges, extracted from
// one Doc in a seeded random order, and each again from a fresh Doc, which
// must give the same bytes (a part may not depend on what was asked
// before). Every part must pass qpdf --check (but for what qpdf --check
// also says of REF: a content stream it cannot parse, copied as it is),
// and have qpdf's pages: their number, pdftotext of each page, and
// pdfinfo's size, rotation and boxes of each page. For the random ranges
// qpdf --empty --pages SRC A-B is run as well and must equal REF's pages
// (the test's assumption that REF stands for every range).
//
// A refusal (an error from Open or Extract) is allowed only for a file
// that qpdf warns about or rejects; it is logged with both reasons. A part
// that differs from qpdf's pages always fails. knownBroken (in
// differential_known_test.go) lists the files pdfdoc is known to fail:
// their failures are logged, not failed, unless S3DOCS_DIFF_STRICT is set;
// a listed file that passes fails the test, so the list only shrinks.
// TestDifferential ends with a summary line per file.
//
// TestIssue20Regressions runs the files that issue 20 names, one subtest
// each (go test -run 'TestIssue20Regressions/files/NAME'), strictly (no
// refusal allowed), after confirming with qpdf, poppler and mutool that
// each file is what the issue says.
//
// The tools' answers are remembered for the test process by the bytes
// they read (toolAnswers), so that go test -count=N asks them once.
//
// With S3DOCS_DIFF_WRITE_CORPUS=1, both tests write the files that fail,
// and a third of the others, to testdata/fuzz/FuzzOpenExtract.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"s3docs/internal/pdfgen"
	"s3docs/internal/testenv"
)

// diffSeed is the seed of pdfgen.OddFiles and of the random ranges.
const diffSeed = 20

// diffIssueFiles are the files issue 20 names, with what the file is to
// qpdf, poppler and mutool (confirmed by TestIssue20Regressions before
// pdfdoc reads it). The comments record what qpdf 11.3.0, poppler 22.12
// and mutool 1.21.1 say of the source.
var diffIssueFiles = []diffIssueFile{
	// Case 1. qpdf --check: no errors; --show-npages 102; its pages are
	// p1..p102 in order. poppler and mutool agree.
	{name: "pagetree-issue-empty-node"},
	// Case 1's /Count lie. qpdf --check: no errors; --show-npages 48 (the
	// root's /Count), but its page list (--pages 1-z, --json) has the 50
	// pages in order. pdfinfo and mutool say 48 pages and show pages 1-48.
	{name: "pagetree-issue-count-lie", shown: 48},
	// Case 2. qpdf --check: "WARNING: ... (object 8 0, offset 495): stream
	// keyword followed by extraneous whitespace", one per content stream,
	// and it reads every page's text; so do poppler and mutool.
	{name: "stream-issue-space-crlf", warns: true},
	// Case 3. qpdf --check: no errors; poppler and mutool show the Courier
	// text after the image.
	{name: "inline-issue-ei-lt", mark: "Courier after the image"},
	// Case 4. qpdf --check: no errors; poppler and mutool show the Times
	// text of the inner form.
	{name: "form-issue-nested-nores", mark: "Times from a form without resources"},
	// Case 4, annotations. qpdf --check: no errors; poppler and mutool show
	// the appearance's Times text.
	{name: "annot-issue-ap-nores", mark: "Appearance in Times"},
	// Compatibility. qpdf --check: "WARNING: object 67 0: operation for
	// dictionary attempted on object of type null" (and "/Type key should
	// be /Page but is not; overriding"); --show-npages 10; its page list
	// has 11 entries, the missing object a null one, the others the 10
	// pages in order. poppler shows the 10 pages; mutool draw shows 10
	// pages (the root's /Count) with a blank one for the missing kid, so
	// pages 5-9 one place late and not page 10.
	{name: "pagetree-issue-missing-kid", warns: true, mutoolBlank: true},
	// Compatibility. qpdf --check: no errors; 7 pages, 300 levels deep;
	// poppler agrees. mutool refuses: "error: too much recursion in tree
	// (parents)".
	{name: "pagetree-issue-deep-300", mutoolNot: true},
	// Compatibility. qpdf --check: no errors; 12 pages, and mutool agrees:
	// both read the object stream's header from its start, and /First 2
	// bytes short lands in the 2 newlines before each object. poppler
	// stops the header at /First, so it reads the root's offset without
	// its last 2 digits: "Syntax Error: Top-level pages object is wrong
	// type (null)". (With white space at the header's end, all three
	// cope: objstm-first-minus-2-padded.)
	{name: "objstm-issue-first-off-2", popplerNot: true},
	// Compatibility. qpdf --check: "WARNING: object 27 0: operation for
	// dictionary attempted on object of type null" (as for the missing
	// kid); --show-npages 10; 11 entries in its page list, one null.
	// poppler shows the 10 pages; mutool draw 10 with a blank one for the
	// freed kid, so not page 10.
	{name: "pagetree-issue-kids-freed", warns: true, mutoolBlank: true},
}

type diffIssueFile struct {
	name  string
	warns bool // qpdf --check warns about the source
	// What poppler and mutool make of it: popplerNot and mutoolNot, they
	// cannot read it; mutoolBlank, mutool draw shows a blank page for a
	// null kid and stops at the root's /Count, before the last page;
	// shown, they show only the first shown pages (0: all).
	popplerNot, mutoolNot, mutoolBlank bool
	shown                              int
	mark                               string // text the case is about, which every reader shows
}

// diffStrict: known failures fail too.
func diffStrict() bool { return os.Getenv("S3DOCS_DIFF_STRICT") != "" }

func TestDifferential(t *testing.T) {
	dt := newDiffTools(t)
	issue := map[string]bool{}
	for _, f := range diffIssueFiles {
		issue[f.name] = true
	}
	var files []pdfgen.OddFile
	for _, f := range pdfgen.OddFiles(diffSeed) {
		if !issue[f.Name] {
			files = append(files, f)
		}
	}
	outcomes := make([]*diffOutcome, len(files))
	t.Run("files", func(t *testing.T) {
		for i, f := range files {
			t.Run(f.Name, func(t *testing.T) {
				t.Parallel()
				o := dt.check(t, f)
				outcomes[i] = o
				o.judge(t, false)
			})
		}
	})
	diffSummary(t, outcomes)
	diffWriteCorpus(t, outcomes)
}

func TestIssue20Regressions(t *testing.T) {
	dt := newDiffTools(t)
	byName := map[string]pdfgen.OddFile{}
	for _, f := range pdfgen.OddFiles(diffSeed) {
		byName[f.Name] = f
	}
	outcomes := make([]*diffOutcome, len(diffIssueFiles))
	t.Run("files", func(t *testing.T) {
		for i, want := range diffIssueFiles {
			t.Run(want.name, func(t *testing.T) {
				t.Parallel()
				f, ok := byName[want.name]
				if !ok {
					t.Fatalf("pdfgen.OddFiles has no file %s", want.name)
				}
				o := dt.check(t, f)
				outcomes[i] = o
				dt.confirm(t, f, o, want)
				o.judge(t, true)
			})
		}
	})
	diffWriteCorpus(t, outcomes)
}

// confirm checks that an issue file is what the issue says: qpdf warns
// about it or not, and qpdf, poppler and mutool show the pages the
// producer meant, in order, as recorded in diffIssueFiles.
func (dt *diffTools) confirm(t *testing.T, f pdfgen.OddFile, o *diffOutcome, want diffIssueFile) {
	t.Helper()
	if o.qpdf.rejects != "" {
		t.Fatalf("qpdf rejects the source: %s", o.qpdf.rejects)
	}
	if got := o.qpdf.complaints != ""; got != want.warns {
		t.Fatalf("qpdf --check warns = %v, want %v:\n%s", got, want.warns, o.qpdf.complaints)
	}
	if f.Labels == nil {
		t.Fatalf("%s has no labels to confirm", f.Name)
	}
	if got := diffFirstLines(o.qpdf.texts); !slices.Equal(got, f.Labels) {
		t.Fatalf("qpdf's pages are not the producer's:\ngot  %q\nwant %q", got, f.Labels)
	}
	ctx := context.Background()
	shown := f.Labels
	if want.shown > 0 {
		shown = shown[:want.shown]
	}
	readers := map[string]string{"qpdf": strings.Join(o.qpdf.texts, "\f")}
	for _, v := range []struct {
		who  string
		not  bool
		args []string
	}{
		{"poppler", want.popplerNot, []string{dt.pdftotext, "-enc", "UTF-8", o.src, "-"}},
		{"mutool", want.mutoolNot, []string{dt.mutool, "draw", "-F", "txt", o.src}},
	} {
		r := dt.query(ctx, v.args[0], v.args[1:]...)
		pages := diffSplitPages(r.stdout)
		expect := shown
		if v.who == "mutool" && want.mutoolBlank {
			n := len(pages)
			pages = slices.DeleteFunc(pages, func(p string) bool { return p == "" })
			if n-len(pages) != 1 {
				t.Fatalf("mutool shows %d blank pages, want 1 (for the null kid)", n-len(pages))
			}
			expect = shown[:len(shown)-1]
		}
		got := diffFirstLines(pages)
		if v.not {
			if r.err == nil && slices.Equal(got, expect) {
				t.Fatalf("%s reads it, though recorded as not reading it", v.who)
			}
			t.Logf("%s does not read it, as recorded: %v %s", v.who, r.err, diffFirstLine(r.stderr))
			continue
		}
		if r.err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(v.args, " "), r.err, r.stderr)
		}
		if !slices.Equal(got, expect) {
			t.Fatalf("%s's pages are not the producer's:\ngot  %q\nwant %q", v.who, got, expect)
		}
		readers[v.who] = r.stdout
	}
	if want.mark != "" {
		for who, text := range readers {
			if !strings.Contains(text, want.mark) {
				t.Fatalf("%s does not show %q", who, want.mark)
			}
		}
	}
	t.Logf("confirmed: %s read the %d pages as meant; qpdf --check: %s", strings.Join(slices.Sorted(maps.Keys(readers)), ", "),
		len(f.Labels), cmp.Or(diffFirstLine(o.qpdf.complaints), "clean"))
}

// diffTools runs the external programs, at most a few at a time.
type diffTools struct {
	qpdf, pdftotext, pdfinfo, mutool string
	sem                              chan struct{}
}

func newDiffTools(t *testing.T) *diffTools {
	return &diffTools{
		qpdf:      testenv.Tool(t, "qpdf"),
		pdftotext: testenv.Tool(t, "pdftotext"),
		pdfinfo:   testenv.Tool(t, "pdfinfo"),
		mutool:    testenv.Tool(t, "mutool"),
		sem:       make(chan struct{}, runtime.GOMAXPROCS(0)+1),
	}
}

type diffRun struct {
	stdout, stderr string
	exit           int   // -1: did not run to its end
	err            error // nil for exit status 0
}

// run runs a program in the C locale with a deadline.
func (dt *diffTools) run(ctx context.Context, path string, args ...string) diffRun {
	dt.sem <- struct{}{}
	defer func() { <-dt.sem }()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	base := testenv.Command(path, args...)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = base.Env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := diffRun{stdout: out.String(), stderr: errOut.String(), err: err}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.exit = ee.ExitCode()
	default:
		r.exit = -1
	}
	return r
}

// query is run for a program that writes no files (its answer is its
// output and exit status), answered from toolAnswers when the program was
// asked the same of the same bytes before.
func (dt *diffTools) query(ctx context.Context, path string, args ...string) diffRun {
	return toolAnswers.ask(path, args, func() (diffRun, bool) {
		r := dt.run(ctx, path, args...)
		return r, r.exit >= 0 // it ran to its end: not cut by the deadline or a signal
	})
}

// diffQpdfView is what qpdf makes of a source.
type diffQpdfView struct {
	complaints string // qpdf's warnings and errors about the source; "" none
	rejects    string // why qpdf gives no pages; "" it does
	npages     int    // --show-npages; -1 when it failed
	listed     int    // entries of its page list, null ones included
	nulls      []int  // positions (1-based) of the null entries
	ref        string // its pages as a file
	texts      []string
	boxes      []string
	// refKinds are the kinds of complaint (diffComplaintKind) of qpdf --check
	// about ref; nil when it has none.
	refKinds map[string]bool
}

// diffOutcome is the result of one file.
type diffOutcome struct {
	name, class, about string
	src                string
	data               []byte
	qpdf               diffQpdfView
	count              int    // pdfdoc's PageCount; -1: Open failed
	openErr            string // why Open failed
	parts              int    // parts made
	refused            []string
	orderDiffs         []string // ranges whose part a fresh Doc makes differently
	wrong              []string // differences from qpdf and broken parts
	harness            []string // assumptions of the test that did not hold
	// unexplained: refusals of parts that hold none of qpdf's null
	// entries.
	unexplained int
	// raw: pdfdoc's pages are qpdf's page list entries, nulls included.
	raw bool
	// labels is the producer's first line of every page (pdfgen's
	// Labels); offLabel counts the parts' pages that do not show theirs.
	labels   []string
	offLabel int
	// singles[i] is the label line (diffLabelLine) of the single-page part of
	// page i where its text differs from qpdf's page i: pdfdoc's, qpdf's;
	// freshSingles the same of the parts made by a fresh Doc.
	singles, freshSingles map[int][2]string
}

// diffPart is a part to check: the range, the file, whether it is a
// random range, and whether a fresh Doc made it (where that differs).
type diffPart struct {
	r             [2]int
	path          string
	random, fresh bool
}

func (o *diffOutcome) addWrong(format string, args ...any) {
	o.wrong = append(o.wrong, fmt.Sprintf(format, args...))
}

// failed: a part differs, or pdfdoc refused what it may not.
func (o *diffOutcome) failed(strict bool) bool {
	if len(o.wrong) > 0 {
		return true
	}
	// A part that holds one of qpdf's null entries, which qpdf can only
	// copy as a broken page, may always be refused.
	refused := o.openErr != "" || o.unexplained > 0
	return refused && (strict || (o.qpdf.complaints == "" && o.qpdf.rejects == ""))
}

func (o *diffOutcome) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s\n", o.name, o.class, o.about)
	fmt.Fprintf(&b, "  qpdf: %s\n", o.qpdf.summary())
	switch {
	case o.openErr != "":
		fmt.Fprintf(&b, "  pdfdoc: Open fails: %s\n", o.openErr)
	default:
		fmt.Fprintf(&b, "  pdfdoc: %d pages; %d parts made, %d refused\n", o.count, o.parts, len(o.refused))
	}
	for i, r := range o.refused {
		if i == 5 {
			fmt.Fprintf(&b, "  ... %d more refusals\n", len(o.refused)-5)
			break
		}
		fmt.Fprintf(&b, "  refused: %s\n", r)
	}
	if o.raw {
		fmt.Fprintf(&b, "  pdfdoc's pages are qpdf's page list with its null entries\n")
	}
	if len(o.singles) > 0 {
		fmt.Fprintf(&b, "  single-page parts: %s\n", diffSinglesSummary(o.singles))
	}
	if len(o.freshSingles) > 0 {
		fmt.Fprintf(&b, "  single-page parts, each from a fresh Doc: %s\n", diffSinglesSummary(o.freshSingles))
	}
	for i, w := range o.wrong {
		if i == 12 {
			fmt.Fprintf(&b, "  ... %d more differences\n", len(o.wrong)-12)
			break
		}
		fmt.Fprintf(&b, "  WRONG: %s\n", w)
	}
	if len(o.wrong) > 12 {
		var parts []string
		for _, w := range o.wrong {
			if m := diffPartName.FindStringSubmatch(w); m != nil && !slices.Contains(parts, m[1]+m[2]) {
				parts = append(parts, m[1]+m[2])
			}
		}
		fmt.Fprintf(&b, "  wrong parts (%d; %d made, and %d again by a fresh Doc): %s\n", len(parts), o.parts, len(o.orderDiffs), strings.Join(parts, ", "))
	}
	if len(o.wrong) > 0 && o.labels != nil && o.parts > 0 {
		if o.offLabel == 0 {
			fmt.Fprintf(&b, "  (every page of pdfdoc's parts shows the label its producer gave it)\n")
		} else {
			fmt.Fprintf(&b, "  (%d pages of pdfdoc's parts do not show the label their producer gave them)\n", o.offLabel)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// index returns the index in texts and boxes of pdfdoc's page i, and
// false when qpdf has no page there: with raw, pdfdoc's pages are the
// entries of qpdf's page list, nulls included; else its pages.
func (v diffQpdfView) index(i int, raw bool) (int, bool) {
	if !raw {
		return i - 1, i <= len(v.texts)
	}
	if i > v.listed || slices.Contains(v.nulls, i) {
		return 0, false
	}
	k := i - 1
	for _, n := range v.nulls {
		if n < i {
			k--
		}
	}
	return k, true
}

func (v diffQpdfView) summary() string {
	if v.rejects != "" {
		return "rejects the file: " + v.rejects
	}
	s := fmt.Sprintf("%d pages", v.listed-len(v.nulls))
	if len(v.nulls) > 0 {
		s += fmt.Sprintf(" (its page list has %d entries; null at %v, skipped)", v.listed, v.nulls)
	}
	if v.npages != v.listed-len(v.nulls) {
		s += fmt.Sprintf(", --show-npages %d", v.npages)
	}
	if v.complaints == "" {
		return s + "; --check clean"
	}
	return s + "; warns: " + diffFirstLine(v.complaints)
}

// judge fails the test for a failure not in knownBroken, or for a file in
// knownBroken that passes; strict allows no refusal at all.
func (o *diffOutcome) judge(t *testing.T, strict bool) {
	t.Helper()
	for _, h := range o.harness {
		t.Errorf("the test's assumption failed: %s", h)
	}
	failed := o.failed(strict)
	why, known := knownBroken()[o.name]
	switch {
	case failed && known && !diffStrict():
		t.Logf("KNOWN BROKEN (%s), not failed (set S3DOCS_DIFF_STRICT=1 to fail):\n%s", why, o.report())
	case failed:
		t.Errorf("FAIL:\n%s", o.report())
	case known:
		t.Errorf("%s passes now: remove it from knownBroken (differential_known_test.go)\n%s", o.name, o.report())
	case o.openErr != "" || len(o.refused) > 0:
		t.Logf("refused, as qpdf warns:\n%s", o.report())
	default:
		t.Logf("ok:\n%s", o.report())
	}
}

// check runs the whole comparison for one file.
func (dt *diffTools) check(t *testing.T, f pdfgen.OddFile) *diffOutcome {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	src, err := f.Make(dir, func(program string, args ...string) error {
		path := map[string]string{"qpdf": dt.qpdf, "mutool": dt.mutool}[program]
		if path == "" {
			return fmt.Errorf("no program %s", program)
		}
		r := dt.run(ctx, path, args...)
		if r.err != nil && !(program == "qpdf" && r.exit == 3) {
			return fmt.Errorf("%v\n%s", r.err, r.stderr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	o := &diffOutcome{name: f.Name, class: f.Class, about: f.About, src: src, data: data, count: -1, labels: f.Labels}
	o.qpdf = dt.readQpdf(ctx, o, dir)

	d, err := Open(ctx, bytes.NewReader(data), int64(len(data)), Options{})
	if err != nil {
		o.openErr = err.Error()
		return o
	}
	o.count = d.PageCount()
	qpages := len(o.qpdf.texts)
	switch {
	case o.qpdf.rejects != "" || o.count == qpages:
	case len(o.qpdf.nulls) > 0 && o.count == o.qpdf.listed:
		// pdfdoc counts qpdf's null entries as pages: it may only
		// refuse them.
		o.raw = true
	default:
		also := ""
		if o.count == o.qpdf.npages {
			also = " (its --show-npages, the root's /Count)"
		}
		o.addWrong("PageCount %d, qpdf's pages %d%s", o.count, qpages, also)
	}
	if o.count < 1 {
		return o
	}
	rng := rand.New(rand.NewPCG(diffSeed, diffNameHash(f.Name)))
	ranges, random := diffRanges(o.count, rng)

	// Extract every range from one Doc, in a random order, and again from
	// a fresh Doc.
	var parts []diffPart
	for _, r := range ranges {
		var part bytes.Buffer
		if err := d.Extract(ctx, r[0], r[1], &part); err != nil {
			o.refused = append(o.refused, fmt.Sprintf("pages %d-%d: %v", r[0], r[1], err))
			if !o.raw || !slices.ContainsFunc(o.qpdf.nulls, func(n int) bool { return n >= r[0] && n <= r[1] }) {
				o.unexplained++
			}
			continue
		}
		fresh, err := Open(ctx, bytes.NewReader(data), int64(len(data)), Options{})
		if err != nil {
			o.addWrong("a second Open failed where the first succeeded: %v", err)
		} else {
			var again bytes.Buffer
			if err := fresh.Extract(ctx, r[0], r[1], &again); err != nil {
				o.orderDiffs = append(o.orderDiffs, fmt.Sprintf("%d-%d (refused by a fresh Doc: %v)", r[0], r[1], err))
			} else if !bytes.Equal(again.Bytes(), part.Bytes()) {
				o.orderDiffs = append(o.orderDiffs, fmt.Sprintf("%d-%d (%d bytes, %d fresh)", r[0], r[1], part.Len(), again.Len()))
				// Check what a fresh Doc makes too: a worker that
				// starts with this range serves it.
				path := filepath.Join(dir, fmt.Sprintf("part-%d-%d-fresh.pdf", r[0], r[1]))
				if err := os.WriteFile(path, again.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				parts = append(parts, diffPart{r: r, path: path, fresh: true})
			}
		}
		path := filepath.Join(dir, fmt.Sprintf("part-%d-%d.pdf", r[0], r[1]))
		if err := os.WriteFile(path, part.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, diffPart{r: r, path: path, random: random[r]})
		o.parts++
	}

	// Check the parts, several at a time.
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wrong, harness, offLabel, single := dt.checkPart(ctx, o, p)
			mu.Lock()
			defer mu.Unlock()
			if single != nil {
				singles := &o.singles
				if p.fresh {
					singles = &o.freshSingles
				}
				if *singles == nil {
					*singles = map[int][2]string{}
				}
				(*singles)[p.r[0]] = *single
			}
			o.wrong = append(o.wrong, wrong...)
			o.harness = append(o.harness, harness...)
			o.offLabel += offLabel
		}()
	}
	wg.Wait()
	slices.SortFunc(o.wrong, diffNaturalCompare)
	if len(o.orderDiffs) > 0 {
		// First (after the page count), as the report shows only the
		// first differences.
		slices.SortFunc(o.orderDiffs, diffNaturalCompare)
		at := 0
		if len(o.wrong) > 0 && strings.HasPrefix(o.wrong[0], "PageCount") {
			at = 1
		}
		o.wrong = slices.Insert(o.wrong, at, fmt.Sprintf("%d parts differ when made by a fresh Doc (they depend on what was asked before): %s",
			len(o.orderDiffs), strings.Join(o.orderDiffs[:min(len(o.orderDiffs), 8)], ", ")))
	}
	return o
}

func diffNameHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// diffRanges are the ranges a file of n pages is checked on, in a random
// order: the listing's parts of 3 (and of 50 over 50 pages), every page,
// all pages and three random ranges, which random marks.
func diffRanges(n int, rng *rand.Rand) ([][2]int, map[[2]int]bool) {
	seen := map[[2]int]bool{}
	var out [][2]int
	add := func(a, b int) {
		r := [2]int{a, b}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	sizes := []int{3}
	if n > 50 {
		sizes = append(sizes, 50)
	}
	for _, size := range sizes {
		for a := 1; a <= n; a += size {
			add(a, min(a+size-1, n))
		}
	}
	for i := 1; i <= n; i++ {
		add(i, i)
	}
	add(1, n)
	random := map[[2]int]bool{}
	for range 3 {
		a := 1 + rng.IntN(n)
		r := [2]int{a, a + rng.IntN(n-a+1)}
		random[r] = true
		add(r[0], r[1])
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, random
}

// readQpdf reads the source with qpdf (see the comment at the top of this file).
func (dt *diffTools) readQpdf(ctx context.Context, o *diffOutcome, dir string) diffQpdfView {
	v := diffQpdfView{npages: -1}
	var complaints []string
	chk := dt.query(ctx, dt.qpdf, "--check", o.src)
	if chk.exit != 0 || strings.TrimSpace(chk.stderr) != "" || !strings.Contains(chk.stdout, "No syntax or stream encoding errors found") {
		complaints = append(complaints, diffQpdfComplaints(chk, dir))
	}
	if r := dt.query(ctx, dt.qpdf, "--show-npages", o.src); r.exit == 0 || r.exit == 3 {
		v.npages, _ = strconv.Atoi(strings.TrimSpace(r.stdout))
	}
	js := dt.query(ctx, dt.qpdf, "--json", "--json-key=pages", "--json-key=qpdf", o.src)
	if js.exit != 0 && js.exit != 3 {
		v.rejects = "qpdf --json: " + diffFirstLine(strings.ReplaceAll(cmp.Or(js.stderr, fmt.Sprint(js.err)), dir+"/", ""))
		v.complaints = strings.Join(complaints, "\n")
		return v
	}
	var list []int // qpdf's page numbers that are pages
	var err error
	v.listed, v.nulls, list, err = diffQpdfPageList([]byte(js.stdout))
	if err != nil {
		o.harness = append(o.harness, "qpdf --json: "+err.Error())
		v.rejects = "qpdf --json gave no page list"
		return v
	}
	if len(list) == 0 {
		v.rejects = "qpdf finds no pages"
		v.complaints = strings.Join(complaints, "\n")
		return v
	}
	v.ref = filepath.Join(dir, "qpdf-pages.pdf")
	ref := dt.run(ctx, dt.qpdf, "--empty", "--remove-unreferenced-resources=no", "--pages", o.src, diffPageSpec(list), "--", v.ref)
	switch {
	case ref.exit == 3:
		complaints = append(complaints, diffQpdfComplaints(ref, dir))
	case ref.err != nil:
		v.rejects = "qpdf --pages: " + diffFirstLine(strings.ReplaceAll(cmp.Or(ref.stderr, fmt.Sprint(ref.err)), dir+"/", ""))
		v.complaints = strings.Join(complaints, "\n")
		return v
	}
	v.complaints = strings.Join(complaints, "\n")
	if r := dt.query(ctx, dt.qpdf, "--check", v.ref); r.exit != 0 || strings.TrimSpace(r.stderr) != "" {
		v.refKinds = map[string]bool{}
		for _, c := range strings.Split(diffQpdfComplaints(r, dir), "\n") {
			v.refKinds[diffComplaintKind(c)] = true
		}
	}
	texts, boxes, problems := dt.readPages(ctx, v.ref, len(list))
	if len(problems) > 0 {
		o.harness = append(o.harness, fmt.Sprintf("qpdf's pages of the source (%s): %s", diffPageSpec(list), strings.Join(problems, "; ")))
	}
	v.texts, v.boxes = texts, boxes
	return v
}

var (
	diffComplaintFile   = regexp.MustCompile(`\S+\.pdf\b`)
	diffComplaintNumber = regexp.MustCompile(`\d+`)
)

// diffComplaintKind is a complaint of qpdf without file names and numbers.
func diffComplaintKind(c string) string {
	return diffComplaintNumber.ReplaceAllString(diffComplaintFile.ReplaceAllString(c, "FILE"), "#")
}

// diffQpdfComplaints is what a qpdf run reported about its input, with the
// temporary directory dir taken out of file names.
func diffQpdfComplaints(r diffRun, dir string) string {
	var lines []string
	for _, l := range strings.Split(r.stderr+"\n"+r.stdout, "\n") {
		if strings.Contains(l, "WARNING") || strings.Contains(l, "ERROR") || strings.HasPrefix(l, "qpdf:") {
			lines = append(lines, strings.ReplaceAll(strings.TrimSpace(l), dir+string(filepath.Separator), ""))
		}
	}
	if len(lines) == 0 {
		lines = append(lines, fmt.Sprintf("exit status %d", r.exit))
	}
	return strings.Join(lines, "\n")
}

// diffQpdfPageList reads qpdf --json --json-key=pages --json-key=qpdf: the
// number of entries of its page list, the positions of those that are
// null, and the positions of the others.
func diffQpdfPageList(js []byte) (listed int, nulls, pages []int, err error) {
	var doc struct {
		Pages []struct {
			Object string `json:"object"`
		} `json:"pages"`
		QPDF []json.RawMessage `json:"qpdf"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return 0, nil, nil, err
	}
	if len(doc.QPDF) < 2 {
		return 0, nil, nil, errors.New("no objects")
	}
	var objs map[string]map[string]json.RawMessage
	if err := json.Unmarshal(doc.QPDF[1], &objs); err != nil {
		return 0, nil, nil, err
	}
	for i, p := range doc.Pages {
		o := objs["obj:"+p.Object]
		if v, ok := o["value"]; o == nil || (ok && string(v) == "null") {
			nulls = append(nulls, i+1)
			continue
		}
		pages = append(pages, i+1)
	}
	return len(doc.Pages), nulls, pages, nil
}

// diffPageSpec writes page numbers as qpdf's ranges: 1-4,6-11.
func diffPageSpec(pages []int) string {
	var parts []string
	for i := 0; i < len(pages); {
		j := i
		for j+1 < len(pages) && pages[j+1] == pages[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(pages[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", pages[i], pages[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// checkPart checks the part of pages r: clean to qpdf, and qpdf's pages.
// offLabel counts its pages that do not show the producer's label.
func (dt *diffTools) checkPart(ctx context.Context, o *diffOutcome, p diffPart) (wrong, harness []string, offLabel int, single *[2]string) {
	r, path := p.r, p.path
	n := r[1] - r[0] + 1
	name := fmt.Sprintf("part %d-%d", r[0], r[1])
	if p.fresh {
		name = "fresh " + name
	}
	chk := dt.query(ctx, dt.qpdf, "--check", path)
	if chk.exit != 0 || strings.TrimSpace(chk.stderr) != "" || !strings.Contains(chk.stdout, "No syntax or stream encoding errors found") {
		// What qpdf also says of its own pages (a content stream it cannot
		// parse, copied as it is) is not the part's fault.
		complaints := diffQpdfComplaints(chk, filepath.Dir(path))
		var own []string
		for _, c := range strings.Split(complaints, "\n") {
			if !o.qpdf.refKinds[diffComplaintKind(c)] {
				own = append(own, c)
			}
		}
		if len(own) > 0 || o.qpdf.refKinds == nil {
			wrong = append(wrong, fmt.Sprintf("%s: qpdf --check: %s", name, diffFirstLine(strings.Join(own, "\n"))))
		}
	}
	texts, boxes, problems := dt.readPages(ctx, path, n)
	for _, p := range problems {
		wrong = append(wrong, fmt.Sprintf("%s: %s", name, p))
	}
	if len(problems) > 0 {
		return wrong, harness, n, nil
	}
	for i, text := range texts {
		if page := r[0] + i; page > len(o.labels) || diffLabelLine(text, o.name) != o.labels[page-1] {
			offLabel++
		}
	}
	if o.qpdf.rejects != "" {
		return wrong, harness, offLabel, nil
	}
	qn := len(o.qpdf.texts)
	for i := range n {
		page := r[0] + i
		k, ok := o.qpdf.index(page, o.raw)
		if !ok {
			wrong = append(wrong, fmt.Sprintf("%s: page %d (source page %d) made, where qpdf has no page (%d in its list, null at %v)",
				name, i+1, page, o.qpdf.listed, o.qpdf.nulls))
			continue
		}
		if got, want := texts[i], o.qpdf.texts[k]; got != want {
			wrong = append(wrong, fmt.Sprintf("%s: page %d (source page %d): text %s", name, i+1, page, diffText(got, want)))
			if n == 1 {
				single = &[2]string{diffLabelLine(got, o.name), diffLabelLine(want, o.name)}
			}
		}
		if got, want := boxes[i], o.qpdf.boxes[k]; got != want {
			wrong = append(wrong, fmt.Sprintf("%s: page %d (source page %d): boxes %q, qpdf's %q", name, i+1, page, got, want))
		}
	}
	// For the random ranges, qpdf's own part of the range must be what
	// REF says (the test compares every range with REF).
	if p.random && len(o.qpdf.nulls) == 0 && r[1] <= qn {
		own := strings.TrimSuffix(path, ".pdf") + "-qpdf.pdf"
		q := dt.run(ctx, dt.qpdf, "--empty", "--remove-unreferenced-resources=no", "--pages", o.src, fmt.Sprintf("%d-%d", r[0], r[1]), "--", own)
		if q.err != nil && q.exit != 3 {
			return wrong, append(harness, fmt.Sprintf("qpdf --pages %d-%d: %v", r[0], r[1], q.err)), offLabel, single
		}
		qt, qb, qp := dt.readPages(ctx, own, n)
		if len(qp) > 0 || !slices.Equal(qt, o.qpdf.texts[r[0]-1:r[1]]) || !slices.Equal(qb, o.qpdf.boxes[r[0]-1:r[1]]) {
			harness = append(harness, fmt.Sprintf("qpdf's part %d-%d differs from its pages %d-%d of the whole %v", r[0], r[1], r[0], r[1], qp))
		}
	}
	return wrong, harness, offLabel, single
}

// readPages returns pdftotext's text and pdfinfo's boxes of each of the n
// pages of path, and what is wrong with it as a PDF of n pages.
func (dt *diffTools) readPages(ctx context.Context, path string, n int) (texts, boxes []string, problems []string) {
	tr := dt.query(ctx, dt.pdftotext, "-enc", "UTF-8", path, "-")
	if tr.err != nil {
		return nil, nil, []string{fmt.Sprintf("pdftotext: %v: %s", tr.err, diffFirstLine(tr.stderr))}
	}
	texts = diffSplitPages(tr.stdout)
	if len(texts) != n {
		problems = append(problems, fmt.Sprintf("pdftotext finds %d pages, want %d", len(texts), n))
	}
	ir := dt.query(ctx, dt.pdfinfo, "-box", "-f", "1", "-l", strconv.Itoa(n), path)
	if ir.err != nil {
		return nil, nil, append(problems, fmt.Sprintf("pdfinfo: %v: %s", ir.err, diffFirstLine(ir.stderr)))
	}
	if m := diffPagesLine.FindStringSubmatch(ir.stdout); m == nil || m[1] != strconv.Itoa(n) {
		problems = append(problems, fmt.Sprintf("pdfinfo: %q pages, want %d", m, n))
	}
	boxes = make([]string, n)
	for _, m := range diffPdfinfoPageLine.FindAllStringSubmatch(ir.stdout, -1) {
		i, _ := strconv.Atoi(m[1])
		if i >= 1 && i <= n {
			boxes[i-1] += strings.Join(strings.Fields(m[2]), " ") + "; "
		}
	}
	if len(problems) > 0 {
		return nil, nil, problems
	}
	return texts, boxes, nil
}

// diffPdfinfoPageLine is a line of pdfinfo -box about one page: size, rot and
// the five boxes; diffPagesLine is its line of the page count.
var (
	diffPdfinfoPageLine = regexp.MustCompile(`(?m)^Page +(\d+) +(.*)$`)
	diffPagesLine       = regexp.MustCompile(`(?m)^Pages:\s+(\d+)$`)
)

// diffSplitPages splits pdftotext's (or mutool's) output into pages, each with
// its lines' trailing white space and its trailing empty lines removed.
func diffSplitPages(out string) []string {
	pages := strings.Split(out, "\f")
	if len(pages) > 0 && strings.TrimSpace(pages[len(pages)-1]) == "" {
		pages = pages[:len(pages)-1]
	}
	for i, p := range pages {
		lines := strings.Split(p, "\n")
		for j := range lines {
			lines[j] = strings.TrimRight(lines[j], " \t\r")
		}
		pages[i] = strings.Trim(strings.Join(lines, "\n"), "\n")
	}
	return pages
}

func diffFirstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

func diffFirstLines(pages []string) []string {
	out := make([]string, len(pages))
	for i, p := range pages {
		out[i], _, _ = strings.Cut(p, "\n")
	}
	return out
}

// diffText shows how two page texts differ: their first lines when those
// differ, else the whole texts.
func diffText(got, want string) string {
	g, _, _ := strings.Cut(got, "\n")
	w, _, _ := strings.Cut(want, "\n")
	if g != w {
		return fmt.Sprintf("%q..., qpdf's %q...", g, w)
	}
	trim := func(s string) string {
		s = strings.Join(strings.Fields(s), " ")
		if len(s) > 160 {
			s = s[:160] + "..."
		}
		return s
	}
	return fmt.Sprintf("%q", trim(got)) + ", qpdf's " + fmt.Sprintf("%q", trim(want))
}

// diffSummary logs one line per file: the worklist.
func diffSummary(t *testing.T, outcomes []*diffOutcome) {
	var b strings.Builder
	counts := map[string]int{}
	for _, o := range outcomes {
		if o == nil {
			continue
		}
		verdict := "ok"
		_, known := knownBroken()[o.name]
		switch {
		case o.failed(false) && known:
			verdict = "KNOWN-BROKEN"
		case o.failed(false):
			verdict = "FAIL"
		case o.openErr != "" || len(o.refused) > 0:
			verdict = "refused(qpdf warns)"
		}
		counts[verdict]++
		pd := fmt.Sprintf("%d pages, %d/%d parts refused, %d wrong", o.count, len(o.refused), len(o.refused)+o.parts, len(o.wrong))
		if o.openErr != "" {
			pd = "Open: " + o.openErr
		}
		fmt.Fprintf(&b, "%-20s %-42s qpdf: %s | pdfdoc: %s\n", verdict, o.name, o.qpdf.summary(), pd)
	}
	t.Logf("differential summary (%v):\n%s", counts, b.String())
}

// diffWriteCorpus adds the files that fail, and every third other one, to
// FuzzOpenExtract's seed corpus, when S3DOCS_DIFF_WRITE_CORPUS is set.
func diffWriteCorpus(t *testing.T, outcomes []*diffOutcome) {
	if os.Getenv("S3DOCS_DIFF_WRITE_CORPUS") == "" {
		return
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOpenExtract")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, o := range outcomes {
		if o == nil || len(o.data) > 48<<10 || (!o.failed(false) && i%3 != 0) {
			continue
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", o.data)
		if err := os.WriteFile(filepath.Join(dir, "odd-"+o.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// diffNaturalCompare orders strings with their numbers by value: "part 4-4"
// before "part 10-10".
func diffNaturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := diffLeadingDigits(a), diffLeadingDigits(b)
		if da > 0 && db > 0 {
			na, _ := strconv.Atoi(a[:da])
			nb, _ := strconv.Atoi(b[:db])
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func diffLeadingDigits(s string) int {
	i := 0
	for i < len(s) && i < 9 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

var diffPartName = regexp.MustCompile(`^(fresh )?part (\d+-\d+):`)

var diffLabelNumber = regexp.MustCompile(`page (\d+)`)

// diffSinglesSummary describes the single-page parts whose text is not
// qpdf's, in runs: "pages 22-100: show page i-1".
func diffSinglesSummary(singles map[int][2]string) string {
	type run struct {
		from, thru int
		what       string
	}
	var runs []run
	for _, i := range slices.Sorted(maps.Keys(singles)) {
		g, w := singles[i][0], singles[i][1]
		what := fmt.Sprintf("show %q, qpdf's %q", g, w)
		if g == "" {
			what = "no label, qpdf's has"
		}
		gm, wm := diffLabelNumber.FindStringSubmatch(g), diffLabelNumber.FindStringSubmatch(w)
		if gm != nil && wm != nil && strings.Replace(g, gm[0], "", 1) == strings.Replace(w, wm[0], "", 1) {
			gn, _ := strconv.Atoi(gm[1])
			wn, _ := strconv.Atoi(wm[1])
			if d := gn - wn; d != 0 {
				what = fmt.Sprintf("show page i%+d", d)
			} else {
				what = "show the right page with other text"
			}
		}
		if k := len(runs); k > 0 && runs[k-1].thru == i-1 && runs[k-1].what == what {
			runs[k-1].thru = i
			continue
		}
		runs = append(runs, run{i, i, what})
	}
	var parts []string
	for _, r := range runs {
		if r.from == r.thru {
			parts = append(parts, fmt.Sprintf("page %d: %s", r.from, r.what))
		} else {
			parts = append(parts, fmt.Sprintf("pages %d-%d: %s", r.from, r.thru, r.what))
		}
	}
	return strings.Join(parts, "; ")
}

// diffLabelLine returns the line of a page's text that is its label, which
// starts with the file's name ("" if none): pdftotext puts it first on
// upright pages only.
func diffLabelLine(text, name string) string {
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, name+" page ") {
			return line
		}
	}
	return ""
}
