package peer

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/httpserver"
)

// NewHTTPServer wraps h in the agent's http.Server (package httpserver's
// limits: the port is on the node network, reachable by more than the
// peer), whose write timeout leaves room for a handover. TLS with client
// certificates is the listener's.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return httpserver.New(h, handoverDeadline+10*time.Second, log)
}
