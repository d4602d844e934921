package retry

import (
	"go/ast"
	"testing"

	"github.com/cnlink/cnlink/internal/purity"
)

// TestPackageIsPure enforces the package's contract on its own source: no
// clock reads, no sleeping or timers, no goroutines, no I/O imports, and
// backoff used only as a calculator.
func TestPackageIsPure(t *testing.T) {
	forbiddenBackoff := map[string]string{
		"Retry": "runs a sleeping loop", "RetryNotify": "runs a sleeping loop",
		"RetryWithData": "runs a sleeping loop", "RetryNotifyWithData": "runs a sleeping loop",
		"RetryNotifyWithTimer": "runs a sleeping loop", "NewTicker": "starts a ticker",
		"NewTimer": "starts a timer", "SystemClock": "reads the wall clock",
		"NewExponentialBackOff": "defaults to SystemClock and a 15-minute MaxElapsedTime",
	}
	purity.Check(t, 4, func(n ast.Node) string {
		if s, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := s.X.(*ast.Ident); ok && id.Name == "backoff" {
				if why, bad := forbiddenBackoff[s.Sel.Name]; bad {
					return "backoff." + s.Sel.Name + " " + why
				}
			}
		}
		return ""
	})
}
