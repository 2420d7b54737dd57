package deploy

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// The release tier (opt-in: RAYCTL_RELEASE=1): goreleaser check and a snapshot release
// (scripts/release.sh; nothing is published), then the artifacts are inspected: the .deb
// packages unpacked into a scratch root, the units verified there, the images opened.

func needRelease(t *testing.T) string {
	t.Helper()
	if os.Getenv("RAYCTL_RELEASE") != "1" {
		t.Skip("the release tier is opt-in: RAYCTL_RELEASE=1 (goreleaser check and a snapshot release)")
	}
	releaseOnce.Do(func() {
		for _, step := range []string{"check", "snapshot"} {
			cmd := exec.Command("scripts/release.sh", step)
			cmd.Dir = ".."
			out, err := cmd.CombinedOutput()
			if err != nil {
				releaseErr = &buildError{name: "scripts/release.sh " + step, out: tail(string(out), 60), err: err}
				return
			}
			releaseLog += string(out)
		}
	})
	if releaseErr != nil {
		t.Fatal(releaseErr)
	}
	return "../dist"
}

var (
	releaseOnce sync.Once
	releaseErr  error
	releaseLog  string
)

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// snapshotVersion is the version goreleaser gave the snapshot (from the archive names; the
// packages spell it their own way: 1.2.3~SNAPSHOT-abc for deb, 1.2.3~SNAPSHOT_abc-1 for rpm).
func snapshotVersion(t *testing.T, dist string) string {
	t.Helper()
	archives, _ := filepath.Glob(filepath.Join(dist, "rayctl_*_linux_amd64.tar.gz"))
	if len(archives) != 1 {
		t.Fatalf("want one linux amd64 archive in dist/, have %v", archives)
	}
	return regexp.MustCompile(`rayctl_(.+)_linux_amd64\.tar\.gz$`).FindStringSubmatch(archives[0])[1]
}

// one returns the single file matching pattern in dist/.
func one(t *testing.T, dist, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dist, pattern))
	if len(m) != 1 {
		t.Fatalf("want one dist/%s, have %v", pattern, m)
	}
	return filepath.Base(m[0])
}

// TestReleaseSnapshotArtifacts: the snapshot holds every archive, package, SBOM and image,
// and the checksums cover them.
func TestReleaseSnapshotArtifacts(t *testing.T) {
	dist := needRelease(t)
	v := snapshotVersion(t, dist)
	want := []string{"checksums.txt"}
	for _, osarch := range []string{"linux_amd64", "linux_arm64", "darwin_amd64", "darwin_arm64"} {
		want = append(want, "rayctl_"+v+"_"+osarch+".tar.gz")
	}
	for _, pkg := range []string{"rayctl", "rayworker"} {
		want = append(want, one(t, dist, pkg+"_*_amd64.deb"), one(t, dist, pkg+"_*_arm64.deb"),
			one(t, dist, pkg+"-*.x86_64.rpm"), one(t, dist, pkg+"-*.aarch64.rpm"))
		for _, osarch := range []string{"linux_amd64", "linux_arm64", "darwin_amd64", "darwin_arm64"} {
			want = append(want, pkg+"_"+v+"_"+osarch+".cdx.json")
		}
		want = append(want, "images/"+pkg+"/index.json")
	}
	sums, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range want {
		if _, err := os.Stat(filepath.Join(dist, f)); err != nil {
			entries, _ := filepath.Glob(filepath.Join(dist, "*"))
			t.Errorf("dist/%s: %v (dist has %v)", f, err, entries)
			continue
		}
		if f != "checksums.txt" && !strings.Contains(string(sums), "  "+f+"\n") {
			t.Errorf("checksums.txt does not cover %s", f)
		}
	}
}

// TestReleaseDebInstalls: the .deb packages unpacked into a scratch root put the binaries,
// units, sysusers entry, config, completions and man pages where Debian looks for them; the
// installed units pass systemd-analyze verify with the installed binary; the installed
// binary reports the snapshot's version.
func TestReleaseDebInstalls(t *testing.T) {
	dist := needRelease(t)
	dpkg := requireTool(t, "dpkg-deb", "apt-get install dpkg")
	v := snapshotVersion(t, dist)
	root := t.TempDir()
	// systemd-analyze --root needs the system's own units (sysinit.target, ...) in the root
	if err := exec.Command("cp", "-a", "/usr/lib/systemd/system/.", filepath.Join(root, "usr/lib/systemd/system")+"/").Run(); err != nil {
		_ = os.MkdirAll(filepath.Join(root, "usr/lib/systemd/system"), 0o755)
		if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system/.", filepath.Join(root, "usr/lib/systemd/system")+"/").CombinedOutput(); err != nil {
			t.Fatalf("copy the system units: %v\n%s", err, out)
		}
	}
	for _, pkg := range []string{"rayctl", "rayworker"} {
		deb := filepath.Join(dist, one(t, dist, pkg+"_*_amd64.deb"))
		if out, err := exec.Command(dpkg, "-x", deb, root).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
		}
		fields, err := exec.Command(dpkg, "-f", deb, "Package", "Version", "Architecture").Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(fields), "Package: "+pkg) || !strings.Contains(string(fields), "Architecture: amd64") {
			t.Errorf("%s control: %s", deb, fields)
		}
		if pkg == "rayworker" {
			ctl := t.TempDir()
			if out, err := exec.Command(dpkg, "-e", deb, ctl).CombinedOutput(); err != nil {
				t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
			}
			for _, f := range []string{"postinst", "prerm", "postrm", "conffiles"} {
				if _, err := os.Stat(filepath.Join(ctl, f)); err != nil {
					t.Errorf("the rayworker .deb has no %s", f)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); !strings.Contains(string(b), "/etc/rayworker/rayworker.env") {
				t.Errorf("rayworker.env is not a conffile (an upgrade would overwrite local settings): %q", b)
			}
		}
	}
	for path, mode := range map[string]os.FileMode{
		"usr/bin/rayctl":                                     0o755,
		"usr/bin/rayworker":                                  0o755,
		"usr/lib/systemd/system/rayworker.service":           0o644,
		"usr/lib/systemd/system/rayworker@.service":          0o644,
		"usr/lib/sysusers.d/rayworker.conf":                  0o644,
		"etc/rayworker/rayworker.env":                        0o640,
		"usr/share/man/man1/rayctl.1.gz":                     0o644,
		"usr/share/man/man1/rayworker.1.gz":                  0o644,
		"usr/share/bash-completion/completions/rayctl":       0o644,
		"usr/share/bash-completion/completions/rayworker":    0o644,
		"usr/share/zsh/vendor-completions/_rayctl":           0o644,
		"usr/share/zsh/vendor-completions/_rayworker":        0o644,
		"usr/share/fish/vendor_completions.d/rayctl.fish":    0o644,
		"usr/share/fish/vendor_completions.d/rayworker.fish": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("not installed: /%s", path)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("/%s has mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	// the installed units are the repository's
	for _, u := range []string{"rayworker.service", "rayworker@.service"} {
		a, _ := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system", u))
		b, _ := os.ReadFile(filepath.Join("systemd", u))
		if string(a) != string(b) {
			t.Errorf("the installed %s differs from deploy/systemd/%s", u, u)
		}
	}
	// the man page is the binary's own, readable by man
	if out, err := exec.Command("sh", "-c", "zcat "+filepath.Join(root, "usr/share/man/man1/rayworker.1.gz")).Output(); err != nil || !strings.Contains(string(out), ".TH rayworker 1") {
		t.Errorf("rayworker.1.gz: %v %.80q", err, out)
	}
	// the installed binary is the snapshot
	out, err := exec.Command(filepath.Join(root, "usr/bin/rayworker"), "--version").Output()
	if err != nil || !strings.Contains(string(out), "rayworker version "+v+" (commit ") {
		t.Errorf("installed rayworker --version: %v %q (want %s)", err, out, v)
	}
	analyze := requireTool(t, "systemd-analyze", "apt-get install systemd")
	cmd := exec.Command(analyze, "verify", "--man=no", "--root="+root, "rayworker.service", "rayworker@default.service")
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("systemd-analyze verify --root (the installed units and binary): %v\n%s", err, out)
	}
}

// TestReleaseImages: each image index holds linux/amd64 and linux/arm64; each image runs its
// binary as the non-root user, has no shell, and (amd64, run here) reports the snapshot's version.
func TestReleaseImages(t *testing.T) {
	dist := needRelease(t)
	v := snapshotVersion(t, dist)
	for _, nm := range []string{"rayctl", "rayworker"} {
		idx, err := layout.ImageIndexFromPath(filepath.Join(dist, "images", nm))
		if err != nil {
			t.Fatal(err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		plats := map[string]v1.Hash{}
		for _, d := range m.Manifests {
			if d.Platform != nil {
				plats[d.Platform.OS+"/"+d.Platform.Architecture] = d.Digest
			}
		}
		if len(plats) != 2 || plats["linux/amd64"] == (v1.Hash{}) || plats["linux/arm64"] == (v1.Hash{}) {
			t.Fatalf("%s index platforms: %v", nm, plats)
		}
		for plat, digest := range plats {
			img, err := idx.Image(digest)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			bin := "/usr/local/bin/" + nm
			if cf.Config.User != "65532:65532" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != bin ||
				cf.Config.Labels["org.opencontainers.image.version"] != v || plat != cf.OS+"/"+cf.Architecture {
				t.Errorf("%s %s config: user %q entrypoint %v labels %v os/arch %s/%s", nm, plat, cf.Config.User, cf.Config.Entrypoint, cf.Config.Labels, cf.OS, cf.Architecture)
			}
			files := map[string]*tar.Header{}
			rc := mutate.Extract(img)
			tr := tar.NewReader(rc)
			var exe []byte
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				name := "/" + strings.TrimPrefix(h.Name, "./")
				files[strings.TrimSuffix(name, "/")] = h
				if name == bin {
					if exe, err = io.ReadAll(tr); err != nil {
						t.Fatal(err)
					}
				}
			}
			rc.Close()
			for _, sh := range []string{"/bin/sh", "/bin/bash", "/usr/bin/sh", "/bin/busybox"} {
				if _, ok := files[sh]; ok {
					t.Errorf("%s %s has a shell: %s", nm, plat, sh)
				}
			}
			if h := files[bin]; h == nil || h.Mode&0o111 == 0 || files["/etc/ssl/certs/ca-certificates.crt"] == nil {
				t.Errorf("%s %s: binary %v, CA bundle present %v", nm, plat, h, files["/etc/ssl/certs/ca-certificates.crt"] != nil)
			}
			if plat == "linux/amd64" && nm == "rayworker" {
				p := filepath.Join(t.TempDir(), nm)
				if err := os.WriteFile(p, exe, 0o755); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(p, "--version").Output()
				if err != nil || !strings.Contains(string(out), v) {
					t.Errorf("the image's rayworker --version: %v %q, want %s", err, out, v)
				}
			}
		}
	}
}

// TestReleaseSBOM: each SBOM names the module and a dependency compiled into the binary.
func TestReleaseSBOM(t *testing.T) {
	dist := needRelease(t)
	v := snapshotVersion(t, dist)
	b, err := os.ReadFile(filepath.Join(dist, "rayworker_"+v+"_linux_amd64.cdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"bomFormat": "CycloneDX"`, "github.com/rayctl/rayctl", "github.com/jackc/pgx/v5"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the rayworker SBOM lacks %q", want)
		}
	}
}
