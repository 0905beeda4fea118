package agent

import (
	"context"
	"sync"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// commitMeter is the leader's commit latency, measured by a tiny commit of
// its own once per probe interval (Deps.ProbeCommit), apart from the tick:
// a commit that waits on a stalled disk must not stall the decisions, and
// a stall must show while it lasts, not only once it ends. Times are on
// the monotonic clock (time.Now's reading), never the wall clock.
type commitMeter struct {
	mu    sync.Mutex
	start time.Time     // of the probe in flight; zero when none
	last  time.Duration // of the last probe that finished (failed or not: its time counts)
}

// latency is the last probe's time, or the one in flight's age if that is
// longer: a commit stuck for 3 s reads as 3 s at once.
func (c *commitMeter) latency(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.last
	if !c.start.IsZero() {
		d = max(d, now.Sub(c.start))
	}
	return d
}

func (c *commitMeter) begin(now time.Time) {
	c.mu.Lock()
	c.start = now
	c.mu.Unlock()
}

func (c *commitMeter) end(d time.Duration) {
	c.mu.Lock()
	c.start, c.last = time.Time{}, d
	c.mu.Unlock()
}

// reset forgets the figure: this node is no longer the primary.
func (c *commitMeter) reset() { c.end(0) }

// measureCommits probes the local primary's commits until ctx ends. A
// probe may outlast the interval (a stalled disk); the next one starts
// after it. It never decides anything: the figure goes to status and
// metrics.
func (a *Agent) measureCommits(ctx context.Context) {
	if a.d.ProbeCommit == nil {
		return
	}
	t := time.NewTicker(a.cfg.Timers.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, last, _ := a.snapshot()
		if !last.pg.Up || last.pg.InRecovery {
			a.commit.reset()
			continue
		}
		// Long enough to see a disk stall through, short enough that a
		// hung server does not hold the meter for ever.
		c, cancel := context.WithTimeout(ctx, time.Minute)
		a.commit.begin(time.Now())
		// A failed probe (the server restarting, say) still counts its
		// time: a commit that failed after 3 s was 3 s of a client's wait.
		d, _ := a.d.ProbeCommit(c)
		cancel()
		a.commit.end(d)
	}
}

// commitLatency is the commit meter's figure while this node is a primary,
// zero otherwise (a follower commits nothing).
func (a *Agent) commitLatency(pg postgres.Status) time.Duration {
	if !pg.Up || pg.InRecovery {
		return 0
	}
	return a.commit.latency(time.Now())
}
