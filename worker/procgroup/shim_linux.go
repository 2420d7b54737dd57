package procgroup

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// runShim is the supervisor: args are the number of extra files, the program and its argv.
// It reports on fd 4 ("started <pid>", "error <errno> <text>", then "exit <code>" or
// "signal <n>") and obeys fd 3 ('T': SIGTERM the group; 'K' or EOF: SIGKILL everything).
func runShim(args []string) int {
	runtime.GOMAXPROCS(1)
	status := os.NewFile(4, "status")
	report := func(format string, a ...any) { _, _ = fmt.Fprintf(status, format+"\n", a...) }
	if len(args) < 3 {
		report("error 0 bad supervisor arguments")
		return 2
	}
	nExtra, err := strconv.Atoi(args[0])
	if err != nil || nExtra < 0 {
		report("error 0 bad supervisor arguments")
		return 2
	}
	path, argv := args[1], args[2:]

	// Only the control pipe stops the shim: signals meant for the worker are not for it.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	go func() {
		for range sigs {
		}
	}()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		report("error 0 cannot become a child subreaper: %v", err)
		return 2
	}
	files := []uintptr{0, 1, 2}
	for i := range nExtra {
		files = append(files, uintptr(5+i))
	}
	for fd := 3; fd < 5+nExtra; fd++ {
		syscall.CloseOnExec(fd) // the command gets only 0, 1, 2 and its extra files
	}
	leader, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			report("error %d %s", int(errno), errno.Error())
		} else {
			report("error 0 %s", err.Error())
		}
		return 1
	}
	report("started %d", leader)

	s := &shim{leader: leader}
	go s.obey(os.NewFile(3, "control"))
	ws := s.reap()
	if ws.Signaled() {
		report("signal %d", int(ws.Signal()))
	} else {
		report("exit %d", ws.ExitStatus())
	}
	return 0
}

type shim struct {
	leader int

	mu           sync.Mutex
	leaderReaped bool // after this, the leader's pid (the group id) may be recycled: never signal it
	draining     bool
}

// obey reads the control pipe until the worker asks for a kill or goes away.
func (s *shim) obey(control *os.File) {
	b := make([]byte, 64)
	for {
		n, err := control.Read(b)
		for _, c := range b[:n] {
			switch c {
			case 'T':
				s.signalGroup(syscall.SIGTERM)
			case 'K':
				s.killAll()
			}
		}
		if err != nil { // EOF: the worker is gone (or done with us)
			s.killAll()
			return
		}
	}
}

func (s *shim) signalGroup(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.leaderReaped {
		_ = syscall.Kill(-s.leader, sig)
	}
}

// killAll kills the group and every descendant, and keeps killing what is re-parented to the
// shim until nothing is left.
func (s *shim) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.leaderReaped {
		_ = syscall.Kill(-s.leader, syscall.SIGKILL)
	}
	s.drainLocked()
}

// drainLocked kills the shim's children now and, from now on, every 20 ms (orphans of killed
// processes are re-parented to the shim as their parents die). Called with mu held.
func (s *shim) drainLocked() {
	killChildren()
	if s.draining {
		return
	}
	s.draining = true
	go func() {
		for {
			time.Sleep(20 * time.Millisecond)
			killChildren()
		}
	}()
}

// reap waits for every child (the command, and every orphan re-parented to the shim) and
// returns the command's wait status. When the command ends, what is left of its group and of
// its descendants is killed: the shim returns only when nothing is left.
func (s *shim) reap() syscall.WaitStatus {
	var leaderStatus syscall.WaitStatus
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil { // ECHILD: nothing is left
			return leaderStatus
		}
		pid := siginfoPid(&info)
		if pid == s.leader {
			s.mu.Lock()
			// The leader is a zombie: its pid still holds the group id, so the group can be
			// signalled safely one last time before it is reaped.
			_ = syscall.Kill(-s.leader, syscall.SIGKILL)
			s.drainLocked()
			for {
				if _, err := syscall.Wait4(pid, &leaderStatus, 0, nil); !errors.Is(err, syscall.EINTR) {
					break
				}
			}
			s.leaderReaped = true
			s.mu.Unlock()
			continue
		}
		for {
			if _, err := syscall.Wait4(pid, nil, 0, nil); !errors.Is(err, syscall.EINTR) {
				break
			}
		}
	}
}

// siginfoPid reads si_pid of a SIGCHLD siginfo: the union after the three-int preamble
// (padded to 16 bytes on 64-bit Linux).
func siginfoPid(info *unix.Siginfo) int {
	off := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16
	}
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(info), off)))
}

// killChildren sends SIGKILL to every child of the shim. A child is never reaped by anyone
// but the shim, so its pid cannot have been recycled.
func killChildren() {
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(field); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}
