package main

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// errOutputClosed stops a bulk run whose stdout was closed (see outWriter).
var errOutputClosed = errors.New("stdout was closed (the reader of rayctl's output exited, e.g. head)")

// outWriter is stdout as rayctl writes it. When its reader goes away (`rayctl requeue ... |
// head -3`: a broken pipe), the first failed write marks it closed and every later write is
// dropped, reported as written: output stops, the program does not (main asks for SIGPIPE,
// so a write returns EPIPE instead of killing the process with 141 half-way). Bulk commands
// check closed() at each step: a closed stdout stops them before their next batch, and
// their summary goes to stderr instead.
type outWriter struct {
	w      io.Writer
	mu     sync.Mutex
	isDone bool
}

func (o *outWriter) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.isDone {
		return len(p), nil
	}
	n, err := o.w.Write(p)
	if err != nil && closedPipe(err) {
		o.isDone = true
		return len(p), nil
	}
	return n, err
}

// closed reports whether stdout's reader went away: a write failed, or (when stdout is a pipe
// or socket) the kernel reports its other end closed, which a bulk run asks before each batch
// without writing anything.
func (o *outWriter) closed() bool {
	if o == nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.isDone && hungUp(o.w) {
		o.isDone = true
	}
	return o.isDone
}

// hungUp polls w's file descriptor, without waiting: POLLERR or POLLHUP on the writing end
// of a pipe or socket means nobody will read what is written.
func hungUp(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd)}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			gone = fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0
		}
	})
	return gone
}

// closedPipe reports whether err means the reader is gone: EPIPE, or a closed pipe.
func closedPipe(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrClosedPipe)
}
