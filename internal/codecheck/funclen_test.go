package codecheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines bounds a function of the product, from its func keyword to
// its closing brace: past it, a newcomer must read a lot to change a little.
const maxFuncLines = 100

// notProduct are the directories of test support and tools, which the
// s3docs binary is not built from.
var notProduct = []string{"internal/testenv", "internal/pdfgen", "internal/tools", "internal/codecheck", "scripts"}

// longAllowed are functions that are data, not steps: mountopts.specs is
// the one table every option comes from.
var longAllowed = map[string]bool{"mountopts/mountopts.go:specs": true}

// No product function is longer than maxFuncLines lines; function literals
// count on their own, and within their function.
func TestNoLongFunctions(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	excused := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || isNotProduct(rel)) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			name, body := funcOf(n)
			if body == nil {
				return true
			}
			lines := fset.Position(body.End()).Line - fset.Position(n.Pos()).Line + 1
			switch {
			case lines <= maxFuncLines:
			case longAllowed[rel+":"+name]:
				excused[rel+":"+name] = true
			default:
				t.Errorf("%s: %s is %d lines long, more than %d", fset.Position(n.Pos()), name, lines, maxFuncLines)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk must have seen the product, and found the long table it
	// excuses, or it checked nothing.
	if files < 50 {
		t.Errorf("only %d product files found under %s", files, root)
	}
	for name := range longAllowed {
		if !excused[name] {
			t.Errorf("%s was not found longer than %d lines: the check sees nothing, or the excuse is stale", name, maxFuncLines)
		}
	}
}

func isNotProduct(rel string) bool {
	for _, p := range notProduct {
		if rel == p {
			return true
		}
	}
	return false
}

func funcOf(n ast.Node) (string, *ast.BlockStmt) {
	switch fn := n.(type) {
	case *ast.FuncDecl:
		return fn.Name.Name, fn.Body
	case *ast.FuncLit:
		return "a function literal", fn.Body
	}
	return "", nil
}
