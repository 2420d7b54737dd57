//go:build unix && !linux

package procgroup

import (
	"errors"
	"os/exec"
	"syscall"
)

// Start starts c in its own process group. Outside Linux there is no supervisor: a worker
// killed with -9 leaves the group running (see the package comment).
func Start(c Cmd) (*Group, error) {
	path, args, err := c.resolve()
	if err != nil {
		return nil, err
	}
	cmd := c.command(path)
	cmd.Args, cmd.ExtraFiles = args, c.ExtraFiles
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	k := &killCtl{pgid: pid}
	g := &Group{pid: pid, ctl: k, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		k.kill()     // stragglers left in the group (the group id is still held by them)
		k.gone(true) // never signal the id again
		var e Exit
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
				e = exitOf(ws)
			} else {
				e = Exit{Code: ee.ExitCode()}
			}
			err = nil
		}
		g.finish(e, err)
	}()
	return g, nil
}

func runShim([]string) int { return 2 }
