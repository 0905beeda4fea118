package watchdog

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// The test pipe sees what a device would: a pet at arming, one per Pet,
// and the magic close.
func TestPipeWatchdog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "watchdog")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	ready := make(chan struct{})
	go func() {
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
		close(ready)
		if err != nil {
			got <- "open: " + err.Error()
			return
		}
		defer f.Close()
		var b strings.Builder
		buf := make([]byte, 16)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			n, _ := f.Read(buf)
			b.Write(buf[:n])
			if strings.HasSuffix(b.String(), "V") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		got <- b.String()
	}()
	<-ready
	d := New(path, 4*time.Second, quiet)
	if err := d.Pet(); err != nil {
		t.Fatalf("a pet before arming: %v", err)
	}
	if err := d.Arm(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := d.Pet(); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Disarm(); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "...V" {
		t.Errorf("the pipe read %q, want three pets and the magic close", s)
	}
}

func TestNotAWatchdog(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := New(plain, time.Second, quiet).Arm(); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("a plain file: %v", err)
	}
	if err := New(filepath.Join(dir, "missing"), time.Second, quiet).Arm(); err == nil {
		t.Error("a missing device armed")
	}
	pipe := filepath.Join(dir, "pipe")
	if err := unix.Mkfifo(pipe, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := New(pipe, time.Second, quiet).Arm(); err == nil {
		t.Error("a test pipe nobody reads armed: the harness would never see the pets")
	}
}
