package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The manifests under kubernetes/ are checked offline, without a cluster: every overlay is
// rendered with kustomize (the library kubectl -k uses) and every object, rendered or in a
// plain file, is decoded with the Kubernetes API types in strict mode (an unknown or
// duplicated field, or a field in the wrong case, fails, as the API server's
// fieldValidation=Strict does). Then what the deployment guide promises is checked on the
// rendered objects: probes, the shutdown budget, non-root, secrets, selectors, the mode.

// decoder decodes the kinds the manifests use, strictly.
var decoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		policyv1.AddToScheme, rayv1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// decodeStrict decodes one YAML document into its API type.
func decodeStrict(doc []byte) (runtime.Object, error) {
	obj, gvk, err := decoder.Decode(doc, nil, nil)
	if err != nil {
		return nil, err
	}
	if gvk.Kind == "" {
		return nil, fmt.Errorf("no kind")
	}
	return obj, nil
}

// splitDocs splits a multi-document YAML stream, dropping empty documents.
func splitDocs(b []byte) [][]byte {
	var out [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			out = append(out, d)
		}
	}
	return out
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(append(out, line...), '\n')
		}
	}
	return out
}

// objects is a rendered overlay by kind and name.
type objects struct {
	all         []runtime.Object
	deployments map[string]*appsv1.Deployment
	configMaps  map[string]*corev1.ConfigMap
	pdbs        []*policyv1.PodDisruptionBudget
	jobs        map[string]*batchv1.Job
	cronJobs    map[string]*batchv1.CronJob
	rayClusters map[string]*rayv1.RayCluster
}

func render(t *testing.T, dir string) objects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	y, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	o := objects{deployments: map[string]*appsv1.Deployment{}, configMaps: map[string]*corev1.ConfigMap{},
		jobs: map[string]*batchv1.Job{}, cronJobs: map[string]*batchv1.CronJob{}, rayClusters: map[string]*rayv1.RayCluster{}}
	for _, doc := range splitDocs(y) {
		obj, err := decodeStrict(doc)
		if err != nil {
			t.Fatalf("%s: rendered object does not decode strictly: %v\n%s", dir, err, doc)
		}
		o.all = append(o.all, obj)
		switch v := obj.(type) {
		case *appsv1.Deployment:
			o.deployments[v.Name] = v
		case *corev1.ConfigMap:
			o.configMaps[v.Name] = v
		case *policyv1.PodDisruptionBudget:
			o.pdbs = append(o.pdbs, v)
		case *batchv1.Job:
			o.jobs[v.Name] = v
		case *batchv1.CronJob:
			o.cronJobs[v.Name] = v
		case *rayv1.RayCluster:
			o.rayClusters[v.Name] = v
		}
	}
	return o
}

// overlays lists kubernetes/overlays/*: one per mode.
func overlays(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("kubernetes/overlays/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no overlays: %v", err)
	}
	sort.Strings(dirs)
	return dirs
}

// TestManifestsDecodeStrictly: every YAML file under kubernetes/ is either a Kustomization
// or Component (decoded strictly into kustomize's own type), a patch (checked through the
// overlay that applies it), or objects that decode strictly into their API types.
func TestManifestsDecodeStrictly(t *testing.T) {
	patches := map[string]bool{}
	n := 0
	err := filepath.WalkDir("kubernetes", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(path) != "kustomization.yaml" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var k kusttypes.Kustomization
		if err := yaml.UnmarshalStrict(b, &k); err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		for _, p := range k.Patches {
			if p.Path != "" {
				patches[filepath.Join(filepath.Dir(path), p.Path)] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir("kubernetes", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") || filepath.Base(path) == "kustomization.yaml" || patches[path] {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, doc := range splitDocs(b) {
			if _, err := decodeStrict(doc); err != nil {
				t.Errorf("%s (document %d): %v", path, i+1, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("only %d objects found under kubernetes/", n)
	}
}

// TestStrictDecodingRefusesUnknownFields: the check above can fail. A misspelt field, a field
// in the wrong case and a field at the wrong level are each refused.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	b, err := os.ReadFile("kubernetes/base/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeStrict(b); err != nil {
		t.Fatalf("the original does not decode: %v", err)
	}
	for name, mutate := range map[string]func(string) string{
		"misspelt": func(s string) string { return strings.Replace(s, "readinessProbe:", "readynessProbe:", 1) },
		"case": func(s string) string {
			return strings.Replace(s, "terminationGracePeriodSeconds:", "TerminationGracePeriodSeconds:", 1)
		},
		"misplaced": func(s string) string {
			return strings.Replace(s, "  replicas: 2\n", "  replicas: 2\n  terminationGracePeriodSeconds: 45\n", 1)
		},
		"duplicate": func(s string) string {
			return strings.Replace(s, "  replicas: 2\n", "  replicas: 2\n  replicas: 3\n", 1)
		},
	} {
		m := mutate(string(b))
		if m == string(b) {
			t.Fatalf("%s: the mutation changed nothing", name)
		}
		if _, err := decodeStrict([]byte(m)); err == nil || !strings.Contains(err.Error(), "strict decoding error") {
			t.Errorf("%s: decoded without a strict decoding error: %v", name, err)
		}
	}
	rc, err := os.ReadFile("kubernetes/components/raycluster/raycluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeStrict([]byte(strings.Replace(string(rc), "maxReplicas:", "maxReplica:", 1))); err == nil {
		t.Error("a misspelt RayCluster field decoded")
	}
}

// mode is what each overlay must configure.
var modes = map[string]struct {
	sync, process, rayCore, rayJob bool
	appImage                       bool // rayworker runs inside the Django app's image
}{
	"ray-job":  {rayJob: true},
	"pool":     {sync: true, appImage: true},
	"process":  {sync: true, process: true, appImage: true},
	"ray-core": {rayCore: true, appImage: true},
}

// TestOverlays renders each overlay and checks what docs/deploy.md promises.
func TestOverlays(t *testing.T) {
	shutdownDefault := rayworkerDefault(t, "shutdown-timeout")
	seen := map[string]bool{}
	for _, dir := range overlays(t) {
		name := filepath.Base(dir)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			want, ok := modes[name]
			if !ok {
				t.Fatalf("overlay %s is not a known mode: add it to modes", name)
			}
			o := render(t, dir)
			if problems := checkRendered(o, shutdownDefault); len(problems) > 0 {
				t.Fatalf("%s:\n  %s", dir, strings.Join(problems, "\n  "))
			}
			env := workerEnv(o)
			d := o.deployments["rayworker"]
			c := d.Spec.Template.Spec.Containers[0]
			if got := env["DJANGO_RAY_SYNC"] == "true"; got != want.sync {
				t.Errorf("DJANGO_RAY_SYNC=%q", env["DJANGO_RAY_SYNC"])
			}
			if got := env["DJANGO_RAY_EXECUTOR"] == "process"; got != want.process {
				t.Errorf("DJANGO_RAY_EXECUTOR=%q", env["DJANGO_RAY_EXECUTOR"])
			}
			if got := strings.HasPrefix(c.Image, "ghcr.io/rayctl/rayworker:"); got == want.appImage {
				t.Errorf("image %s (app image wanted: %v)", c.Image, want.appImage)
			}
			if want.appImage && (len(c.Command) != 1 || c.Command[0] != imageBinaryPath) {
				t.Errorf("in the app image the command must name the binary %s: %v", imageBinaryPath, c.Command)
			}
			if want.sync {
				if _, ok := env["RAY_ADDRESS"]; ok || len(o.rayClusters) > 0 {
					t.Errorf("a pool mode with a Ray: RAY_ADDRESS=%q, %d RayClusters", env["RAY_ADDRESS"], len(o.rayClusters))
				}
				if env["DJANGO_RAY_PYTHON"] == "" {
					t.Error("no DJANGO_RAY_PYTHON: the executors need the app's interpreter")
				}
			}
			if want.rayJob || want.rayCore {
				if len(o.rayClusters) != 1 {
					t.Fatalf("%d RayClusters, want 1", len(o.rayClusters))
				}
				var rc *rayv1.RayCluster
				for _, v := range o.rayClusters {
					rc = v
				}
				head := rc.Name + "-head-svc" // the Service KubeRay creates for the head
				if want.rayJob {
					if env["RAY_ADDRESS"] != "http://"+head+":"+strconv.Itoa(int(headPort(rc, "dashboard"))) {
						t.Errorf("RAY_ADDRESS %q is not the RayCluster's Jobs API (%s, dashboard port)", env["RAY_ADDRESS"], head)
					}
					// drivers spread over the worker nodes only when they reserve resources
					if cpus, _ := strconv.ParseFloat(env["DJANGO_RAY_RAY_ENTRYPOINT_NUM_CPUS"], 64); cpus <= 0 {
						t.Errorf("DJANGO_RAY_RAY_ENTRYPOINT_NUM_CPUS=%q: every driver would run on the head", env["DJANGO_RAY_RAY_ENTRYPOINT_NUM_CPUS"])
					}
				}
				if want.rayCore {
					if env["DJANGO_RAY_CLUSTER"] != "ray://"+head+":"+strconv.Itoa(int(headPort(rc, "client"))) || env["DJANGO_RAY_RUNNER"] != "ray_core" {
						t.Errorf("Ray Core: DJANGO_RAY_CLUSTER=%q DJANGO_RAY_RUNNER=%q", env["DJANGO_RAY_CLUSTER"], env["DJANGO_RAY_RUNNER"])
					}
					// the driver in the worker's pod and the cluster must run one image (one Ray, one app)
					if img := rc.Spec.HeadGroupSpec.Template.Spec.Containers[0].Image; img != c.Image {
						t.Errorf("rayworker image %s, RayCluster image %s: Ray Client needs the same Ray and app", c.Image, img)
					}
				}
			}
		})
	}
	for name := range modes {
		if !seen[name] {
			t.Errorf("no overlay for mode %s", name)
		}
	}
}

// TestChecksCatchBrokenManifests: checkRendered fails on each broken variant of a good
// rendering, so TestOverlays can fail.
func TestChecksCatchBrokenManifests(t *testing.T) {
	shutdownDefault := rayworkerDefault(t, "shutdown-timeout")
	breakers := map[string]func(o objects){
		"grace period under the drain": func(o objects) {
			o.deployments["rayworker"].Spec.Template.Spec.TerminationGracePeriodSeconds = ptr[int64](30)
		},
		"longer drain, same grace": func(o objects) { o.configMaps["rayworker"].Data["DJANGO_RAY_SHUTDOWN_TIMEOUT"] = "2m" },
		"readiness on /healthz": func(o objects) {
			o.deployments["rayworker"].Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path = "/healthz"
		},
		"probe on another port": func(o objects) {
			o.deployments["rayworker"].Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intstr.FromInt32(8080)
		},
		"metrics address moved": func(o objects) { o.configMaps["rayworker"].Data["DJANGO_RAY_METRICS_ADDR"] = ":9100" },
		"root": func(o objects) {
			o.deployments["rayworker"].Spec.Template.Spec.SecurityContext.RunAsNonRoot = ptr(false)
		},
		"writable root filesystem": func(o objects) {
			o.deployments["rayworker"].Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = nil
		},
		"database URL in plain text": func(o objects) {
			c := &o.deployments["rayworker"].Spec.Template.Spec.Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "DATABASE_URL", Value: "postgres://u:p@db/app"})
		},
		"PDB selects nothing": func(o objects) { o.pdbs[0].Spec.Selector.MatchLabels = map[string]string{"app": "other"} },
		"doctor not strict": func(o objects) {
			o.cronJobs["rayctl-doctor"].Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args = []string{"doctor"}
		},
		"no memory limit": func(o objects) {
			delete(o.deployments["rayworker"].Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceMemory)
		},
	}
	if p := checkRendered(render(t, "kubernetes/overlays/ray-job"), shutdownDefault); len(p) > 0 {
		t.Fatalf("the unbroken overlay: %v", p)
	}
	for name, breakIt := range breakers {
		o := render(t, "kubernetes/overlays/ray-job")
		breakIt(o)
		if p := checkRendered(o, shutdownDefault); len(p) == 0 {
			t.Errorf("%s: not caught", name)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func headPort(rc *rayv1.RayCluster, name string) int32 {
	for _, p := range rc.Spec.HeadGroupSpec.Template.Spec.Containers[0].Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// workerEnv is the rayworker container's environment: its ConfigMaps, then its env values.
func workerEnv(o objects) map[string]string {
	env := map[string]string{}
	d := o.deployments["rayworker"]
	if d == nil {
		return env
	}
	c := d.Spec.Template.Spec.Containers[0]
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			if cm := o.configMaps[from.ConfigMapRef.Name]; cm != nil {
				for k, v := range cm.Data {
					env[k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		} else {
			env[e.Name] = "<from " + valueSource(e.ValueFrom) + ">"
		}
	}
	return env
}

func valueSource(s *corev1.EnvVarSource) string {
	switch {
	case s.SecretKeyRef != nil:
		return "secret"
	case s.ConfigMapKeyRef != nil:
		return "configmap"
	}
	return "other"
}

// checkRendered lists what a rendered overlay gets wrong.
func checkRendered(o objects, shutdownDefault time.Duration) []string {
	var p []string
	bad := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	d := o.deployments["rayworker"]
	if d == nil {
		return []string{"no rayworker Deployment"}
	}
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		bad("%d containers in the rayworker pod", len(spec.Containers))
		return p
	}
	c := spec.Containers[0]
	env := workerEnv(o)

	// the Deployment selects its own pods; the PDB selects them too
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			bad("the Deployment's selector %s=%s does not match its pods", k, v)
		}
	}
	pdbOK := false
	for _, pdb := range o.pdbs {
		match := len(pdb.Spec.Selector.MatchLabels) > 0
		for k, v := range pdb.Spec.Selector.MatchLabels {
			match = match && d.Spec.Template.Labels[k] == v
		}
		pdbOK = pdbOK || (match && pdb.Spec.MaxUnavailable != nil)
	}
	if !pdbOK {
		bad("no PodDisruptionBudget selects the rayworker pods")
	}

	// shutdown: the kubelet's SIGKILL comes after the drain
	shutdown := shutdownDefault
	if v, ok := env["DJANGO_RAY_SHUTDOWN_TIMEOUT"]; ok {
		var err error
		if shutdown, err = time.ParseDuration(v); err != nil {
			bad("DJANGO_RAY_SHUTDOWN_TIMEOUT %q: %v", v, err)
		}
	}
	grace := int64(30) // Kubernetes' default
	if spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	}
	if time.Duration(grace)*time.Second < shutdown+10*time.Second {
		bad("terminationGracePeriodSeconds %d is not at least 10s above the shutdown timeout %s", grace, shutdown)
	}

	// probes and scrape annotations on the metrics address's port
	addr := env["DJANGO_RAY_METRICS_ADDR"]
	_, portText, _ := strings.Cut(addr, ":")
	port, err := strconv.Atoi(portText)
	if err != nil {
		bad("DJANGO_RAY_METRICS_ADDR %q has no port: no /healthz or /readyz", addr)
	}
	portOf := func(ip intstr.IntOrString) int {
		if ip.Type == intstr.Int {
			return ip.IntValue()
		}
		for _, cp := range c.Ports {
			if cp.Name == ip.StrVal {
				return int(cp.ContainerPort)
			}
		}
		return -1
	}
	for name, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz", "startup": "/healthz"}[name]
		if pr == nil || pr.HTTPGet == nil {
			bad("no %s probe", name)
			continue
		}
		if pr.HTTPGet.Path != want || portOf(pr.HTTPGet.Port) != port {
			bad("%s probe %s on port %d, want %s on %d", name, pr.HTTPGet.Path, portOf(pr.HTTPGet.Port), want, port)
		}
	}
	ann := d.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(port) || ann["prometheus.io/path"] != "/metrics" {
		bad("scrape annotations %v do not point at :%d/metrics", ann, port)
	}

	// non-root, read-only, no privileges, resources
	for _, pod := range podSpecs(o) {
		checkPod(pod.name, pod.spec, bad)
	}

	// secrets never in plain text
	if env["DATABASE_URL"] != "<from secret>" {
		bad("DATABASE_URL is %q, want a secretKeyRef", env["DATABASE_URL"])
	}
	if v, ok := env["RAY_AUTH_TOKEN"]; ok && v != "<from secret>" {
		bad("RAY_AUTH_TOKEN is not from a Secret")
	}
	for _, pod := range podSpecs(o) {
		for _, ct := range pod.spec.Containers {
			for _, e := range ct.Env {
				if e.Value != "" && (strings.Contains(e.Value, "://") && strings.Contains(e.Value, "@") || strings.Contains(strings.ToLower(e.Name), "token")) {
					bad("%s/%s: %s holds a literal value that belongs in a Secret", pod.name, ct.Name, e.Name)
				}
			}
		}
	}

	// the migration Job and the strict doctor CronJob
	if j := o.jobs["rayctl-migrate"]; j == nil || strings.Join(j.Spec.Template.Spec.Containers[0].Args, " ") != "migrate up --yes" {
		bad("no rayctl-migrate Job running `migrate up --yes`")
	}
	cj := o.cronJobs["rayctl-doctor"]
	if cj == nil {
		bad("no rayctl-doctor CronJob")
	} else {
		js := cj.Spec.JobTemplate.Spec
		args := strings.Join(js.Template.Spec.Containers[0].Args, " ")
		if !strings.HasPrefix(args, "doctor") || !strings.Contains(args, "--strict") {
			bad("the doctor CronJob runs %q, want doctor --strict", args)
		}
		if js.BackoffLimit == nil || *js.BackoffLimit != 0 || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
			bad("the doctor's failures must not be retried away (backoffLimit 0) nor overlap")
		}
	}
	return p
}

type podSpec struct {
	name string
	spec corev1.PodSpec
}

func podSpecs(o objects) []podSpec {
	var out []podSpec
	for _, d := range o.deployments {
		out = append(out, podSpec{"Deployment " + d.Name, d.Spec.Template.Spec})
	}
	for _, j := range o.jobs {
		out = append(out, podSpec{"Job " + j.Name, j.Spec.Template.Spec})
	}
	for _, cj := range o.cronJobs {
		out = append(out, podSpec{"CronJob " + cj.Name, cj.Spec.JobTemplate.Spec.Template.Spec})
	}
	for _, rc := range o.rayClusters {
		out = append(out, podSpec{"RayCluster " + rc.Name + " head", rc.Spec.HeadGroupSpec.Template.Spec})
		for _, g := range rc.Spec.WorkerGroupSpecs {
			out = append(out, podSpec{"RayCluster " + rc.Name + " group " + g.GroupName, g.Template.Spec})
		}
	}
	return out
}

// checkPod: non-root, no privilege escalation, all capabilities dropped, a memory limit; and
// for our own images (not the Ray pods, whose Ray writes its session files) a read-only root.
func checkPod(name string, spec corev1.PodSpec, bad func(string, ...any)) {
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		bad("%s: runAsNonRoot is not set", name)
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
			len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			bad("%s/%s: privilege escalation allowed or capabilities kept", name, c.Name)
		}
		if !strings.HasPrefix(name, "RayCluster") && (sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem) {
			bad("%s/%s: the root filesystem is writable", name, c.Name)
		}
		if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
			bad("%s/%s: no memory limit", name, c.Name)
		}
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			bad("%s/%s: no CPU request", name, c.Name)
		}
	}
}
