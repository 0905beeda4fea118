package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"syscall"
	"time"
)

// Client is the CLI's typed client to the local agent.
type Client struct {
	path        string
	hc          *http.Client
	timeout     time.Duration // default for every call
	longTimeout time.Duration // promote and switchover
}

// NewClient talks to the agent listening on socketPath.
func NewClient(socketPath string) *Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &Client{
		path: socketPath,
		hc: &http.Client{
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return d.DialContext(ctx, "unix", socketPath)
				},
				DisableKeepAlives: true, // a CLI makes one call
			},
		},
		timeout:     clientTimeout,
		longTimeout: clientLongTimeout,
	}
}

// ErrNotRunning matches the errors for a missing or dead agent.
var ErrNotRunning = errors.New("twonode agent is not running")

// NotRunningError says why the agent cannot be reached, in the CLI's words.
type NotRunningError struct {
	Path string
	Why  string // "no socket at", "nothing answers on"
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("twonode agent is not running (%s %s)", e.Why, e.Path)
}

func (e *NotRunningError) Is(target error) bool { return target == ErrNotRunning }

// APIError is the agent's refusal; Message is written for the operator.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrConflict) true for a 409.
func (e *APIError) Is(target error) bool {
	return target == ErrConflict && e.Code == http.StatusConflict
}

// Status returns the agent's report.
func (c *Client) Status(ctx context.Context) (StatusReport, error) {
	var r StatusReport
	err := c.call(ctx, c.timeout, http.MethodGet, "/v1/status", nil, &r)
	return r, err
}

// Pause pauses automatic failover on both nodes for d.
func (c *Client) Pause(ctx context.Context, d time.Duration) (string, error) {
	return c.message(ctx, c.timeout, "/v1/pause", pauseRequest{For: d.String()})
}

// Resume ends a pause on both nodes.
func (c *Client) Resume(ctx context.Context) (string, error) {
	return c.message(ctx, c.timeout, "/v1/resume", emptyRequest{})
}

// Promote makes this node the leader; force overrides the checks that the
// leader is really gone. It restarts PostgreSQL and Kine, hence the long
// deadline.
func (c *Client) Promote(ctx context.Context, force bool) (string, error) {
	return c.message(ctx, c.longTimeout, "/v1/promote", promoteRequest{Force: force})
}

// Switchover hands leadership to the follower (planned, no data loss).
func (c *Client) Switchover(ctx context.Context) (string, error) {
	return c.message(ctx, c.longTimeout, "/v1/switchover", emptyRequest{})
}

func (c *Client) message(ctx context.Context, timeout time.Duration, path string, in any) (string, error) {
	var r messageReply
	err := c.call(ctx, timeout, http.MethodPost, path, in, &r)
	if err == nil && r.Partial {
		err = fmt.Errorf("%s: %w", path, ErrPartial)
	}
	return r.Message, err
}

// call makes one request within timeout (or the caller's earlier deadline).
func (c *Client) call(ctx context.Context, timeout time.Duration, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: encoding request: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	// The host is a placeholder: the transport always dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://twonode"+path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.dialError(path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s: reading the agent's answer: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e errorReply
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("the agent answered %s", resp.Status)
		}
		return &APIError{Code: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: malformed answer from the agent: %w", path, err)
	}
	return nil
}

// dialError turns the usual failures into what the operator should do.
func (c *Client) dialError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &NotRunningError{Path: c.path, Why: "no socket at"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &NotRunningError{Path: c.path, Why: "nothing answers on"}
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("no permission to use %s (run as root): %w", c.path, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: the agent did not answer in time (it may still be working; see `twonode status`): %w", path, err)
	}
	return fmt.Errorf("%s: %w", path, err)
}
