//go:build unix && !linux

package pyexec

import "syscall"

// controlSocketpair makes the executor's control socket pair. Without SOCK_CLOEXEC (macOS)
// the flag is set right after, under ForkLock, so no concurrent fork inherits the fds.
func controlSocketpair() ([2]int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return fds, err
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	return fds, nil
}
