package pyexec

import "syscall"

// controlSocketpair makes the executor's control socket pair, close-on-exec atomically.
func controlSocketpair() ([2]int, error) {
	return syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
}
