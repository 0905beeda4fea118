package apiserver

import (
	"sync"
	"time"

	"github.com/twonode-edge/twonode/e2e/harness"
)

// RestartDelay is how long a Supervisor waits before starting an API server
// that exited (systemd's RestartSec for k3s is 5 s; tests wait less).
const RestartDelay = time.Second

// restartable is a process of a node that can be started again with the
// same command line: a Server or a Component.
type restartable interface {
	spawn() error
	current() *harness.Proc
	Stop() error
}

// Supervisor keeps one process of a node (its API server, its controller
// manager, its scheduler) running the way the node's init system would:
// restarted whenever it exits while the node is up, and not while the node
// is powered off. A power-off kills every process of the node's namespace;
// Down before it and Up after the node starts again.
type Supervisor[T restartable] struct {
	S T

	mu       sync.Mutex
	up       bool
	stopped  bool
	restarts int
	wake     chan struct{}
	done     chan struct{}
}

// Supervise takes over a started process.
func Supervise[T restartable](s T) *Supervisor[T] {
	v := &Supervisor[T]{S: s, up: true, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go v.loop()
	return v
}

// loop waits for the server to exit while the node is up, and starts it
// again after RestartDelay. A powered-off node's server is not watched (a
// nil channel never fires): the loop waits for Up or Stop. Every change of
// state pokes wake, so the loop looks again.
func (v *Supervisor[T]) loop() {
	defer close(v.done)
	for {
		v.mu.Lock()
		stopped, up, p := v.stopped, v.up, v.S.current()
		v.mu.Unlock()
		if stopped {
			return
		}
		var exited <-chan struct{}
		if up {
			exited = p.Done()
		}
		select {
		case <-v.wake:
			continue
		case <-exited:
		}
		select {
		case <-v.wake: // Down, Up or Stop meanwhile: look again first
			continue
		case <-time.After(RestartDelay):
		}
		v.mu.Lock()
		if v.up && !v.stopped && !v.S.current().Running() {
			if err := v.S.spawn(); err == nil {
				v.restarts++
			}
		}
		v.mu.Unlock()
	}
}

func (v *Supervisor[T]) poke() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// Down marks the node powered off: an exit is not followed by a restart.
func (v *Supervisor[T]) Down() {
	v.mu.Lock()
	v.up = false
	v.mu.Unlock()
	v.poke()
}

// Up marks the node running again: the API server is started if it is not
// running (at once: a booting node starts it with its other services).
func (v *Supervisor[T]) Up() {
	v.mu.Lock()
	v.up = true
	if !v.stopped && !v.S.current().Running() {
		if err := v.S.spawn(); err == nil {
			v.restarts++
		}
	}
	v.mu.Unlock()
	v.poke()
}

// Restarts is how often the server was started again.
func (v *Supervisor[T]) Restarts() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.restarts
}

// Stop ends supervision and stops the server.
func (v *Supervisor[T]) Stop() error {
	v.mu.Lock()
	v.stopped = true
	v.mu.Unlock()
	v.poke()
	<-v.done
	return v.S.Stop()
}
