package procgroup

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Start starts c under a shim (see the package comment) and returns once the command runs.
func Start(c Cmd) (*Group, error) {
	path, args, err := c.resolve()
	if err != nil {
		return nil, err
	}
	cr, cw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		cr.Close()
		cw.Close()
		return nil, err
	}
	argv := append([]string{shimArg, strconv.Itoa(len(c.ExtraFiles)), path}, args...)
	// Its own process group: a signal to the worker's group (a terminal's Ctrl-C, kill -9 of
	// the worker's group) does not reach the shim, which then cleans up after the worker.
	cmd := c.command("/proc/self/exe", argv...)
	cmd.Args[0] = "rayworker-procgroup" // what ps shows
	cmd.ExtraFiles = append([]*os.File{cr, sw}, c.ExtraFiles...)
	err = cmd.Start()
	cr.Close() // the shim holds its own copies
	sw.Close()
	if err != nil {
		cw.Close()
		sr.Close()
		return nil, err
	}
	status := bufio.NewReader(sr)
	line, _ := status.ReadString('\n')
	verb, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	if verb != "started" {
		cw.Close()
		sr.Close()
		_ = cmd.Wait()
		if verb == "error" {
			return nil, startError(path, arg)
		}
		return nil, fmt.Errorf("procgroup: the supervisor for %s ended before starting it: %q", path, strings.TrimSpace(line))
	}
	pid, err := strconv.Atoi(arg)
	if err != nil {
		cw.Close()
		sr.Close()
		_ = cmd.Wait()
		return nil, fmt.Errorf("procgroup: the supervisor said %q", strings.TrimSpace(line))
	}
	pc := &pipeCtl{w: cw}
	g := &Group{pid: pid, ctl: pc, done: make(chan struct{})}
	go func() {
		var e Exit
		reported := false
		for {
			line, err := status.ReadString('\n')
			if verb, arg, _ := strings.Cut(strings.TrimSpace(line), " "); verb == "exit" || verb == "signal" {
				if n, perr := strconv.Atoi(arg); perr == nil {
					if verb == "exit" {
						e = Exit{Code: n}
					} else {
						e = Exit{Code: -1, Signal: syscall.Signal(n)}
					}
					reported = true
				}
			}
			if err != nil {
				break
			}
		}
		sr.Close()
		waitErr := cmd.Wait()
		pc.close()
		var err error
		if !reported {
			e = Exit{Code: -1, Signal: syscall.SIGKILL}
			err = fmt.Errorf("procgroup: the supervisor of process %d ended without reporting its end (%v); the command was killed by its parent-death signal", pid, waitErr)
		}
		g.finish(e, err)
	}()
	return g, nil
}

// startError rebuilds the error the shim's fork/exec reported ("<errno> <text>").
func startError(path, arg string) error {
	num, text, _ := strings.Cut(arg, " ")
	if n, err := strconv.Atoi(num); err == nil && n > 0 {
		return &os.PathError{Op: "fork/exec", Path: path, Err: syscall.Errno(n)}
	}
	return errors.New("procgroup: " + text)
}

// pipeCtl sends commands to the shim over its control pipe.
type pipeCtl struct {
	mu     sync.Mutex
	w      *os.File
	closed bool
}

func (p *pipeCtl) send(b byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if _, err := p.w.Write([]byte{b}); err != nil && !errors.Is(err, syscall.EPIPE) {
		return err
	}
	return nil
}

func (p *pipeCtl) terminate() error { return p.send('T') }
func (p *pipeCtl) kill() error      { return p.send('K') }

func (p *pipeCtl) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.w.Close()
	}
}
