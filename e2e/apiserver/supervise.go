package apiserver

import (
	"sync"
	"time"
)

// RestartDelay is how long a Supervisor waits before starting an API server
// that exited (systemd's RestartSec for k3s is 5 s; tests wait less).
const RestartDelay = time.Second

// Supervisor keeps one node's API server running the way the node's init
// system would: restarted whenever it exits while the node is up, and not
// while the node is powered off. A power-off kills every process of the
// node's namespace, the API server among them; Down before it and Up after
// the node starts again.
type Supervisor struct {
	S *Server

	mu       sync.Mutex
	up       bool
	stopped  bool
	restarts int
	wake     chan struct{}
	done     chan struct{}
}

// Supervise takes over a started server.
func Supervise(s *Server) *Supervisor {
	v := &Supervisor{S: s, up: true, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go v.loop()
	return v
}

// loop waits for the server to exit while the node is up, and starts it
// again after RestartDelay. A powered-off node's server is not watched (a
// nil channel never fires): the loop waits for Up or Stop. Every change of
// state pokes wake, so the loop looks again.
func (v *Supervisor) loop() {
	defer close(v.done)
	for {
		v.mu.Lock()
		stopped, up, p := v.stopped, v.up, v.S.proc
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
		if v.up && !v.stopped && !v.S.proc.Running() {
			if err := v.S.spawn(); err == nil {
				v.restarts++
			}
		}
		v.mu.Unlock()
	}
}

func (v *Supervisor) poke() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// Down marks the node powered off: an exit is not followed by a restart.
func (v *Supervisor) Down() {
	v.mu.Lock()
	v.up = false
	v.mu.Unlock()
	v.poke()
}

// Up marks the node running again: the API server is started if it is not
// running (at once: a booting node starts it with its other services).
func (v *Supervisor) Up() {
	v.mu.Lock()
	v.up = true
	if !v.stopped && !v.S.proc.Running() {
		if err := v.S.spawn(); err == nil {
			v.restarts++
		}
	}
	v.mu.Unlock()
	v.poke()
}

// Restarts is how often the server was started again.
func (v *Supervisor) Restarts() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.restarts
}

// Stop ends supervision and stops the server.
func (v *Supervisor) Stop() error {
	v.mu.Lock()
	v.stopped = true
	v.mu.Unlock()
	v.poke()
	<-v.done
	return v.S.Stop()
}
