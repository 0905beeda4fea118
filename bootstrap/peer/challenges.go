package peer

import (
	"container/list"
	"sync"
	"time"
)

const (
	challengeTTL = 30 * time.Second
	challengeCap = 1024
)

// challenges are the outstanding challenges, oldest first. The TTL is
// measured with now, which must carry Go's monotonic reading (time.Now
// does): a wall-clock jump, or a node run minutes ahead, changes nothing.
// The cap bounds memory against anyone calling GET /v1/challenge in a loop;
// when full, the oldest challenge is dropped and its holder retries.
type challenges struct {
	now func() time.Time
	ttl time.Duration
	max int

	mu    sync.Mutex
	order *list.List // of issued, oldest at the front
	byKey map[string]*list.Element
}

type issued struct {
	key string
	at  time.Time
}

func newChallenges(now func() time.Time) *challenges {
	return &challenges{now: now, ttl: challengeTTL, max: challengeCap, order: list.New(), byKey: map[string]*list.Element{}}
}

// issue makes and remembers a new challenge.
func (c *challenges) issue() string {
	key := newChallenge()
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	// Issue order is time order, so expired entries are all at the front.
	for e := c.order.Front(); e != nil && c.expired(e, now); e = c.order.Front() {
		c.remove(e)
	}
	for c.order.Len() >= c.max {
		c.remove(c.order.Front())
	}
	c.byKey[key] = c.order.PushBack(issued{key: key, at: now})
	return key
}

// consume reports whether key is outstanding and fresh, and uses it up: a
// challenge answers exactly one request.
func (c *challenges) consume(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return false
	}
	c.remove(e)
	return !c.expired(e, c.now())
}

// expired also treats a clock that went backwards as expiry: impossible
// with a monotonic reading, and failing closed with any other clock.
func (c *challenges) expired(e *list.Element, now time.Time) bool {
	age := now.Sub(e.Value.(issued).at)
	return age < 0 || age > c.ttl
}

func (c *challenges) remove(e *list.Element) {
	delete(c.byKey, e.Value.(issued).key)
	c.order.Remove(e)
}

func (c *challenges) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
