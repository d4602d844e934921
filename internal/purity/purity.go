// Package purity checks, from a package's own source, the contract of
// cnlink's sans-IO packages (window, retry, loss, repair): no clock reads,
// timers or sleeps, no goroutines, no I/O or lock imports. Time is an
// argument there; the owner goroutines in reliable and multicast supply it.
package purity

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var (
	forbiddenTime = map[string]bool{"Now": true, "Since": true, "Until": true, "Sleep": true,
		"After": true, "AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true}
	forbiddenImports = []string{"os", "net", "syscall", "io", "golang.org/x/sys", "github.com/mdlayher", "sync"}
)

// Check parses the non-test Go files of the current directory (the package
// under test) and reports every violation. It fails if fewer than minFiles
// files were checked, so that a moved package cannot pass by checking
// nothing. extra may add a check of each node (it returns a message for a
// violation, or "").
func Check(t *testing.T, minFiles int, extra func(n ast.Node) string) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbiddenImports {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s: imports %q", fset.Position(imp.Pos()), path)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && id.Name == "time" && forbiddenTime[n.Sel.Name] {
					t.Errorf("%s: time.%s", fset.Position(n.Pos()), n.Sel.Name)
				}
			}
			if extra != nil && n != nil {
				if msg := extra(n); msg != "" {
					t.Errorf("%s: %s", fset.Position(n.Pos()), msg)
				}
			}
			return true
		})
	}
	if checked < minFiles {
		t.Fatalf("checked %d source files, want at least %d", checked, minFiles)
	}
}
