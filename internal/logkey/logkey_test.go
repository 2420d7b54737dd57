package logkey

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// logMethods are slog's (and any logger's like it) calls that take key/value pairs.
var logMethods = map[string]bool{
	"Debug": true, "Info": true, "Warn": true, "Error": true,
	"DebugContext": true, "InfoContext": true, "WarnContext": true, "ErrorContext": true,
	"Log": true, "With": true, "Any": true, "String": true,
}

// errorLike reports whether e is, by its name, an error: err, fooErr, errFoo, x.err, ctx.Err(),
// err.Error(). The check is syntactic (no type information), which is what keeps it fast and
// simple; the module names its errors this way.
func errorLike(e ast.Expr) bool {
	named := func(n string) bool {
		return n == "err" || strings.HasSuffix(n, "Err") ||
			(len(n) > 3 && strings.HasPrefix(n, "err") && n[3] >= 'A' && n[3] <= 'Z')
	}
	switch e := e.(type) {
	case *ast.Ident:
		return named(e.Name)
	case *ast.SelectorExpr:
		return named(e.Sel.Name)
	case *ast.CallExpr: // ctx.Err(), err.Error()
		if sel, ok := e.Fun.(*ast.SelectorExpr); ok && len(e.Args) == 0 {
			return sel.Sel.Name == "Err" || (sel.Sel.Name == "Error" && errorLike(sel.X))
		}
	case *ast.ParenExpr:
		return errorLike(e.X)
	}
	return false
}

// misKeyed returns the positions in f of an error-like value that follows a string literal
// other than ErrorKey in a logging call (or in an append building its attributes).
func misKeyed(fset *token.FileSet, f *ast.File) []string {
	var bad []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		switch fun := call.Fun.(type) {
		case *ast.SelectorExpr:
			if !logMethods[fun.Sel.Name] {
				return true
			}
		case *ast.Ident:
			if fun.Name != "append" {
				return true
			}
		default:
			return true
		}
		for i := 0; i+1 < len(call.Args); i++ {
			lit, ok := call.Args[i].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING || !errorLike(call.Args[i+1]) {
				continue
			}
			if key, _ := strconv.Unquote(lit.Value); key != ErrorKey {
				bad = append(bad, fset.Position(lit.Pos()).String()+": key "+lit.Value)
			}
		}
		return true
	})
	return bad
}

// TestErrorsAreLoggedUnderOneKey scans every non-test Go file of the module (the deploy
// module and testdata aside) for an error logged under a key other than "error".
func TestErrorsAreLoggedUnderOneKey(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "deploy" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		for _, b := range misKeyed(fset, f) {
			t.Errorf("%s: log errors under %q", strings.TrimPrefix(b, root+string(filepath.Separator)), ErrorKey)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("scanned only %d files: is the module root %s?", files, root)
	}
}

// TestMisKeyed: the scan finds what it is for, and leaves alone what it is not.
func TestMisKeyed(t *testing.T) {
	src := `package p
func f() {
	log.Warn("snapshot failed", "err", err)                          // bad
	log.Error("x", "op", op, "error", err)                           // good
	log.Warn("not ready", "reason", err.Error())                     // bad
	log.Info("x", append(attrs, "cause", runErr)...)                 // bad (the append)
	log.ErrorContext(ctx, "x", "error", ctx.Err())                   // good
	slog.Any("failure", j.logErr)                                    // bad
	log.Warn("x", "stderr", stderr, "errors", n)                     // good: not errors
	_ = fmt.Errorf("%s: %w", name, err)                              // good: not a log call
	log.Warn("key-less", err)                                        // bad: !BADKEY
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, b := range misKeyed(fset, f) {
		n, _ := strconv.Atoi(strings.Split(b, ":")[1])
		lines = append(lines, n)
	}
	want := []int{3, 5, 6, 8, 11}
	if !slices.Equal(lines, want) {
		t.Fatalf("flagged lines %v, want %v", lines, want)
	}
}
