package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/e2e/harness"
)

// Many more concurrent writes than Kine's connections to PostgreSQL (16,
// bootstrap/kine) are all answered. Kine v0.17.5 held two connections per
// write, one in an empty transaction: 16 writers took every connection and
// waited for a second one until their requests timed out (found by the
// datastore comparison with 32 clients, and after failovers, whose burst of
// retried writes stalled the new leader's Kine; Kine patch 0004).
func TestManyConcurrentWrites(t *testing.T) {
	c := newCluster(t, harness.NetConcurrentWrites)
	cli, err := c.Client("a")
	if err != nil {
		t.Fatal(err)
	}
	const writers = 64
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := cli.Put(ctx, fmt.Sprintf("/e2e-concurrent/%02d/%02d", w, i), "x")
				cancel()
				if err != nil {
					errs <- fmt.Errorf("writer %d, write %d: %w", w, i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d writers × 10 writes in %s", writers, time.Since(start).Round(time.Millisecond))
}
