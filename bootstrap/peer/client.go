package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Client calls the peer's agent. It is safe for concurrent use.
type Client struct {
	base    string
	baseErr error
	secret  []byte
	names   Names
	timeout time.Duration
	hc      *http.Client

	// HandoverTimeout bounds Handover, which waits while the peer replays
	// and promotes; a probe timeout would abandon a switchover half done.
	// It is a little longer than the server's own deadline, so the peer's
	// answer (or its refusal) arrives before the client gives up.
	HandoverTimeout time.Duration

	// Now is the wall clock read around Status for sent and received. Set
	// it to the clock the agent puts in Status.Now (one with a configured
	// test offset, say), or the measured offset is off by that much.
	Now func() time.Time

	mu       sync.Mutex
	cached   string    // a challenge from the last answer, unused
	cachedAt time.Time // monotonic, local
}

// A cached challenge older than this is dropped rather than sent: the
// server forgets it at 30 s, and the request needs time to get there.
const cacheFor = 20 * time.Second

const defaultTimeout = 5 * time.Second

// NewClient calls the agent at baseURL (e.g. "https://10.99.0.2:8760", with
// UseTLS; plain http:// is for tests).
// timeout bounds each call, challenge fetch and one retry included. names
// are this node's and the peer's: requests are signed from the one to the
// other, and only answers signed the other way round are believed.
func NewClient(baseURL string, secret []byte, timeout time.Duration, names Names) *Client {
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	c := &Client{
		base:            strings.TrimRight(baseURL, "/"),
		secret:          append([]byte(nil), secret...),
		names:           names,
		timeout:         timeout,
		HandoverTimeout: handoverDeadline + 10*time.Second,
		Now:             time.Now,
		hc: &http.Client{
			Transport: &http.Transport{
				Proxy: nil, // never send the peer's traffic through an HTTP_PROXY from the environment
				DialContext: (&net.Dialer{
					Timeout:   timeout,
					KeepAlive: 15 * time.Second,
				}).DialContext,
				MaxIdleConnsPerHost: 2,
				IdleConnTimeout:     30 * time.Second,
				TLSHandshakeTimeout: timeout,
			},
			// A redirect is not the peer answering: do not follow it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if u, err := url.Parse(c.base); err != nil {
		c.baseErr = fmt.Errorf("peer URL %q: %w", baseURL, err)
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.baseErr = fmt.Errorf("peer URL %q: want http://host:port", baseURL)
	}
	if err := names.check(); err != nil {
		c.baseErr = err
	}
	if len(secret) == 0 {
		c.baseErr = errors.New("peer client: no cluster secret configured")
	}
	return c
}

// UseTLS makes the client check the peer's certificate with cfg (the
// pair's CA only; see package pki) on an https:// base URL. Without it an
// https:// peer is checked against the system's roots, which never signed a
// node's certificate: nothing is sent in clear by mistake.
func (c *Client) UseTLS(cfg *tls.Config) {
	cfg = cfg.Clone()
	if cfg.ClientSessionCache == nil {
		// Resumption: a new connection after an idle one was dropped
		// skips the certificate check's signature.
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	}
	c.hc.Transport.(*http.Transport).TLSClientConfig = cfg
}

// minCommandTimeout bounds pause, resume and follow from below: the peer
// answers them from its agent's loop, after the tick under way, not at
// once as a status. Measured in the matrix (witness, frozen leader): a
// follow sent with the 400 ms probe timeout while the new leader was busy
// was recorded 227 ms after it arrived, its answer came too late five times
// in a row, and the rejoin waited 18 s in back-off.
const minCommandTimeout = 2 * time.Second

func (c *Client) commandTimeout() time.Duration { return max(c.timeout, minCommandTimeout) }

// Status asks the peer how it is. sent and received are c.Now read around
// the request that answered, so the caller estimates the peer's clock
// offset as s.Now minus their midpoint.
func (c *Client) Status(ctx context.Context) (s Status, sent, received time.Time, err error) {
	sent, received, err = c.call(ctx, c.timeout, http.MethodGet, "/v1/status", nil, &s)
	if err != nil {
		return Status{}, sent, received, err
	}
	if err := CheckStatus(s); err != nil {
		return Status{}, sent, received, fmt.Errorf("%w: the peer's status is out of bounds: %w", ErrImplausible, err)
	}
	if s.Name != c.names.Peer {
		// This node's own status, reflected to it (an answer signed the
		// old way names nobody), or another pair's agent at the peer's
		// address: either way not the peer.
		return Status{}, sent, received, fmt.Errorf("%w: the status is %q's, not the peer's (%q)", ErrImplausible, s.Name, c.names.Peer)
	}
	return s, sent, received, nil
}

// Pause pauses failover on the peer too.
func (c *Client) Pause(ctx context.Context, r PauseRequest) error {
	_, _, err := c.call(ctx, c.commandTimeout(), http.MethodPost, "/v1/pause", r, nil)
	return err
}

// Resume ends the peer's pause.
func (c *Client) Resume(ctx context.Context, r ResumeRequest) error {
	_, _, err := c.call(ctx, c.commandTimeout(), http.MethodPost, "/v1/resume", r, nil)
	return err
}

// Handover asks the follower to take over (planned switchover).
func (c *Client) Handover(ctx context.Context, r HandoverRequest) (HandoverResponse, error) {
	var resp HandoverResponse
	if _, _, err := c.call(ctx, c.HandoverTimeout, http.MethodPost, "/v1/handover", r, &resp); err != nil {
		return HandoverResponse{}, err
	}
	return resp, nil
}

// Follow tells the leader that this node adopts its term (see
// FollowRequest); an error means it did not record it.
func (c *Client) Follow(ctx context.Context, r FollowRequest) error {
	_, _, err := c.call(ctx, c.commandTimeout(), http.MethodPost, "/v1/follow", r, nil)
	return err
}

// Error is a refusal from the peer. Verified is false when the answer was
// rejected before authentication and so could not be signed (401, 413...):
// its Message may come from anyone on the path.
type Error struct {
	Code     int
	Message  string
	Verified bool
}

func (e *Error) Error() string {
	if !e.Verified {
		return fmt.Sprintf("peer rejected the request (HTTP %d, unsigned): %q", e.Code, e.Message)
	}
	return fmt.Sprintf("peer refused (HTTP %d): %s", e.Code, e.Message)
}

// Is makes errors.Is(err, ErrConflict) true for a signed 409.
func (e *Error) Is(target error) bool {
	return target == ErrConflict && e.Verified && e.Code == http.StatusConflict
}
