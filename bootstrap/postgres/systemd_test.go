package postgres

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd supervisor end to end (a real unit, a real pair) is
// e2e/appliance's TestAppliance; these are its pieces that need no systemd.

func TestSystemdEnv(t *testing.T) {
	dir := t.TempDir()
	s := NewSystemd(New(Settings{DataDir: "/usr/local/twonode/pgdata"}, nil), SystemdUnit, filepath.Join(dir, "run", "postgres.env"))
	if err := s.writeEnv(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "run", "postgres.env"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nPGDATA=/usr/local/twonode/pgdata\n") {
		t.Fatalf("environment file:\n%s", b)
	}
	bad := NewSystemd(New(Settings{DataDir: "/srv/$HOME/pgdata"}, nil), SystemdUnit, filepath.Join(dir, "bad.env"))
	if err := bad.writeEnv(); err == nil {
		t.Fatal("a data directory with $ was written into a systemd environment file")
	}
}

func TestSystemdStartNeedsData(t *testing.T) {
	s := NewSystemd(New(Settings{DataDir: filepath.Join(t.TempDir(), "pgdata")}, nil), SystemdUnit, filepath.Join(t.TempDir(), "postgres.env"))
	s.systemctl = "/nonexistent/systemctl" // must not be reached
	if err := s.Start(context.Background(), false); err == nil || !strings.Contains(err.Error(), "no cluster") {
		t.Fatalf("Start without data: %v", err)
	}
}
