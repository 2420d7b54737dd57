// Package pyexec starts and talks to rayworker's long-lived Python executors: a small Python
// program (executor.py, embedded in the binary) that loads django-ray 0.2.0 and Django once
// and then executes task payloads through django-ray's own execution function. The pool
// runner (worker/poolrunner) drives several of them in "pool" mode; the Ray Core runner
// (worker/raycore) drives one in "ray_core" mode, where it is a Ray driver.
//
// An executor runs `<python> -c <bootstrap> <mode>` (the bootstrap reads the program from a
// pipe) under worker/procgroup: in a process group
// of its own that dies with the worker, even after kill -9, with everything its tasks started.
// It talks over a Unix socket passed as file descriptor 3:
// frames of a JSON header and a byte payload, with file descriptors (a task's stdout and
// stderr pipes) passed alongside (SCM_RIGHTS). Its own stdout and stderr, outside tasks, are
// diagnostics: kept (the last 16 KiB) for start errors and handed line by line to Config.Log.
//
// The protocol is documented at the top of executor.py. This package knows frames, process
// lifetime and the start handshake; what the messages mean is the runners'.
package pyexec

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/worker/procgroup"
)

// bootstrap is the executor's command line: it reads the program from file descriptor 4
// and runs it as __main__.
const bootstrap = `import os; exec(compile(os.fdopen(4).read(), "<rayworker executor>", "exec"))`

// Program is the executor's Python source.
//
//go:embed executor.py
var Program string

// Modes of the executor program.
const (
	ModePool    = "pool"
	ModeRayCore = "ray_core"
)

const (
	maxFrame = 1 << 30
	diagTail = 16 << 10
)

// Config describes how to start an executor.
type Config struct {
	// Python is the interpreter to run (a path or a name looked up on PATH).
	Python string
	// Mode is ModePool or ModeRayCore.
	Mode string
	// Env is added to the worker's environment (the runtime env's env_vars); it overrides
	// variables of the same name.
	Env map[string]string
	// Dir is the working directory; empty means the worker's.
	Dir string
	// Settings is passed to the program as JSON (RAYWORKER_EXECUTOR).
	Settings map[string]any
	// StartTimeout bounds the wait for the program's ready message (default 2 minutes).
	StartTimeout time.Duration
	// Log receives each line the executor prints outside a task (its own diagnostics).
	Log func(line string)
}

// Message is one frame from an executor.
type Message struct {
	Op string `json:"op"`
	ID int64  `json:"id"`
	// done (pool): the result line's total length, and whether Data holds only its end
	Bytes     int64 `json:"bytes"`
	Truncated bool  `json:"truncated"`
	// exit (pool): the status a SystemExit gave, or the signal a KeyboardInterrupt stands for
	Code   *int `json:"code"`
	Signal int  `json:"signal"`
	// submitted (ray_core)
	RayJobID string `json:"ray_job_id"`
	// fatal, disconnected, submit_failed
	Error         string `json:"error"`
	Detail        string `json:"detail"`
	ExceptionType string `json:"exception_type"`

	Data []byte          `json:"-"`
	Raw  json.RawMessage `json:"-"` // the whole header
}

// StartError is an executor that could not start: the program reported a fatal error
// (django_ray not importable, DJANGO_SETTINGS_MODULE missing, django.setup() failed, ray.init
// failed), or the interpreter could not be run or died before it was ready. Configuration
// errors, all of them: the worker refuses to start rather than burn tasks' attempts on them.
type StartError struct {
	Msg    string // one line
	Detail string // traceback or the executor's last output
}

func (e *StartError) Error() string { return e.Msg }

// Executor is one running executor process.
type Executor struct {
	cfg   Config
	g     *procgroup.Group
	conn  *net.UnixConn
	pgid  int
	ready Message

	msgs chan Message
	done chan struct{} // closed once the process has exited and been reaped

	diag *ring

	mu       sync.Mutex
	exit     procgroup.Exit
	waitErr  error
	readErr  error
	isReady  bool
	early    []string // output before the ready message
	sendMu   sync.Mutex
	killOnce sync.Once
	killed   chan struct{}
}

// ResolvePython finds the interpreter to use: explicit (a path or a name on PATH), else
// $VIRTUAL_ENV/bin/python, else python3 on PATH.
func ResolvePython(explicit string, getenv func(string) string) (string, error) {
	candidates := []string{}
	if explicit != "" {
		candidates = append(candidates, explicit)
	} else {
		if venv := getenv("VIRTUAL_ENV"); venv != "" {
			candidates = append(candidates, strings.TrimRight(venv, "/")+"/bin/python")
		}
		candidates = append(candidates, "python3")
	}
	var errs []string
	for _, c := range candidates {
		p, err := exec.LookPath(c)
		if err == nil {
			return p, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", c, unwrapExecErr(err)))
	}
	if explicit != "" {
		return "", fmt.Errorf("python interpreter not found (%s)", strings.Join(errs, "; "))
	}
	return "", fmt.Errorf("no python interpreter found (%s); set --python or DJANGO_RAY_PYTHON", strings.Join(errs, "; "))
}

func unwrapExecErr(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// Start starts an executor and waits until it is ready (or ctx ends, or StartTimeout
// passes). A program that reports a fatal error, or dies first, is a *StartError.
func Start(ctx context.Context, cfg Config) (*Executor, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModePool
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = settings.DefaultExecutorStartTimeout
	}
	settingsJSON, err := json.Marshal(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("executor settings: %w", err)
	}
	fds, err := controlSocketpair()
	if err != nil {
		return nil, fmt.Errorf("executor control socket: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "executor-control")
	theirs := os.NewFile(uintptr(fds[1]), "executor-control-child")
	defer theirs.Close()
	fc, err := net.FileConn(ours)
	ours.Close() // FileConn holds its own duplicate
	if err != nil {
		return nil, fmt.Errorf("executor control socket: %w", err)
	}
	conn := fc.(*net.UnixConn)

	env := os.Environ()
	keys := make([]string, 0, len(cfg.Env))
	for k := range cfg.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+cfg.Env[k]) // exec keeps the last value of a duplicate
	}
	env = append(env, "RAYWORKER_EXECUTOR="+string(settingsJSON))
	diagR, diagW, err := os.Pipe()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("executor output pipe: %w", err)
	}
	// procgroup: the executor's process group, and everything its tasks start, die with the
	// worker even after kill -9; Wait returns only once all of it is gone.
	// The program travels through a pipe (fd 4), not the command line: `ps` shows a short
	// bootstrap, not 20 KB of Python.
	progR, progW, err := os.Pipe()
	if err != nil {
		conn.Close()
		diagR.Close()
		diagW.Close()
		return nil, fmt.Errorf("executor program pipe: %w", err)
	}
	go func() { _, _ = io.WriteString(progW, Program); progW.Close() }()
	g, err := procgroup.Start(procgroup.Cmd{Path: cfg.Python, Args: []string{cfg.Python, "-c", bootstrap, cfg.Mode},
		Env: env, Dir: cfg.Dir, Stdout: diagW, Stderr: diagW, ExtraFiles: []*os.File{theirs, progR}}) // fds 3, 4
	diagW.Close() // the executor holds its own copies
	progR.Close()
	if err != nil {
		conn.Close()
		diagR.Close()
		if errors.Is(err, procgroup.ErrNoMain) {
			return nil, err
		}
		return nil, &StartError{Msg: fmt.Sprintf("cannot run python interpreter %s: %v", cfg.Python, unwrapExecErr(err))}
	}
	e := &Executor{cfg: cfg, g: g, conn: conn, pgid: g.Pid(), msgs: make(chan Message, 64),
		done: make(chan struct{}), diag: &ring{max: diagTail}, killed: make(chan struct{})}
	diagDone := make(chan struct{})
	go e.copyDiagnostics(diagR, diagDone)
	go func() {
		exit, err := g.Wait() // the executor, its group and every descendant are gone
		<-diagDone            // and its output is complete
		e.mu.Lock()
		e.exit, e.waitErr = exit, err
		e.mu.Unlock()
		close(e.done)
		_ = conn.Close()
	}()
	go e.read()

	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	fail := func(se *StartError) (*Executor, error) {
		e.Kill(0)
		<-e.done
		return nil, se
	}
	select {
	case m, ok := <-e.msgs:
		switch {
		case ok && m.Op == "ready":
			e.ready = m
			e.markReady()
			return e, nil
		case ok && m.Op == "fatal":
			return fail(&StartError{Msg: m.Error, Detail: m.Detail})
		case ok:
			return fail(&StartError{Msg: fmt.Sprintf("executor sent %q before it was ready", m.Op)})
		}
		<-e.done // the socket closed: the process is exiting
		return nil, e.deathError("before it was ready")
	case <-timer.C:
		return fail(&StartError{Msg: fmt.Sprintf("the python executor did not become ready within %s (django.setup() or ray.init() hangs?)", cfg.StartTimeout),
			Detail: e.diag.String()})
	case <-ctx.Done():
		e.Kill(0)
		<-e.done
		return nil, ctx.Err()
	}
}

// deathError describes an executor that died, with the last line it printed.
func (e *Executor) deathError(when string) *StartError {
	code, sig, err := e.ExitStatus()
	how := fmt.Sprintf("exited with status %d", code)
	switch {
	case err != nil:
		how = "could not be waited for: " + err.Error()
	case sig != "":
		how = "was killed by signal " + sig
	}
	msg := fmt.Sprintf("the python executor (%s) %s %s", e.cfg.Python, how, when)
	detail := e.diag.String()
	if last := lastLine(detail); last != "" {
		msg += ": " + clip(last, 300)
	}
	return &StartError{Msg: msg, Detail: detail}
}

// Ready is the executor's ready message (versions, pid, the Ray job id in ray_core mode).
func (e *Executor) Ready() json.RawMessage { return e.ready.Raw }

// ReadyMessage is the decoded ready message.
func (e *Executor) ReadyMessage() Message { return e.ready }

// Pid is the executor's process id (also its process group id).
func (e *Executor) Pid() int { return e.pgid }

// Messages delivers the executor's frames in order; it is closed when the control socket
// ends (the executor exited or was killed).
func (e *Executor) Messages() <-chan Message { return e.msgs }

// Done is closed once the executor process, its process group and every process its tasks
// started are gone (procgroup's confirmation).
func (e *Executor) Done() <-chan struct{} { return e.done }

// ExitStatus reports how the process ended; valid after Done. err is set when the end could
// not be observed (the supervisor was killed); code and signal are then the best known.
func (e *Executor) ExitStatus() (code int, signal string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.exit.Signaled() {
		return -1, fmt.Sprintf("%d (%s)", int(e.exit.Signal), e.exit.Signal), e.waitErr
	}
	return e.exit.Code, "", e.waitErr
}

// Diagnostics returns the last output the executor printed outside tasks.
func (e *Executor) Diagnostics() string { return e.diag.String() }

// Send writes one frame: header (marshalled as JSON), data, and files passed alongside
// (SCM_RIGHTS). The caller keeps ownership of files (close them after Send returns).
func (e *Executor) Send(header map[string]any, data []byte, files ...*os.File) error {
	if len(files) > 0 {
		header["nfds"] = len(files)
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	frame := make([]byte, 8, 8+len(h))
	binary.BigEndian.PutUint32(frame[0:4], uint32(len(h)))
	binary.BigEndian.PutUint32(frame[4:8], uint32(len(data)))
	frame = append(frame, h...)
	e.sendMu.Lock()
	defer e.sendMu.Unlock()
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = syscall.UnixRights(fds...)
	}
	n, _, err := e.conn.WriteMsgUnix(frame, oob, nil)
	if err != nil {
		return fmt.Errorf("executor %d: %w", e.pgid, err)
	}
	if n < len(frame) {
		if _, err := e.conn.Write(frame[n:]); err != nil {
			return fmt.Errorf("executor %d: %w", e.pgid, err)
		}
	}
	if len(data) > 0 {
		if _, err := e.conn.Write(data); err != nil {
			return fmt.Errorf("executor %d: %w", e.pgid, err)
		}
	}
	return nil
}

// read decodes frames until the socket ends, then closes msgs.
func (e *Executor) read() {
	defer close(e.msgs)
	r := bufio.NewReaderSize(e.conn, 64<<10)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			e.setReadErr(err)
			return
		}
		hlen, dlen := binary.BigEndian.Uint32(hdr[0:4]), binary.BigEndian.Uint32(hdr[4:8])
		if hlen > maxFrame || dlen > maxFrame {
			e.setReadErr(fmt.Errorf("executor sent a frame of %d+%d bytes", hlen, dlen))
			e.Kill(0)
			return
		}
		buf := make([]byte, int(hlen)+int(dlen))
		if _, err := io.ReadFull(r, buf); err != nil {
			e.setReadErr(err)
			return
		}
		var m Message
		if err := json.Unmarshal(buf[:hlen], &m); err != nil {
			e.setReadErr(fmt.Errorf("executor sent a malformed header: %w", err))
			e.Kill(0)
			return
		}
		m.Raw = json.RawMessage(buf[:hlen:hlen])
		if dlen > 0 {
			m.Data = buf[hlen:]
		}
		e.msgs <- m
	}
}

func (e *Executor) setReadErr(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	e.mu.Lock()
	e.readErr = err
	e.mu.Unlock()
}

// ReadError is why the control socket ended, when it was not a plain end of stream.
func (e *Executor) ReadError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.readErr
}

func (e *Executor) copyDiagnostics(r *os.File, done chan struct{}) {
	defer close(done)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		e.diag.WriteString(line + "\n")
		e.logLine(line)
	}
	_, _ = io.Copy(io.Discard, r) // a line longer than the scanner's buffer: drain the rest
}

// logLine hands a line of the executor's own output to Config.Log once the executor is
// ready; before that, lines are held (a start error carries them in its Detail, and the
// worker's stderr stays one line), and handed over when it becomes ready.
func (e *Executor) logLine(line string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.isReady {
		e.early = append(e.early, line)
		if len(e.early) > 200 {
			e.early = e.early[1:]
		}
		return
	}
	if e.cfg.Log != nil {
		e.cfg.Log(line)
	}
}

func (e *Executor) markReady() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.isReady = true
	if e.cfg.Log != nil {
		for _, l := range e.early {
			e.cfg.Log(l)
		}
	}
	e.early = nil
}

// Kill stops the executor's whole process group: SIGTERM now and SIGKILL after grace (at
// once when grace is 0). It returns at once; Done closes when the process is gone.
func (e *Executor) Kill(grace time.Duration) {
	e.killOnce.Do(func() {
		close(e.killed)
		if grace <= 0 {
			_ = e.g.Kill()
			return
		}
		_ = e.g.Stop(grace)
	})
}

// Killed reports whether Kill was called.
func (e *Executor) Killed() bool {
	select {
	case <-e.killed:
		return true
	default:
		return false
	}
}

// Stop asks the executor to exit (an exit frame), and kills it if it has not exited when
// ctx ends or grace passes. It returns once the process is gone.
func (e *Executor) Stop(ctx context.Context, grace time.Duration) {
	_ = e.Send(map[string]any{"op": "exit"}, nil)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-e.done:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	e.Kill(0)
	<-e.done
}

// Discard kills the executor at once, waits until it is gone and drops the messages it still
// had: for an executor that started after its runner stopped wanting it (the runner closed).
func (e *Executor) Discard() {
	e.Kill(0)
	<-e.done
	for range e.msgs {
	}
}

// LastDiagnostic is the last line of Diagnostics: what a log line about the executor's end
// shows of its output.
func (e *Executor) LastDiagnostic() string { return lastLine(e.Diagnostics()) }

// RSS returns the executor process's resident set size in bytes (Linux; 0 elsewhere).
func (e *Executor) RSS() int64 { return RSSOf(e.pgid) }

// RSSOf returns a process's resident set size in bytes (Linux; 0 elsewhere or when it is gone).
func RSSOf(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// ring keeps the last max bytes written.
type ring struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (r *ring) WriteString(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.b = append(r.b, s...)
	if len(r.b) > r.max {
		r.b = append(r.b[:0], r.b[len(r.b)-r.max:]...)
	}
}

func (r *ring) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.b)
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n ")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "..."
}
