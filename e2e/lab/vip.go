package lab

import (
	"context"
	"sync"
	"time"

	"github.com/twonode-edge/twonode/e2e/cluster"
)

// watchVIP samples, every 20 ms for up to 30 s, where the address is; the
// returned function says when node first held it, and when it first held
// it alone.
func watchVIP(ctx context.Context, r *cluster.VIPReader, node string) func() (taken, alone time.Time) {
	var (
		mu           sync.Mutex
		taken, alone time.Time
	)
	other := "a"
	if node == "a" {
		other = "b"
	}
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			on, err1 := r.Held(node)
			off, err2 := r.Held(other)
			now := time.Now()
			mu.Lock()
			if err1 == nil && on && taken.IsZero() {
				taken = now
			}
			if err1 == nil && err2 == nil && on && !off {
				alone = now
			}
			done := !alone.IsZero()
			mu.Unlock()
			if done {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() (time.Time, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		return taken, alone
	}
}
