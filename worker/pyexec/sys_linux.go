package pyexec

import "syscall"

// sysProcAttr puts the executor in a process group of its own, so stopping it reaches
// everything its tasks started, and asks Linux to SIGKILL it if the worker dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// controlSocketpair makes the executor's control socket pair, close-on-exec atomically.
func controlSocketpair() ([2]int, error) {
	return syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
}
