package archtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// moduleGraph lists the module's packages and their non-test imports with go list.
func moduleGraph(t *testing.T) Graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	g := Graph{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := Project.local(fields[0])
		if !ok {
			t.Fatalf("go list: %s is not in module %s", fields[0], Module)
		}
		g[pkg] = fields[1:]
	}
	return g
}

// TestImportRules: every package of the module imports only what docs/architecture.md
// allows it.
func TestImportRules(t *testing.T) {
	g := moduleGraph(t)
	for _, must := range []string{"store", "recovery", "tui", "worker", "cmd/rayctl"} {
		if _, ok := g[must]; !ok {
			t.Fatalf("go list did not list %s: %v", must, g)
		}
	}
	for _, v := range Project.Check(g) {
		t.Error(v)
	}
}

// TestRulesDocumented: each rule's package has its line in docs/architecture.md.
func TestRulesDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Project.Packages {
		name := "`" + strings.Replace(r.Package, "/...", "/*", 1) + "`"
		if !strings.Contains(string(doc), name) {
			t.Errorf("docs/architecture.md does not mention %s: write its dependency rule there", name)
		}
	}
}

// TestCheck: the checker finds each kind of broken rule in a fake import graph.
func TestCheck(t *testing.T) {
	const m = Module + "/"
	rules := Rules{
		Module: Module,
		Packages: []Rule{
			{Package: "store", Allow: []string{Std, pgx}},
			{Package: "store/storetest", Allow: []string{Std, "store"}, TestsOnly: true},
			{Package: "recovery", Allow: []string{Std, "store"}},
			{Package: "tui", Allow: []string{Std, "store", "recovery", charm}},
			{Package: "worker", Allow: []string{Std, "store"}},
			{Package: "worker/rayrunner", Allow: []string{Std, "worker"}},
			{Package: "internal/clidoc", Allow: []string{Std, cli}, OnlyFor: []string{"cmd/..."}},
			{Package: "cmd/...", Allow: []string{Any}},
			{Package: "termquery", Allow: []string{"syscall"}},
		},
		Only: []Only{
			{Import: pgx, By: []string{"store", "cmd/..."}, Why: "only store imports pgx"},
			{Import: cli, By: []string{"cmd/...", "internal/clidoc"}, Why: "only cmd/* uses urfave/cli"},
		},
	}
	ok := Graph{
		"store":            {"context", "github.com/jackc/pgx/v5", "github.com/jackc/pgx/v5/pgxpool"},
		"recovery":         {"fmt", m + "store"},
		"tui":              {m + "store", m + "recovery", "github.com/charmbracelet/bubbletea"},
		"worker":           {m + "store"},
		"worker/rayrunner": {m + "worker"},
		"internal/clidoc":  {"github.com/urfave/cli/v2"},
		"cmd/rayctl":       {m + "tui", m + "internal/clidoc", "github.com/urfave/cli/v2", "github.com/jackc/pgx/v5/pgxpool"},
		"termquery":        {"syscall"},
	}
	tests := []struct {
		name string
		pkg  string
		imp  string // added to ok[pkg]
		want string // a substring of the one violation; "" for none
	}{
		{"the real graph's shape", "", "", ""},
		{"recovery imports pgx", "recovery", "github.com/jackc/pgx/v5", "recovery imports github.com/jackc/pgx/v5: not allowed"},
		{"tui imports worker", "tui", m + "worker", "tui imports " + m + "worker: not allowed"},
		{"tui imports cmd", "tui", m + "cmd/rayctl", "tui imports " + m + "cmd/rayctl: not allowed"},
		{"worker imports urfave/cli", "worker", "github.com/urfave/cli/v2", "worker imports github.com/urfave/cli/v2: not allowed"},
		{"store imports UI code", "store", m + "tui", "store imports " + m + "tui"},
		{"a runner's sub-package of the loop imported by it", "worker", m + "worker/rayrunner", "worker imports " + m + "worker/rayrunner"},
		{"a test helper in a binary", "cmd/rayctl", m + "store/storetest", "cmd/rayctl imports store/storetest: that package is for tests only"},
		{"a cmd-only helper below cmd", "recovery", m + "internal/clidoc", "recovery imports " + m + "internal/clidoc: not allowed"},
		{"std beyond the one allowed", "termquery", "os", "termquery imports os: not allowed"},
		{"a package without a rule", "newpkg", "fmt", "newpkg: no rule"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := Graph{}
			for k, v := range ok {
				g[k] = slices.Clone(v)
			}
			if tc.pkg != "" {
				g[tc.pkg] = append(g[tc.pkg], tc.imp)
			}
			got := rules.Check(g)
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("violations %q, want none", got)
				}
				return
			}
			if len(got) == 0 || !slices.ContainsFunc(got, func(v string) bool { return strings.Contains(v, tc.want) }) {
				t.Fatalf("violations %q, want one containing %q", got, tc.want)
			}
		})
	}
}

// TestOnlyRules: a library's Only rule holds even where a package's allow list would let it in.
func TestOnlyRules(t *testing.T) {
	rules := Rules{
		Module:   Module,
		Packages: []Rule{{Package: "loose", Allow: []string{Any}}},
		Only:     []Only{{Import: pgx, By: []string{"store"}, Why: "only store imports pgx"}},
	}
	got := rules.Check(Graph{"loose": {"github.com/jackc/pgx/v5/pgconn"}})
	if len(got) != 1 || !strings.Contains(got[0], "only store imports pgx") {
		t.Fatalf("violations %q, want the Only rule's", got)
	}
	if got := rules.Check(Graph{"loose": {"fmt"}}); len(got) != 0 {
		t.Fatalf("violations %q, want none", got)
	}
}

// TestShared: a Shared package may be imported by any package, and is held to its own rule.
func TestShared(t *testing.T) {
	const m = Module + "/"
	rules := Rules{
		Module:   Module,
		Packages: []Rule{{Package: "store", Allow: []string{Std}}, {Package: "defs", Allow: []string{Std}}},
		Shared:   []string{"defs"},
	}
	if got := rules.Check(Graph{"store": {m + "defs"}, "defs": {"time"}}); len(got) != 0 {
		t.Fatalf("violations %q, want none", got)
	}
	if got := rules.Check(Graph{"defs": {m + "store"}, "store": nil}); len(got) != 1 || !strings.Contains(got[0], "defs imports "+m+"store") {
		t.Fatalf("violations %q, want defs' own rule to refuse store", got)
	}
}
