//go:build unix && !linux

package pyexec

import "syscall"

// sysProcAttr puts the entrypoint in its own process group, so a kill reaches everything it
// started. Outside Linux there is no parent-death signal: if the worker is killed with -9,
// its running entrypoints finish on their own.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
