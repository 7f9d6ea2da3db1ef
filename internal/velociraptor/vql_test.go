package velociraptor

import (
	"bytes"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/printer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestQueriesAreConstant type-checks this package and fails if any value of
// type vql (the only type the client sends as VQL text) is built from
// anything but constants: every conversion to vql and every expression
// passed or assigned where a vql is expected must be a compile-time
// constant. A query spliced together from an IOC value would need exactly
// such a non-constant conversion.
func TestQueriesAreConstant(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var parsed []*ast.File
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, af)
	}
	exports := exportData(t)
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok {
			return nil, os.ErrNotExist
		}
		return os.Open(f)
	})}
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Defs: map[*ast.Ident]types.Object{}, Uses: map[*ast.Ident]types.Object{}}
	pkg, err := conf.Check("github.com/velohunt/velohunt/internal/velociraptor", fset, parsed, info)
	if err != nil {
		t.Fatal(err)
	}
	vqlType := pkg.Scope().Lookup("vql").Type()
	isVQL := func(tt types.Type) bool { return tt != nil && types.Identical(tt, vqlType) }
	constant := func(e ast.Expr) bool { tv, ok := info.Types[e]; return ok && tv.Value != nil }

	checked := 0
	for _, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				tv := info.Types[n.Fun]
				if tv.IsType() && isVQL(tv.Type) { // conversion vql(x)
					checked++
					if !constant(n.Args[0]) {
						t.Errorf("%s: conversion to vql of a non-constant", fset.Position(n.Pos()))
					}
				}
			case *ast.CompositeLit:
				// call{text: X}: X must be a constant or a vql-typed name
				// (which is itself only ever assigned constants).
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok || !isVQL(info.Types[kv.Value].Type) {
						continue
					}
					checked++
					if !constant(kv.Value) {
						t.Errorf("%s: VQL text in a literal is not a constant", fset.Position(kv.Pos()))
					}
				}
			case *ast.AssignStmt:
				for _, rhs := range n.Rhs {
					if isVQL(info.Types[rhs].Type) && !constant(rhs) {
						t.Errorf("%s: assignment of a non-constant vql", fset.Position(rhs.Pos()))
					}
				}
			case *ast.BinaryExpr:
				if isVQL(info.Types[n].Type) && !constant(n) {
					t.Errorf("%s: vql built at run time", fset.Position(n.Pos()))
				}
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("found no VQL text to check; the walker is broken")
	}
	// The only place that turns a vql into wire text is call.text in run().
	for _, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			if kv, ok := n.(*ast.KeyValueExpr); ok {
				if id, ok := kv.Key.(*ast.Ident); ok && id.Name == "VQL" {
					if s := exprString(fset, kv.Value); s != "string(q.text)" {
						t.Errorf("%s: VQLRequest.VQL set from %s, want string(q.text)", fset.Position(kv.Pos()), s)
					}
				}
			}
			return true
		})
	}
}

func exprString(fset *token.FileSet, e ast.Expr) string {
	var b bytes.Buffer
	if err := printer.Fprint(&b, fset, e); err != nil {
		return ""
	}
	return b.String()
}

// exportData asks the go command for the compiled export data of every
// dependency, so go/types can check the package without x/tools.
func exportData(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-export", "-f", "{{.ImportPath}}={{.Export}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && v != "" {
			m[k] = v
		}
	}
	return m
}
