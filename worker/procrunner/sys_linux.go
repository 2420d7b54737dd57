package procrunner

import "syscall"

// sysProcAttr puts the entrypoint in its own process group, so a kill reaches everything it
// started, and asks Linux to SIGKILL it if the worker dies (kill -9), so a dead worker's task
// does not keep running while another worker retries it. (Pdeathsig fires when the forking
// OS thread exits; the Go runtime only retires a thread when a goroutine locked to it with
// runtime.LockOSThread exits, which rayworker never does.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
