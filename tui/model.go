package tui

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
)

// View is one screen of the dashboard.
type View int

// The views, in tab order.
const (
	ViewOverview View = iota
	ViewTasks
	ViewFailures
	ViewWorkers
	viewCount
)

func (v View) String() string {
	return [...]string{"Overview", "Tasks", "Failures", "Workers"}[v]
}

// Refresh interval limits and the steps + and - move between.
const (
	MinRefresh     = time.Second
	DefaultRefresh = 2 * time.Second
)

var refreshSteps = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute}

// failureWindows are what `w` cycles through in the failures view; 0 is every failure.
// statusTTL is how long a transient status message stays.
const statusTTL = 10 * time.Second

var failureWindows = []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 0, 15 * time.Minute}

// Options configure the TUI. Zero values get defaults.
type Options struct {
	Source   Source
	Actions  Actions // nil means read-only
	ReadOnly bool    // hide and refuse the write actions

	Refresh     time.Duration // default 2s, at least MinRefresh
	TotalsEvery time.Duration // how often SUCCEEDED and CANCELLED are counted; default 30s
	// Thresholds are the runbook signals' (recovery.DefaultThresholds, the flags `rayctl
	// doctor` shares): lease TTL, stuck-after, max queue age, stall-after, failures.
	Thresholds recovery.Thresholds
	// RayAddress goes into the next commands signals show ("" means $RAY_ADDRESS); with
	// Actions it is where reconcile asks.
	RayAddress string
	// QueryTimeout bounds each read; default 10s.
	QueryTimeout time.Duration

	Color bool
	Title string // shown in the status line, e.g. "db 127.0.0.1:5432/app"
	// Clock is the local clock, for "refreshed 3s ago" and the header time; default time.Now.
	// Ages of tasks and leases use the database clock of the last snapshot.
	Clock  func() time.Time
	Logger *slog.Logger // default: discard
}

// Model is the bubbletea model of `rayctl top`.
type Model struct {
	opts   Options
	keys   KeyMap
	styles Styles
	help   help.Model

	width, height int
	view          View
	showHelp      bool

	interval time.Duration
	paused   bool
	tickGen  int

	// overview data: the last good snapshot, the one before (for deltas) and samples
	dash        *store.Dashboard
	deltas      map[store.TaskState]int64
	totals      map[store.TaskState]int64 // SUCCEEDED and CANCELLED, counted every TotalsEvery
	totalsAt    time.Time                 // local clock of the last totals count
	totalsDelta map[store.TaskState]int64 // change between the last two totals counts
	history     []sample
	findings    []recovery.Finding // every check of the last snapshot
	signals     []recovery.Finding // the ones that fired, most urgent first
	dashLoading bool
	lastOK      time.Time // local clock of the last good snapshot
	lastTook    time.Duration

	// database trouble: the last error, kept until a read succeeds
	dbErr   error
	dbErrAt time.Time

	status   string // transient message (action outcomes, refusals)
	statusAt time.Time

	tasks    tasksState
	detail   detailState
	failures failuresState
	workers  workersState

	filtering  bool
	commanding bool
	input      textinput.Model

	// prev are the views left for the one on screen, most recent last: esc and q go back.
	prev []View

	confirm *confirmState
	acting  bool
	seq     int // request sequence: replies to superseded requests are dropped
	// viewPending counts view reads in flight
	viewPending int

	// calls are the reads and writes in flight and the context they run under (Run's).
	calls *calls

	// tickFn replaces tea.Tick in Update-level tests, which send tickMsg themselves.
	tickFn func(d time.Duration, gen int) tea.Cmd
}

type tasksState struct {
	filterText string
	filter     store.TaskFilter
	rows       []store.Task
	cursor     int
	pages      []int64 // BeforeID of each page visited; the last is the current page
	hasMore    bool
	marks      map[int64]bool
	loaded     bool
	seq        int
	markSeq    int // the mark-all read in flight
}

type detailState struct {
	open   bool
	id     int64
	task   *store.Task
	vp     viewport.Model
	seq    int
	errMsg string
}

type failuresState struct {
	groups []store.FailureGroup
	cursor int
	window int // index into failureWindows
	loaded bool
	seq    int
}

type workersState struct {
	now    time.Time
	rows   []store.WorkerSummary
	cursor int
	loaded bool
	seq    int
}

// target is what an action applies to.
type target struct {
	req Request
	// group: resolve the ids from a failure group when planning
	group     *store.FailureGroup
	groupP    store.FailureParams
	truncated int64 // group tasks beyond the cap, left out
}

type confirmState struct {
	target   target
	proposal Proposal
	yes      bool // the focused button
}

// New returns the model.
func New(o Options) Model {
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	o.Refresh = max(o.Refresh, MinRefresh)
	if o.TotalsEvery <= 0 {
		o.TotalsEvery = 30 * time.Second
	}
	o.Thresholds = o.Thresholds.WithDefaults()
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 10 * time.Second
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Actions == nil {
		o.ReadOnly = true
	}
	in := textinput.New()
	in.Prompt = "/"
	in.CharLimit = 500
	in.Cursor.SetMode(cursor.CursorStatic) // no blinking: nothing redraws over slow SSH while idle
	h := help.New()
	h.ShortSeparator = " · "
	m := Model{
		opts:     o,
		keys:     DefaultKeyMap(o.ReadOnly),
		styles:   NewStyles(o.Color),
		help:     h,
		width:    80,
		height:   24,
		interval: o.Refresh,
		input:    in,
		totals:   map[store.TaskState]int64{},
		calls:    newCalls(context.Background()),

		totalsDelta: map[store.TaskState]int64{},
	}
	m.tasks.marks = map[int64]bool{}
	m.tasks.pages = []int64{0}
	m.failures.window = 1 // 24h
	m.detail.vp = viewport.New(80, 10)
	return m
}

// Init loads the first snapshot and starts the refresh ticker.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.tick(), func() tea.Msg { return refreshNowMsg{totals: true} })
}

// ReadOnly reports whether write actions are disabled.
func (m Model) ReadOnly() bool { return m.opts.ReadOnly }

// CurrentView returns the view on screen.
func (m Model) CurrentView() View { return m.view }

// Paused reports whether automatic refresh is paused.
func (m Model) Paused() bool { return m.paused }

// Interval returns the refresh interval.
func (m Model) Interval() time.Duration { return m.interval }

// Marked returns the marked task ids.
func (m Model) Marked() map[int64]bool { return m.tasks.marks }

// Signals returns the runbook signals of the last snapshot, most urgent first.
func (m Model) Signals() []recovery.Finding { return m.signals }
