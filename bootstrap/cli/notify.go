package cli

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"
)

// systemdNotify implements the two messages of sd_notify the unit needs
// (Type=notify and WatchdogSec): READY=1 once, WATCHDOG=1 at half the
// watchdog period while the agent's loop is alive. Without NOTIFY_SOCKET (the lab, tests) it does nothing.
func systemdNotify(ctx context.Context, log *slog.Logger, alive func() bool) func() {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return func() {}
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		log.Warn("systemd notify socket", "err", err)
		return func() {}
	}
	_, _ = conn.Write([]byte("READY=1"))
	ctx, cancel := context.WithCancel(ctx)
	if usec, err := strconv.Atoi(os.Getenv("WATCHDOG_USEC")); err == nil && usec > 0 {
		go func() {
			t := time.NewTicker(time.Duration(usec) * time.Microsecond / 2)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if alive() {
						_, _ = conn.Write([]byte("WATCHDOG=1"))
					}
				}
			}
		}()
	}
	return func() {
		_, _ = conn.Write([]byte("STOPPING=1"))
		cancel()
		conn.Close()
	}
}
