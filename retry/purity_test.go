package retry

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPackageIsPure enforces the package's contract on its own source: no
// clock reads, no sleeping or timers, no goroutines, no I/O imports, and
// backoff used only as a calculator.
func TestPackageIsPure(t *testing.T) {
	forbiddenCalls := map[string]map[string]string{
		"time": {
			"Now": "reads the wall clock", "Since": "reads the wall clock", "Until": "reads the wall clock",
			"Sleep": "sleeps", "After": "starts a timer", "AfterFunc": "starts a timer",
			"NewTimer": "starts a timer", "NewTicker": "starts a ticker", "Tick": "starts a ticker",
		},
		"backoff": {
			"Retry": "runs a sleeping loop", "RetryNotify": "runs a sleeping loop",
			"RetryWithData": "runs a sleeping loop", "RetryNotifyWithData": "runs a sleeping loop",
			"RetryNotifyWithTimer": "runs a sleeping loop", "NewTicker": "starts a ticker",
			"NewTimer": "starts a timer", "SystemClock": "reads the wall clock",
			"NewExponentialBackOff": "defaults to SystemClock and a 15-minute MaxElapsedTime",
		},
	}
	forbiddenImports := []string{"os", "net", "syscall", "io", "golang.org/x/sys", "github.com/mdlayher", "sync"}

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
					t.Errorf("%s: imports %q: the package does no I/O and needs no locks", fset.Position(imp.Pos()), path)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement: the package starts no goroutines", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok {
					if why, bad := forbiddenCalls[id.Name][n.Sel.Name]; bad {
						t.Errorf("%s: %s.%s %s", fset.Position(n.Pos()), id.Name, n.Sel.Name, why)
					}
				}
			}
			return true
		})
	}
	if checked < 4 {
		t.Fatalf("checked %d source files, want at least doc.go, clock.go, rtt.go, schedule.go", checked)
	}
}
