package pdfdoc

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// toolAnswers remembers, for the test process, what the reference tools
// (qpdf, pdftotext, pdfinfo, mutool) answered when asked about files
// without writing any. go test -count=N runs every test N times in one
// process, with the same files (pdfgen's are seeded, pdfdoc's parts
// reproducible, the real-world samples fixed) in new temporary
// directories, and running the tools on all of them again took most of the
// package's time (issue 23: -race -count=3 on a loaded machine went over
// go test's 10 minutes). A tool's answer for the same arguments and the
// same bytes does not change, so it is asked once; pdfdoc still opens and
// extracts everything on every run, and a part whose bytes differ is a new
// question. It is package-level because it must outlive one test.
var toolAnswers = &answers{byKey: map[string]diffRun{}}

// answers holds runs by answerKey, with the directories of the files they
// read replaced by answerDir(i) in their output.
type answers struct {
	mu    sync.Mutex
	byKey map[string]diffRun
}

// ask returns the remembered answer to program path with args, or runs it
// with run and remembers its answer when keep. Only for runs that write no
// files: a remembered answer writes nothing.
func (a *answers) ask(path string, args []string, run func() (r diffRun, keep bool)) diffRun {
	key, dirs, ok := answerKey(path, args)
	if !ok {
		r, _ := run()
		return r
	}
	if r, ok := a.get(key, dirs); ok {
		return r
	}
	r, keep := run()
	if keep {
		a.put(key, dirs, r)
	}
	return r
}

func (a *answers) get(key string, dirs []string) (diffRun, bool) {
	a.mu.Lock()
	r, ok := a.byKey[key]
	a.mu.Unlock()
	if !ok {
		return diffRun{}, false
	}
	var pairs []string
	for i, d := range dirs {
		pairs = append(pairs, answerDir(i), d)
	}
	back := strings.NewReplacer(pairs...)
	r.stdout, r.stderr = back.Replace(r.stdout), back.Replace(r.stderr)
	return r, true
}

func (a *answers) put(key string, dirs []string, r diffRun) {
	var pairs []string
	for i, d := range dirs {
		pairs = append(pairs, d, answerDir(i))
	}
	out := strings.NewReplacer(pairs...)
	r.stdout, r.stderr = out.Replace(r.stdout), out.Replace(r.stderr)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byKey[key] = r
}

// answerDir stands for the directory of a run's i-th file in a remembered
// answer.
func answerDir(i int) string { return fmt.Sprintf("\x00dir%d\x00", i) }

// answerMaxFile is the largest file whose runs are remembered: reading and
// hashing one of TestBigPDF's 100 MB sources (about 0.3 s) costs more than
// pdftotext's reading of one of its pages (a few ms).
const answerMaxFile = 16 << 20

// answerKey is what a run's answer depends on: the program and its
// arguments, each file (every absolute argument that names a regular file)
// by its name in its directory and the SHA-256 of its bytes; dirs are the
// files' directories. ok is false when an absolute argument names nothing
// that can be read (an output yet to be written) or a file over
// answerMaxFile.
func answerKey(path string, args []string) (key string, dirs []string, ok bool) {
	var b strings.Builder
	b.WriteString(path)
	for _, a := range args {
		b.WriteByte(0)
		if !filepath.IsAbs(a) {
			b.WriteString(a)
			continue
		}
		fi, err := os.Stat(a)
		if err != nil {
			return "", nil, false
		}
		if !fi.Mode().IsRegular() { // /dev/null
			b.WriteString(a)
			continue
		}
		if fi.Size() > answerMaxFile {
			return "", nil, false
		}
		data, err := os.ReadFile(a)
		if err != nil {
			return "", nil, false
		}
		dirs = append(dirs, filepath.Dir(a))
		fmt.Fprintf(&b, "file %d %s %x", len(dirs)-1, filepath.Base(a), sha256.Sum256(data))
	}
	return b.String(), dirs, true
}

// TestToolAnswersByBytes: an answer is remembered by the bytes a run reads,
// not by their path, and given back with the path of the run that asks.
func TestToolAnswersByBytes(t *testing.T) {
	a := &answers{byKey: map[string]diffRun{}}
	runs := 0
	ask := func(path string) string {
		return a.ask("/usr/bin/qpdf", []string{"--check", path}, func() (diffRun, bool) {
			runs++
			return diffRun{stdout: "checking " + path + "\n"}, true
		}).stdout
	}
	first := filepath.Join(t.TempDir(), "part.pdf")
	again := filepath.Join(t.TempDir(), "part.pdf")
	for _, p := range []string{first, again} {
		if err := os.WriteFile(p, []byte("%PDF-1.7 same"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		path string
		runs int
	}{{first, 1}, {again, 1}, {first, 1}} {
		if got := ask(step.path); got != "checking "+step.path+"\n" || runs != step.runs {
			t.Fatalf("asked of %s: %q after %d runs, want its path after %d", step.path, got, runs, step.runs)
		}
	}
	if err := os.WriteFile(again, []byte("%PDF-1.7 other"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ask(again); runs != 2 {
		t.Fatalf("new bytes answered from memory (%d runs)", runs)
	}
	if ask(filepath.Join(t.TempDir(), "missing.pdf")); runs != 3 {
		t.Fatalf("a missing file answered from memory (%d runs)", runs)
	}
}
