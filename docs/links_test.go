// Package docs_test checks the documentation for people: every relative link in README.md and
// docs/*.md names a file that exists and, with a #fragment, a heading in that file, by
// GitHub's anchor rules. A moved section cannot leave a dead link behind.
package docs_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// link matches an inline Markdown link or image: [text](target) or [text](target "title").
// The text may not hold brackets; none of ours do.
var link = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// inlineCode matches a code span, whose text is not Markdown.
var inlineCode = regexp.MustCompile("`+[^`]*`+")

// docLine is one line of a doc outside code blocks, with its line number.
type docLine struct {
	n    int
	text string
}

// prose returns the lines of a Markdown file outside fenced code blocks.
func prose(b []byte) []docLine {
	var out []docLine
	fence := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		out = append(out, docLine{n, line})
	}
	return out
}

// anchors returns the anchors GitHub makes for a Markdown file's headings: the heading's text
// without its Markdown, lower-cased, with every character that is not a letter, a digit, a
// space, '-' or '_' removed and each space made '-'; a repeated anchor gets -1, -2, ...
func anchors(b []byte) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, l := range prose(b) {
		if !strings.HasPrefix(l.text, "#") {
			continue
		}
		level := len(l.text) - len(strings.TrimLeft(l.text, "#"))
		if level > 6 || !strings.HasPrefix(l.text[level:], " ") {
			continue
		}
		a := slug(strings.TrimSpace(l.text[level:]))
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// slug is GitHub's anchor for a heading's text: it keeps letters, marks, digits, '-' and '_'
// (Ruby's \p{Word} and '-') and makes spaces '-'.
func slug(heading string) string {
	// links in a heading count by their text
	heading = link.ReplaceAllStringFunc(heading, func(m string) string {
		return m[strings.Index(m, "[")+1 : strings.Index(m, "]")]
	})
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestSlug(t *testing.T) {
	for _, c := range []struct{ heading, want string }{
		{"Quick start", "quick-start"},
		{"rayctl top refresh at 1,000,000 rows", "rayctl-top-refresh-at-1000000-rows"},
		{"Ray Core mode (`--runner ray_core`)", "ray-core-mode---runner-ray_core"},
		{"Security properties: secrets, terminal output, result paths", "security-properties-secrets-terminal-output-result-paths"},
		{"1) Queue backlog keeps growing", "1-queue-backlog-keeps-growing"},
		{"Executors: rayworker --sync (pool) and --runner ray_core against django-ray 0.2.0's worker", "executors-rayworker---sync-pool-and---runner-ray_core-against-django-ray-020s-worker"},
		{"Checked by `make test`", "checked-by-make-test"},
		{"See [the runbook](runbook.md)", "see-the-runbook"},
	} {
		if got := slug(c.heading); got != c.want {
			t.Errorf("slug(%q) = %q, want %q", c.heading, got, c.want)
		}
	}
}

// TestLinks: every relative link in README.md and docs/*.md resolves.
func TestLinks(t *testing.T) {
	docs, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	files := append([]string{filepath.Join("..", "README.md")}, docs...)
	if len(files) < 5 {
		t.Fatalf("found only %v: run from docs/", files)
	}
	cache := map[string]map[string]bool{}
	headings := func(path string) (map[string]bool, error) {
		if a, ok := cache[path]; ok {
			return a, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		cache[path] = anchors(b)
		return cache[path], nil
	}
	checked := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// the prose as one text (code blocks blanked, line numbers kept), so a link whose text
		// wraps onto the next line is found too
		lines := strings.Split(string(b), "\n")
		keep := make([]string, len(lines))
		for _, l := range prose(b) {
			keep[l.n-1] = inlineCode.ReplaceAllString(l.text, "")
		}
		text := strings.Join(keep, "\n")
		for _, ix := range link.FindAllStringSubmatchIndex(text, -1) {
			target := text[ix[2]:ix[3]]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			where := fmt.Sprintf("%s:%d: %s", file, 1+strings.Count(text[:ix[0]], "\n"), target)
			path, frag, _ := strings.Cut(target, "#")
			dest := file
			if path != "" {
				dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: no such file or directory", where)
					continue
				}
			}
			if frag == "" {
				continue
			}
			if !strings.HasSuffix(dest, ".md") {
				t.Errorf("%s: an anchor in a file that is not Markdown", where)
				continue
			}
			a, err := headings(dest)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if !a[frag] {
				t.Errorf("%s: %s has no heading with anchor #%s", where, filepath.Base(dest), frag)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative link found: the link pattern is broken")
	}
}
