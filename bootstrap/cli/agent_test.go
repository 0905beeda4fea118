package cli

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func init() {
	// urfave/cli exits the process on an ExitCoder; the tests inspect it instead.
	cli.OsExiter = func(int) {}
	cli.ErrWriter = io.Discard
}

// An invalid configuration changes nothing on the node and exits non-zero
// with an error naming the field.
func TestAgentRefusesInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 40)), 0o644); err != nil { // readable by others
		t.Fatal(err)
	}
	data, run := filepath.Join(dir, "data"), filepath.Join(dir, "run")
	base := "node: {name: a, address: 10.1.0.1}\nsecret_file: " + secret + "\ndata_dir: " + data + "\nrun_dir: " + run + "\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown key", base + "peer: {name: b, address: 10.1.0.2}\nprobe: 1s\n", "probe"},
		{"missing peer", base, "peer"},
		{"peer equal to self", base + "peer: {name: b, address: 10.1.0.1}\n", "peer.address"},
		{"window too short", base + "peer: {name: b, address: 10.1.0.2}\ntimers: {probe_interval: 100ms, probe_timeout: 50ms, failure_threshold: 2}\n", "too short"},
		{"secret readable by others", base + "peer: {name: b, address: 10.1.0.2}\n", "secret"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(cfg, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			err := App().Run([]string{"twonode", "agent", "--config", cfg})
			var exit cli.ExitCoder
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("want exit code 2, got %v", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("error does not name %q: %v", c.want, err)
			}
			if strings.Contains(err.Error(), strings.Repeat("s", 40)) {
				t.Fatal("the secret appears in the error")
			}
			for _, p := range []string{data, run} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Fatalf("%s was created by a refused config", p)
				}
			}
		})
	}
}

func TestOperatorCommandsRejectStrayArguments(t *testing.T) {
	err := App().Run([]string{"twonode", "status", "extra"})
	if err == nil || !strings.Contains(err.Error(), "unexpected argument extra") {
		t.Fatalf("got %v", err)
	}
}

func TestOperatorCommandWithoutAgent(t *testing.T) {
	err := App().Run([]string{"twonode", "status", "--socket", filepath.Join(t.TempDir(), "none.sock")})
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("got %v", err)
	}
}
