// Package archtest enforces docs/architecture.md's dependency rules: which packages of the
// module may import which, and which libraries only some packages may use. Its test runs
// `go list` over the module and fails on any import the rules do not allow, and on any
// package that has no rule (a new package needs its line in docs/architecture.md and here).
// It imports only the standard library.
package archtest

import (
	"fmt"
	"sort"
	"strings"
)

// Graph maps each package of the module (its path inside the module, "" for the root) to
// what its non-test files import (full import paths).
type Graph map[string][]string

// Std stands for every standard library package in an allow list.
const Std = "std"

// Rule is one line of docs/architecture.md for one package.
type Rule struct {
	// Package is a package path inside the module; "cmd/..." matches cmd and every package
	// below it.
	Package string
	// Allow lists what the package may import: Std, packages of the module by their path
	// inside it ("store", "worker/..."), other modules' packages by full path
	// ("github.com/jackc/pgx/v5/..."), or Any. Anything else is a violation.
	Allow []string
	// TestsOnly: only test files import the package (no package's non-test files do).
	TestsOnly bool
	// OnlyFor, when set, are the only packages whose non-test files may import the package.
	OnlyFor []string
}

// Only says that only some packages of the module may import a library.
type Only struct {
	Import string   // a pattern over full import paths, e.g. "github.com/jackc/pgx/v5/..."
	By     []string // patterns over packages of the module
	Why    string
}

// Rules are the rule set: one Rule for each package, and the library restrictions.
type Rules struct {
	Module   string // the module path
	Packages []Rule
	Only     []Only
	// Shared are packages of the module any package may import (each still has its own
	// Rule): leaves that hold definitions, such as internal/settings' defaults.
	Shared []string
}

// Any in an allow list allows every import (the mains).
const Any = "..."

// match reports whether path matches pattern: exactly, or below it for "x/...".
func match(pattern, path string) bool {
	if pattern == Any {
		return true
	}
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == p || strings.HasPrefix(path, p+"/")
	}
	return pattern == path
}

func matchAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if match(p, path) {
			return true
		}
	}
	return false
}

// isStd reports whether an import path is the standard library's (no dot in its first
// element).
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// local returns an import path's path inside the module, and whether it is in the module.
func (r Rules) local(path string) (string, bool) {
	if path == r.Module {
		return "", true
	}
	return strings.CutPrefix(path, r.Module+"/")
}

// rule returns the most specific rule for pkg: an exact one, else the longest "/..." one.
func (r Rules) rule(pkg string) (Rule, bool) {
	specificity := func(pattern string) int {
		if p, ok := strings.CutSuffix(pattern, "/..."); ok {
			return len(p)
		}
		return 1 << 20
	}
	best, found := Rule{}, false
	for _, ru := range r.Packages {
		if match(ru.Package, pkg) && (!found || specificity(ru.Package) > specificity(best.Package)) {
			best, found = ru, true
		}
	}
	return best, found
}

// allowed reports whether a package whose rule is ru may import imp.
func (r Rules) allowed(ru Rule, imp string) bool {
	if isStd(imp) {
		return matchAny(ru.Allow, Std) || matchAny(ru.Allow, imp)
	}
	if l, ok := r.local(imp); ok {
		return matchAny(ru.Allow, l) || matchAny(r.Shared, l)
	}
	return matchAny(ru.Allow, imp)
}

// Check returns every import of g the rules do not allow, one line each, sorted.
func (r Rules) Check(g Graph) []string {
	var out []string
	for pkg, imports := range g {
		name := pkg
		if name == "" {
			name = "(module root)"
		}
		ru, ok := r.rule(pkg)
		if !ok {
			out = append(out, fmt.Sprintf("%s: no rule: add its line to docs/architecture.md and its Rule to internal/archtest", name))
			continue
		}
		for _, imp := range imports {
			if !r.allowed(ru, imp) {
				out = append(out, fmt.Sprintf("%s imports %s: not allowed by its rule (%s)", name, imp, strings.Join(ru.Allow, ", ")))
			}
			l, inModule := r.local(imp)
			if !inModule {
				for _, o := range r.Only {
					if match(o.Import, imp) && !matchAny(o.By, pkg) {
						out = append(out, fmt.Sprintf("%s imports %s: %s", name, imp, o.Why))
					}
				}
				continue
			}
			if target, ok := r.rule(l); ok {
				switch {
				case target.TestsOnly:
					out = append(out, fmt.Sprintf("%s imports %s: that package is for tests only", name, l))
				case len(target.OnlyFor) > 0 && !matchAny(target.OnlyFor, pkg):
					out = append(out, fmt.Sprintf("%s imports %s: only %s may", name, l, strings.Join(target.OnlyFor, ", ")))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
