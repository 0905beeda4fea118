package localapi

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Listen opens the agent's unix socket. It creates the parent directory
// (0700) if missing, replaces a socket left by a dead agent, refuses to
// start beside a live one, and makes the socket 0600: the file mode is
// the local API's only authentication.
func Listen(socketPath string) (net.Listener, error) {
	// An existing directory keeps its mode: it may be shared (/run), and
	// the socket's own mode protects it.
	if err := os.MkdirAll(filepath.Dir(socketPath), 0o700); err != nil {
		return nil, fmt.Errorf("local API: %w", err)
	}
	if err := removeStale(socketPath); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("local API: %w", err)
	}
	// The socket exists with the umask's mode until this chmod; a 0700
	// parent directory (created above) closes that window.
	if err := os.Chmod(socketPath, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("local API: %w", err)
	}
	return ln, nil
}

// removeStale removes a socket nobody answers on. A live socket means
// another agent runs; anything that is not a socket is not ours to delete.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("local API: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("local API: %s exists and is not a socket; refusing to replace it", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("local API: another twonode agent is already listening on %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("local API: checking the existing socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local API: removing stale socket: %w", err)
	}
	return nil
}
