package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// goreleaser is the part of .goreleaser.yaml the tests read.
type goreleaser struct {
	Builds []struct {
		ID      string   `json:"id"`
		Main    string   `json:"main"`
		Binary  string   `json:"binary"`
		Ldflags []string `json:"ldflags"`
		Goos    []string `json:"goos"`
		Goarch  []string `json:"goarch"`
	} `json:"builds"`
	Nfpms []struct {
		ID       string `json:"id"`
		Contents []struct {
			Src      string `json:"src"`
			Dst      string `json:"dst"`
			Type     string `json:"type"`
			Packager string `json:"packager"`
		} `json:"contents"`
	} `json:"nfpms"`
}

func goreleaserConfig(t *testing.T) goreleaser {
	t.Helper()
	b, err := os.ReadFile("../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var g goreleaser
	if err := yaml.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestReleaseLdflags: built with .goreleaser.yaml's ldflags, both binaries report the
// version, commit and date the release stamps (a wrong -X path silently does nothing).
func TestReleaseLdflags(t *testing.T) {
	g := goreleaserConfig(t)
	flags := map[string]string{}
	for _, b := range g.Builds {
		flags[b.ID] = strings.Join(b.Ldflags, " ")
	}
	if flags["rayctl"] != flags["rayworker"] {
		t.Fatalf("the builds' ldflags differ:\n%s\n%s", flags["rayctl"], flags["rayworker"])
	}
	dir := binaries(t)
	out, err := exec.Command(filepath.Join(dir, "rayctl"), "version", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version, Commit, Date string }
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if v.Version != testVersion || v.Commit != testCommit || v.Date != testDate {
		t.Fatalf("rayctl version -o json = %+v, want %s %s %s", v, testVersion, testCommit, testDate)
	}
	out, err = exec.Command(filepath.Join(dir, "rayworker"), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "rayworker version " + testVersion + " (commit " + testCommit[:12] + ", built " + testDate; !strings.HasPrefix(string(out), want) {
		t.Fatalf("rayworker --version = %q, want %q...", out, want)
	}
}

// TestCompletionScriptsWork: the bash script the packages install completes rayworker's and
// rayctl's flags and commands by asking the binary, in a real bash.
func TestCompletionScriptsWork(t *testing.T) {
	bash := requireTool(t, "bash", "apt-get install bash")
	dir := binaries(t)
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"rayworker", "--shutdown"}, "--shutdown-timeout"},
		{[]string{"rayworker", "--ray-entrypoint-n"}, "--ray-entrypoint-num-cpus"},
		{[]string{"rayctl", "req"}, "requeue"},
		{[]string{"rayctl", "requeue", "--sta"}, "--state"},
	} {
		script, err := exec.Command(filepath.Join(dir, c.words[0]), "completion", "bash").Output()
		if err != nil {
			t.Fatal(err)
		}
		fn := "_" + c.words[0] + "_complete"
		prog := string(script) + "\nCOMP_WORDS=(" + strings.Join(c.words, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(c.words)-1) + "\n" + fn + "\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		cmd := exec.Command(bash, "--norc", "-c", prog)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", c.words, err, out)
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(c.want) + `$`).Match(out) {
			t.Errorf("completing %v: got %q, want %s among them", c.words, out, c.want)
		}
	}
}

// TestImageDefinitionsAgree: the daemonless image builder, the Dockerfile, the app-image
// example and the app-image overlays put and run the binary at one path, as one non-root
// user.
func TestImageDefinitionsAgree(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	builder := read("cmd/ociimage/main.go")
	if !strings.Contains(builder, `binDir     = "`+filepath.Dir(imageBinaryPath)+`"`) || !strings.Contains(builder, "uid        = 65532") {
		t.Error("deploy/cmd/ociimage does not put the binary in " + filepath.Dir(imageBinaryPath) + " as uid 65532")
	}
	df := read("docker/Dockerfile")
	for _, want := range []string{
		"COPY --from=build /out/rayworker " + imageBinaryPath, `ENTRYPOINT ["` + imageBinaryPath + `"]`,
		"COPY --from=build /out/rayctl /usr/local/bin/rayctl", `ENTRYPOINT ["/usr/local/bin/rayctl"]`, "USER 65532:65532",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("deploy/docker/Dockerfile lacks %q", want)
		}
	}
	if app := read("docker/Dockerfile.app"); !strings.Contains(app, "COPY --from=rayworker "+imageBinaryPath+" "+imageBinaryPath) {
		t.Errorf("deploy/docker/Dockerfile.app does not copy %s", imageBinaryPath)
	}
	// the overlays' command is checked against imageBinaryPath in TestOverlays
}

// TestReleaseTargetsCompile: every OS and architecture .goreleaser.yaml releases compiles
// (a Linux-only syscall constant once broke the darwin build of rayworker). The host's own
// target is built by binaries(); the others are cross-compiled here, one per OS and one per
// architecture, so a cold CI cache pays for two.
func TestReleaseTargetsCompile(t *testing.T) {
	g := goreleaserConfig(t)
	targets := map[string]bool{}
	for _, b := range g.Builds {
		for _, goos := range b.Goos {
			for _, arch := range b.Goarch {
				targets[goos+"/"+arch] = true
			}
		}
	}
	for _, want := range []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"} {
		if !targets[want] {
			t.Errorf(".goreleaser.yaml does not release %s", want)
		}
	}
	for _, target := range []string{"darwin/arm64", "linux/arm64"} {
		goos, arch, _ := strings.Cut(target, "/")
		cmd := exec.Command("go", "build", "-trimpath", "-o", t.TempDir(), "./cmd/rayctl", "./cmd/rayworker")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("GOOS=%s GOARCH=%s go build: %v\n%s", goos, arch, err, out)
		}
	}
}
