package peer

import (
	"net"
	"net/netip"
	"sync"
)

// Connection limits of the peer API's listener. The port is on the node
// network, where anything on the LAN can connect; the peer needs one or
// two connections (probes, a hand-over), so these only ever bind others.
const (
	MaxConnsPerSource = 32
	MaxConns          = 512
)

// LimitPerSource wraps ln so that no source address holds more than
// perSource connections at once, and all sources together no more than
// total; a connection over a limit is closed as soon as it is accepted.
// The peer's address (exempt) is never limited and never counted, so a
// flood of connections from elsewhere cannot keep the peer out.
func LimitPerSource(ln net.Listener, perSource, total int, exempt netip.Addr) net.Listener {
	return &limitListener{Listener: ln, per: perSource, total: total, exempt: exempt.Unmap(), open: map[netip.Addr]int{}}
}

type limitListener struct {
	net.Listener
	per, total int
	exempt     netip.Addr

	mu    sync.Mutex
	open  map[netip.Addr]int
	count int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceAddr(c.RemoteAddr().String())
		if l.exempt.IsValid() && src == l.exempt {
			return c, nil
		}
		if !l.take(src) {
			_ = c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: sync.OnceFunc(func() { l.give(src) })}, nil
	}
}

func (l *limitListener) take(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[src] >= l.per || l.count >= l.total {
		return false
	}
	l.open[src]++
	l.count++
	return true
}

func (l *limitListener) give(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count--
	if l.open[src]--; l.open[src] <= 0 {
		delete(l.open, src)
	}
}

// limitedConn gives its slot back once, however often it is closed.
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
