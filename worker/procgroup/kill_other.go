//go:build unix && !linux

package procgroup

import (
	"sync"
	"syscall"
)

type killCtl struct {
	mu    sync.Mutex
	pgid  int
	ended bool
}

func (k *killCtl) signal(sig syscall.Signal) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ended {
		return nil
	}
	if err := syscall.Kill(-k.pgid, sig); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}

func (k *killCtl) terminate() error { return k.signal(syscall.SIGTERM) }
func (k *killCtl) kill() error      { return k.signal(syscall.SIGKILL) }

func (k *killCtl) gone(v bool) {
	k.mu.Lock()
	k.ended = v
	k.mu.Unlock()
}
