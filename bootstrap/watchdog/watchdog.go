// Package watchdog drives a Linux watchdog device (/dev/watchdog): once
// armed, the machine resets unless the agent pets it within the timeout.
// A leader that leads alone holds the witness's lease; if its agent hangs
// (frozen, deadlocked, starved) its Kine would keep serving after the
// lease expired and the follower took over. The watchdog turns that hang
// into a reset before the lease can expire.
//
// Tests use a named pipe instead of a device (FOR TESTS ONLY): the harness
// reads it and powers the test node off when the pets stop.
package watchdog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Device is one watchdog device, armed on first use.
type Device struct {
	path    string
	timeout time.Duration
	log     *slog.Logger

	mu sync.Mutex
	f  *os.File
}

// New returns the device at path with the given timeout (whole seconds).
// Nothing is opened until Arm: an idle watchdog must not reset anything.
func New(path string, timeout time.Duration, log *slog.Logger) *Device {
	return &Device{path: path, timeout: timeout, log: log}
}

// Arm opens the device and sets its timeout; armed already, it pets it.
// A real device whose timeout cannot be set is refused: its default (often
// a minute) would outlast the witness's lease.
func (d *Device) Arm() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f != nil {
		return d.petLocked()
	}
	st, err := os.Stat(d.path)
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	flags := os.O_WRONLY
	if st.Mode()&os.ModeNamedPipe != 0 {
		flags |= unix.O_NONBLOCK // fails at once when the harness does not read it
	}
	f, err := os.OpenFile(d.path, flags, 0)
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	switch {
	case st.Mode()&os.ModeNamedPipe != 0:
		d.log.Warn("FOR TESTS ONLY: the watchdog is a named pipe, not a device", "path", d.path)
	case st.Mode()&os.ModeCharDevice != 0:
		if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.WDIOC_SETTIMEOUT, int(d.timeout/time.Second)); err != nil {
			d.disarmLocked(f)
			return fmt.Errorf("watchdog: %s: setting the timeout to %s: %w", d.path, d.timeout, err)
		}
	default:
		_ = f.Close()
		return fmt.Errorf("watchdog: %s is neither a watchdog device nor a test pipe", d.path)
	}
	d.f = f
	d.log.Info("watchdog armed: the node resets if the agent stops for longer than the timeout", "path", d.path, "timeout", d.timeout)
	return d.petLocked()
}

// Pet restarts the countdown; not armed, it does nothing.
func (d *Device) Pet() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	return d.petLocked()
}

func (d *Device) petLocked() error {
	if _, err := d.f.Write([]byte{'.'}); err != nil {
		return fmt.Errorf("watchdog: pet: %w", err)
	}
	return nil
}

// Disarm stops the countdown: the magic close ('V', then close), which a
// driver built with nowayout ignores (it then resets after the timeout,
// unless the agent arms it again first).
func (d *Device) Disarm() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.disarmLocked(d.f)
	d.f = nil
	d.log.Info("watchdog disarmed", "path", d.path)
	return err
}

func (d *Device) disarmLocked(f *os.File) error {
	_, werr := f.Write([]byte{'V'})
	return errors.Join(werr, f.Close())
}
