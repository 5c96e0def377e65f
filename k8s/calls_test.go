package k8s_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCallGraphMatchesCode: the calls the NetworkPolicies allow (the table
// in this package) are the calls the services make. A service calls a peer
// through rt.Dial(…Peers.<Peer>…), so every use of platform.Peers' fields in
// a service's source names a peer it calls. A new call that is not in the
// table would be blocked by the NetworkPolicies in a cluster; this test
// catches it first.
func TestCallGraphMatchesCode(t *testing.T) {
	for _, s := range services {
		dir := "../services/" + s.name
		found := map[string]bool{}
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if inner, ok := sel.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "Peers" {
					found[strings.ToLower(sel.Sel.Name)] = true
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := sortedKeys(found)
		want := slices.Clone(s.calls)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s's code calls %v; the manifests allow %v: update the services table (and the NetworkPolicies) or the code", s.name, got, want)
		}
	}
}
