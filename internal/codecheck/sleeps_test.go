package codecheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sleepExcuse is what a comment says of a time.Sleep in a test that is
// not waiting for something to happen (a test waits for the event itself:
// on a channel, in a synctest bubble, or through testenv.WaitFor).
var sleepExcuse = regexp.MustCompile(`(?i)not(\s|//)+waiting(\s|//)+for(\s|//)+an(\s|//)+event`)

// excuseLines is how far above a sleep its comment may start.
const excuseLines = 4

// Every time.Sleep in a test, or in the test support, has a comment that
// says why it is not waiting for an event.
func TestSleepsSayWhy(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	sleeps := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		testSupport := strings.HasPrefix(rel, "internal/testenv/")
		if !strings.HasSuffix(rel, "_test.go") && !(testSupport && strings.HasSuffix(rel, ".go")) {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		lines := strings.Split(string(src), "\n")
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isTimeSleep(call) {
				return true
			}
			sleeps++
			line := fset.Position(call.Pos()).Line
			near := strings.Join(lines[max(0, line-1-excuseLines):line], "\n")
			if !sleepExcuse.MatchString(near) {
				t.Errorf("%s: time.Sleep without a comment that says why it is not waiting for an event", fset.Position(call.Pos()))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sleeps == 0 {
		t.Fatal("no time.Sleep found: the check sees nothing")
	}
}

func isTimeSleep(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "Sleep" {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "time"
}
