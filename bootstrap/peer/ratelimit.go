package peer

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Requests from any address but the peer's are limited per source, before
// anything is read or checked: the peer probes twice a second, so these
// only ever slow someone else down, and a flood costs the agent a map
// lookup per request. Sources are remembered up to maxSources, the least
// recently seen forgotten first (a forgotten source starts with a full
// bucket, which is the price of bounded memory).
const (
	sourceRate  = 20 // requests a second, sustained
	sourceBurst = 40
	maxSources  = 4096
)

type sourceLimits struct {
	now func() time.Time

	mu    sync.Mutex
	order *list.List // of *sourceLimit, most recently seen at the front
	by    map[netip.Addr]*list.Element
}

type sourceLimit struct {
	addr netip.Addr
	lim  *rate.Limiter
}

func newSourceLimits(now func() time.Time) *sourceLimits {
	return &sourceLimits{now: now, order: list.New(), by: map[netip.Addr]*list.Element{}}
}

// allow spends one request of src's budget; false: over it.
func (l *sourceLimits) allow(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.by[src]
	if ok {
		l.order.MoveToFront(e)
	} else {
		for l.order.Len() >= maxSources {
			old := l.order.Back()
			delete(l.by, old.Value.(*sourceLimit).addr)
			l.order.Remove(old)
		}
		e = l.order.PushFront(&sourceLimit{addr: src, lim: rate.NewLimiter(sourceRate, sourceBurst)})
		l.by[src] = e
	}
	return e.Value.(*sourceLimit).lim.AllowN(l.now(), 1)
}

func (l *sourceLimits) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}
