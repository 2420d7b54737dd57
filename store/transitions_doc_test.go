package store_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// transitionsFile holds every state transition of a task row.
const transitionsFile = "transitions.go"

// taskWriteSQL matches SQL that changes task rows.
var taskWriteSQL = regexp.MustCompile(`(?i)\b(UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+django_ray_raytaskexecution\b`)

// storeFiles parses the package's non-test files.
func storeFiles(t *testing.T) map[string]*ast.File {
	t.Helper()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	if files[transitionsFile] == nil {
		t.Fatalf("%s is missing", transitionsFile)
	}
	return files
}

// storeMethods returns the exported methods of *Store declared in f.
func storeMethods(f *ast.File) []string {
	var out []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Recv == nil || !fn.Name.IsExported() || len(fn.Recv.List) != 1 {
			continue
		}
		if star, ok := fn.Recv.List[0].Type.(*ast.StarExpr); ok {
			if id, ok := star.X.(*ast.Ident); ok && id.Name == "Store" {
				out = append(out, fn.Name.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestTransitionsInOneFile: no file of the package but transitions.go writes task rows, so a
// reader finds every transition in one place.
func TestTransitionsInOneFile(t *testing.T) {
	for name, f := range storeFiles(t) {
		if name == transitionsFile {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && taskWriteSQL.MatchString(s) {
				t.Errorf("%s writes task rows (%q): move the transition to %s and name it in docs/task_states.md",
					name, taskWriteSQL.FindString(s), transitionsFile)
			}
			return true
		})
	}
}

// TestTaskStatesNamesEveryTransition: docs/task_states.md's tables name every transition
// function of the store, and name no Store method as a transition that is not one.
func TestTaskStatesNamesEveryTransition(t *testing.T) {
	files := storeFiles(t)
	doc, err := os.ReadFile(filepath.Join("..", "docs", "task_states.md"))
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{} // backticked names in the doc's table rows
	code := regexp.MustCompile("`([A-Za-z]+)`")
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "|") {
			for _, m := range code.FindAllStringSubmatch(line, -1) {
				named[m[1]] = true
			}
		}
	}
	transitions := storeMethods(files[transitionsFile])
	if len(transitions) == 0 {
		t.Fatalf("no transitions found in %s", transitionsFile)
	}
	for _, name := range transitions {
		if !named[name] {
			t.Errorf("docs/task_states.md does not name the transition Store.%s in its tables: add its arrow", name)
		}
	}
	for file, f := range files {
		if file == transitionsFile {
			continue
		}
		for _, name := range storeMethods(f) {
			if named[name] {
				t.Errorf("docs/task_states.md names Store.%s (%s) as a transition, but it is not in %s", name, file, transitionsFile)
			}
		}
	}
}
