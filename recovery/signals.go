package recovery

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/store"
)

// The runbook's incident signals: one definition, read by `rayctl doctor` (a check each) and
// `rayctl top` (the banner and the overview's signal list). Both read the same snapshot
// (store.Dashboard with Thresholds.DashboardParams) and call Evaluate, so a threshold, a
// wording or a next command is written once, here.

// Thresholds decide when a signal fires. DefaultThresholds are django-ray 0.2.0's settings
// where it has one, and are the defaults of the flags of the same name on both commands.
type Thresholds struct {
	// LeaseTTL is WORKER_LEASE_SECONDS: a lease without a heartbeat for this long is stale.
	LeaseTTL time.Duration
	// StuckAfter is STUCK_TASK_TIMEOUT_SECONDS: a RUNNING or CANCELLING row without a
	// heartbeat this long is stuck (a live worker's sweep marks RUNNING ones LOST by then).
	StuckAfter time.Duration
	// MaxQueueAge: the oldest runnable QUEUED task may wait this long.
	MaxQueueAge time.Duration
	// StallAfter: a live worker that has claimed nothing, finished nothing and heartbeated
	// none of its tasks for this long, while it holds RUNNING tasks or its queues have
	// tasks runnable for this long, is stalled (its runner or Ray is not ready).
	StallAfter time.Duration
	// FailureWindow and MaxFailures: more FAILED or LOST tasks than MaxFailures finished
	// within FailureWindow is a retry storm.
	FailureWindow time.Duration
	MaxFailures   int64
	// ResultWindow: how far back results stored by reference are counted.
	ResultWindow time.Duration
}

// DefaultThresholds returns the defaults.
func DefaultThresholds() Thresholds {
	return Thresholds{
		LeaseTTL:      DefaultLeaseTTL,
		StuckAfter:    settings.DefaultStuckTaskTimeout,
		MaxQueueAge:   5 * time.Minute,
		StallAfter:    2 * time.Minute,
		FailureWindow: 5 * time.Minute,
		MaxFailures:   10,
		ResultWindow:  time.Hour,
	}
}

// WithDefaults fills zero fields from DefaultThresholds.
func (t Thresholds) WithDefaults() Thresholds {
	d := DefaultThresholds()
	def := settings.Default[time.Duration]
	def(&t.LeaseTTL, d.LeaseTTL)
	def(&t.StuckAfter, d.StuckAfter)
	def(&t.MaxQueueAge, d.MaxQueueAge)
	def(&t.StallAfter, d.StallAfter)
	def(&t.FailureWindow, d.FailureWindow)
	def(&t.ResultWindow, d.ResultWindow)
	settings.Default(&t.MaxFailures, d.MaxFailures)
	return t
}

// DashboardParams is the snapshot Evaluate needs for these thresholds.
func (t Thresholds) DashboardParams() store.DashboardParams {
	t = t.WithDefaults()
	return store.DashboardParams{LeaseTTL: t.LeaseTTL, StuckAfter: t.StuckAfter, FailureWindow: t.FailureWindow,
		StallAfter: t.StallAfter, ResultWindow: t.ResultWindow}
}

// The runbook's playbooks (docs/runbook.md numbers them as django-ray's runbook does).
const (
	PlaybookBacklog     = 1
	PlaybookStuck       = 2
	PlaybookRetryStorm  = 3
	PlaybookRayLoss     = 4
	PlaybookCancelling  = 5
	PlaybookReferences  = 6
	playbookNone        = 0
	rayAddressVariable  = "$RAY_ADDRESS"
	commandInspect      = "rayctl inspect-leases"
	commandInspectStale = "rayctl inspect-leases --stale-only"
)

// PlaybookName names a playbook.
func PlaybookName(n int) string {
	switch n {
	case PlaybookBacklog:
		return "queue backlog"
	case PlaybookStuck:
		return "stuck RUNNING"
	case PlaybookRetryStorm:
		return "retry storm"
	case PlaybookRayLoss:
		return "Ray connection loss"
	case PlaybookCancelling:
		return "stuck CANCELLING"
	case PlaybookReferences:
		return "oversized results"
	}
	return ""
}

// Finding is one signal check's verdict: a doctor check, and (when not ok) a top signal.
type Finding struct {
	Check    string // the doctor check: leases, backlog, stuck, cancelling, failures, workers, references
	Status   Status
	Playbook int // the runbook playbook that applies; 0 for none
	Summary  string
	Details  []string
	// Command is the next command to run (the CLI's); TopKeys how to do it from rayctl top.
	Command string
	TopKeys string
	// Workers names the workers the finding is about (the stalled ones, for workers).
	Workers []string
}

// EvalOptions tune Evaluate beyond the thresholds.
type EvalOptions struct {
	// RayAddress goes into commands that need one; empty: $RAY_ADDRESS.
	RayAddress string
}

// Evaluate judges a snapshot (read with th.DashboardParams()) against the thresholds: one
// Finding per check, in the doctor's order: leases, backlog, stuck, cancelling, failures,
// workers, references.
func Evaluate(d store.Dashboard, th Thresholds, o EvalOptions) []Finding {
	th = th.WithDefaults()
	e := evaluation{d: d, th: th, ray: o.RayAddress}
	if e.ray == "" {
		e.ray = rayAddressVariable
	}
	for _, w := range d.Workers {
		if w.Live {
			e.live = append(e.live, w)
		}
	}
	return []Finding{e.leases(), e.backlog(), e.stuck(), e.cancelling(), e.failures(), e.workers(), e.references()}
}

// Signals are the findings that are not ok, failures first, then by playbook; among
// failures a stalled worker (playbook 4) comes before the backlog it causes.
func Signals(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Status == StatusWarn || f.Status == StatusFail {
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Status == StatusFail) != (out[j].Status == StatusFail) {
			return out[i].Status == StatusFail
		}
		return rank(out[i]) < rank(out[j])
	})
	return out
}

// rank orders signals of one status: by playbook, a stalled worker first.
func rank(f Finding) int {
	if f.Check == "workers" {
		return 0
	}
	return 2 * (f.Playbook + 1)
}

type evaluation struct {
	d    store.Dashboard
	th   Thresholds
	ray  string
	live []store.WorkerActivity
}

// Count formats n with a noun, singular for 1: "1 task", "3 tasks", "1,234 tasks".
func Count(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return Thousands(n) + " " + noun + "s"
}

// Thousands formats n with thousands separators: 1,234,567.
func Thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Age formats a duration compactly: 45s, 3m10s, 12m, 3h5m, 4d2h.
func Age(d time.Duration) string {
	d = max(0, d).Round(time.Second)
	switch {
	case d >= 100*365*24*time.Hour:
		return "∞"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		if s := int(d.Seconds()) % 60; s != 0 && d < 10*time.Minute {
			return fmt.Sprintf("%dm%ds", int(d.Minutes()), s)
		}
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		if m := int(d.Minutes()) % 60; m != 0 {
			return fmt.Sprintf("%dh%dm", int(d.Hours()), m)
		}
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// waited is how long ago t was, "since -infinity" style for poison values.
func (e evaluation) waited(t *time.Time) (time.Duration, string) {
	if t == nil {
		return 0, "-"
	}
	if name, ok := store.InfiniteTime(*t); ok {
		return time.Duration(1<<63 - 1), "since " + name
	}
	d := e.d.Now.Sub(*t)
	return d, Age(d)
}

func (e evaluation) leases() Finding {
	l := e.d.Leases
	f := Finding{Check: "leases", Playbook: playbookNone, Status: StatusOK}
	counts := fmt.Sprintf("%d live, %d stale, %d inactive (lease TTL %s)", l.Live, l.Stale, l.Inactive, Age(e.th.LeaseTTL))
	switch {
	case l.Live == 0 && l.Stale == 0 && l.Inactive == 0:
		f.Status, f.Summary, f.Command = StatusWarn, "no worker has registered a lease", commandInspect
		f.Details = []string{"start a worker: rayworker, or manage.py django_ray_worker"}
	case l.Live == 0:
		f.Status, f.Summary, f.Command = StatusWarn, "no live worker: "+counts, commandInspect
	case l.Stale > 0:
		f.Status, f.Summary, f.Command = StatusWarn, counts+": stale workers are hung, dead or cut off", commandInspectStale
		f.TopKeys = "4 (workers)"
	default:
		f.Summary = counts
	}
	return f
}

// queueLoad is a queue's runnable backlog.
type queueLoad struct {
	name          string
	runnable      int64
	oldest        *time.Time
	recentRetries int64
}

func (e evaluation) queues() (loads []queueLoad, runnable, deferred int64, oldest *time.Time) {
	for _, q := range e.d.Queues {
		r := q.Queued - q.Deferred
		runnable += r
		deferred += q.Deferred
		if q.OldestQueuedAt != nil && (oldest == nil || q.OldestQueuedAt.Before(*oldest)) {
			oldest = q.OldestQueuedAt
		}
		if r > 0 {
			loads = append(loads, queueLoad{name: q.Name, runnable: r, oldest: q.OldestQueuedAt, recentRetries: q.RecentRetries})
		}
	}
	return loads, runnable, deferred, oldest
}

func (e evaluation) liveLabels() []string {
	var out []string
	for _, w := range e.live {
		if !slices.Contains(out, w.Lease.QueueName) {
			out = append(out, w.Lease.QueueName)
		}
	}
	return out
}

func (e evaluation) backlog() Finding {
	f := Finding{Check: "backlog", Playbook: PlaybookBacklog, Status: StatusOK}
	loads, runnable, deferred, oldest := e.queues()
	age, waited := e.waited(oldest)
	running := e.d.States[store.StateRunning]
	summary := fmt.Sprintf("%s runnable, %s deferred, %s running; %s", Thousands(runnable), Thousands(deferred), Thousands(running), Count(int64(len(e.live)), "live worker"))
	if oldest != nil {
		summary += "; oldest runnable waited " + waited
	}
	if deferred > 0 {
		f.Details = append(f.Details, fmt.Sprintf("%s QUEUED wait for their run_after (retry backoff or deferral): check run_after before forcing retries", Count(deferred, "task")))
	}
	labels := e.liveLabels()
	var uncovered []string
	for _, q := range loads {
		if len(e.live) > 0 && !slices.ContainsFunc(labels, func(label string) bool { return LeaseCovers(label, q.name) }) {
			uncovered = append(uncovered, fmt.Sprintf("%s (%s runnable)", q.name, Thousands(q.runnable)))
		}
	}
	switch {
	case runnable > 0 && len(e.live) == 0:
		f.Status, f.Summary, f.Command = StatusFail, summary+", and no live worker to run them", commandInspect
		f.Details = append(f.Details, "start or restart workers")
		f.TopKeys = "4 (workers)"
	case len(uncovered) > 0:
		f.Status, f.Command = StatusFail, commandInspect
		f.Summary = "no live worker polls " + strings.Join(uncovered, ", ") + "; live workers poll: " + strings.Join(labels, " | ")
		f.Details = append(f.Details, "match the workers' --queue flags to the enqueue queue names")
		f.TopKeys = "4 (workers: the QUEUES column)"
	case runnable > 0 && age >= e.th.MaxQueueAge && e.d.BeatingRunning == 0:
		f.Status, f.Command = StatusFail, commandInspect
		f.Summary = summary + fmt.Sprintf(": queued waits longer than %s while nothing runs", Age(e.th.MaxQueueAge))
		f.Details = append(f.Details, "no RUNNING task has been heartbeated for "+Age(e.th.StallAfter)+": check the workers' logs and Ray")
		f.TopKeys = "4 (workers)"
	case runnable > 0 && age >= e.th.MaxQueueAge:
		f.Status, f.Command = StatusWarn, "rayctl stats"
		f.Summary = summary + fmt.Sprintf(": longer than %s", Age(e.th.MaxQueueAge))
		f.Details = append(f.Details, "workers are behind: add workers or concurrency")
	default:
		f.Summary, f.Playbook = summary, playbookNone
	}
	return f
}

func (e evaluation) stuck() Finding {
	f := Finding{Check: "stuck", Playbook: PlaybookStuck, Status: StatusOK}
	d := e.d
	if d.StaleRunning == 0 && d.OrphanedRunning == 0 {
		f.Summary, f.Playbook = "no stuck or orphaned RUNNING tasks", playbookNone
		return f
	}
	f.Status = StatusWarn
	f.Summary = fmt.Sprintf("%s RUNNING without a heartbeat for %s, %s RUNNING owned by no live worker",
		Thousands(d.StaleRunning), Age(e.th.StuckAfter), Thousands(d.OrphanedRunning))
	f.Details = []string{"a live worker's stuck-task sweep marks them LOST and retries them; with no live worker nothing will",
		"reconcile-jobs compares each with its Ray job: records what ended, marks LOST what Ray forgot, stops cancelled jobs"}
	f.Command = "rayctl reconcile-jobs --ray-address " + e.ray
	f.TopKeys = ":reconcile"
	return f
}

func (e evaluation) cancelling() Finding {
	f := Finding{Check: "cancelling", Playbook: PlaybookCancelling, Status: StatusOK}
	d := e.d
	silent := d.StuckCancelling - d.OrphanedCancelling
	switch {
	case d.OrphanedCancelling > 0:
		f.Status, f.Command, f.TopKeys = StatusWarn, "rayctl cancel --state CANCELLING --dry-run", ":finalize"
		f.Summary = fmt.Sprintf("%s CANCELLING owned by no live worker: no django-ray 0.2.0 worker will finalize them", Thousands(d.OrphanedCancelling))
		if silent > 0 {
			f.Details = append(f.Details, fmt.Sprintf("%s more CANCELLING whose live owner has not heartbeated them for %s: restart that worker", Thousands(silent), Age(e.th.StuckAfter)))
		}
	case silent > 0:
		f.Status, f.Command, f.TopKeys = StatusWarn, commandInspect, "4 (workers)"
		f.Summary = fmt.Sprintf("%s CANCELLING whose live owner has not heartbeated them for %s: its cancellation loop may be stalled (restart it)", Thousands(silent), Age(e.th.StuckAfter))
	default:
		f.Summary, f.Playbook = "no orphaned cancellations", playbookNone
	}
	return f
}

func (e evaluation) failures() Finding {
	f := Finding{Check: "failures", Playbook: PlaybookRetryStorm, Status: StatusOK}
	var total, retrying int64
	for _, c := range e.d.RecentFailures {
		total += c.Total()
		retrying += c.Retrying
	}
	window := Age(e.th.FailureWindow)
	f.Summary = fmt.Sprintf("%s FAILED or LOST in the last %s", Thousands(total), window)
	byTotal := slices.Clone(e.d.RecentFailures)
	sort.SliceStable(byTotal, func(i, j int) bool { return byTotal[i].Total() > byTotal[j].Total() })
	for i, c := range byTotal {
		if i == 3 || c.Total() == 0 {
			break
		}
		f.Details = append(f.Details, fmt.Sprintf("%s: %s (%s FAILED, %s LOST)", c.CallablePath, Thousands(c.Total()), Thousands(c.Failed), Thousands(c.Lost)))
	}
	if retrying > 0 {
		f.Details = append(f.Details, fmt.Sprintf("%s QUEUED again after a failed attempt, waiting to retry", Count(retrying, "task")))
	}
	if total <= e.th.MaxFailures {
		f.Playbook = playbookNone
		return f
	}
	top := byTotal[0]
	f.Status = StatusWarn
	f.Summary += fmt.Sprintf(", most from %s (%s, %d%%): retry storm", top.CallablePath, Thousands(top.Total()), top.Total()*100/total)
	f.Command = fmt.Sprintf("rayctl tasks count --by exception --state FAILED --state LOST --newer-than %s --callable %s", window, top.CallablePath)
	f.TopKeys = "3 (failures; R requeues a group)"
	return f
}

// workers finds live workers that are stalled: the Ray connection loss playbook as the
// database shows it. A rayworker whose Ray is down or wrong keeps its lease fresh but
// claims nothing (its readiness fails) and stops heartbeating the tasks it holds.
func (e evaluation) workers() Finding {
	f := Finding{Check: "workers", Playbook: PlaybookRayLoss, Status: StatusOK}
	loads, _, _, _ := e.queues()
	var stalled []string
	var detail []string
	for _, w := range e.live {
		if w.LastClaim != nil || w.LastFinish != nil || w.Beating > 0 || e.d.Now.Sub(w.Lease.StartedAt) < e.th.StallAfter {
			continue
		}
		var waiting int64
		for _, q := range loads {
			age, _ := e.waited(q.oldest)
			if LeaseCovers(w.Lease.QueueName, q.name) && age >= e.th.StallAfter && q.recentRetries == 0 {
				waiting += q.runnable
			}
		}
		if waiting == 0 && w.Running == 0 {
			continue
		}
		where := w.Lease.Host()
		if m := w.Lease.Mode(); m != "" {
			where += ", rayworker " + m
		}
		stalled = append(stalled, w.Lease.WorkerID)
		f.Workers = append(f.Workers, w.Lease.WorkerID)
		var why []string
		if waiting > 0 {
			why = append(why, fmt.Sprintf("its queues (%s) have %s runnable", w.Lease.QueueName, Thousands(waiting)))
		}
		if w.Running > 0 {
			why = append(why, fmt.Sprintf("none of its %s RUNNING has been heartbeated", Thousands(w.Running)))
		}
		detail = append(detail, fmt.Sprintf("%s: live, no claim or finish for %s+; %s (%s)", w.Lease.WorkerID, Age(e.th.StallAfter), strings.Join(why, "; "), where))
	}
	if len(stalled) == 0 {
		f.Summary, f.Playbook = fmt.Sprintf("%s claiming or idle", Count(int64(len(e.live)), "live worker")), playbookNone
		return f
	}
	f.Status = StatusFail
	if len(stalled) == 1 {
		f.Summary = "worker " + detail[0]
	} else {
		f.Summary = fmt.Sprintf("%d live workers with no claim or finish for %s+: %s", len(stalled), Age(e.th.StallAfter), strings.Join(stalled, ", "))
		f.Details = append(f.Details, detail...)
	}
	f.Details = append(f.Details, "their runner or Ray is not ready: Ray down or unreachable, a wrong RAY_ADDRESS, a refused token (rayworker's /readyz and log say which)",
		"restore Ray, then restart the workers")
	f.Command = "rayctl doctor --ray-address " + e.ray
	f.TopKeys = "4 (workers: CLAIMED)"
	return f
}

func (e evaluation) references() Finding {
	f := Finding{Check: "references", Playbook: playbookNone, Status: StatusOK}
	refs := e.d.References
	window := Age(e.th.ResultWindow)
	if len(refs) == 0 {
		f.Summary = "no result stored by reference in the last " + window
		return f
	}
	var total int64
	var parts []string
	var digest store.ReferenceCount
	latest := refs[0].LatestID
	for _, r := range refs {
		total += r.Count
		parts = append(parts, fmt.Sprintf("%s %s", r.Scheme, Thousands(r.Count)))
		if r.Scheme == "oversize" {
			digest = r
		}
		latest = max(latest, r.LatestID)
	}
	f.Summary = fmt.Sprintf("%s in the last %s stored by reference (%s)", Count(total, "result"), window, strings.Join(parts, ", "))
	if digest.Count == 0 {
		return f
	}
	f.Status, f.Playbook = StatusWarn, PlaybookReferences
	f.Summary = fmt.Sprintf("%s in the last %s larger than MAX_RESULT_SIZE_BYTES stored as a digest only (oversize://): get_result() cannot return them",
		Count(digest.Count, "result"), window)
	if total > digest.Count {
		f.Details = append(f.Details, fmt.Sprintf("%s stored by reference in all (%s)", Count(total, "result"), strings.Join(parts, ", ")))
	}
	f.Details = append(f.Details, "expected with RESULT_STORAGE_BACKEND=digest (the default); with filesystem, s3 or gcs configured the workers' writes fail: rayctl doctor with their DJANGO_RAY_RESULT_STORAGE_* settings")
	f.Command = fmt.Sprintf("rayctl tasks show %d", digest.LatestID)
	f.TopKeys = fmt.Sprintf(":task %d", digest.LatestID)
	return f
}
