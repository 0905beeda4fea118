package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// TestMain keeps the tests independent of the environment they run in.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "TWONODE_") {
			os.Unsetenv(k)
		}
	}
	os.Exit(m.Run())
}

func TestFlagNames(t *testing.T) {
	want := [][2]string{
		{"config", "TWONODE_CONFIG"},
		{"node-name", "TWONODE_NODE_NAME"},
		{"node-address", "TWONODE_NODE_ADDRESS"},
		{"peer-name", "TWONODE_PEER_NAME"},
		{"peer-address", "TWONODE_PEER_ADDRESS"},
		{"secret-file", "TWONODE_SECRET_FILE"},
		{"preferred-leader", "TWONODE_PREFERRED_LEADER"},
		{"failover", "TWONODE_FAILOVER"},
		{"data-dir", "TWONODE_DATA_DIR"},
		{"run-dir", "TWONODE_RUN_DIR"},
		{"postgres-bin-dir", "TWONODE_POSTGRES_BIN_DIR"},
		{"postgres-port", "TWONODE_POSTGRES_PORT"},
		{"postgres-os-user", "TWONODE_POSTGRES_OS_USER"},
		{"postgres-shared-buffers", "TWONODE_POSTGRES_SHARED_BUFFERS"},
		{"postgres-supervisor", "TWONODE_POSTGRES_SUPERVISOR"},
		{"kine-binary", "TWONODE_KINE_BINARY"},
		{"kine-listen", "TWONODE_KINE_LISTEN"},
		{"kine-supervisor", "TWONODE_KINE_SUPERVISOR"},
		{"kine-unit", "TWONODE_KINE_UNIT"},
		{"kine-compact-min-retain", "TWONODE_KINE_COMPACT_MIN_RETAIN"},
		{"timers-probe-interval", "TWONODE_TIMERS_PROBE_INTERVAL"},
		{"timers-probe-timeout", "TWONODE_TIMERS_PROBE_TIMEOUT"},
		{"timers-failure-threshold", "TWONODE_TIMERS_FAILURE_THRESHOLD"},
		{"timers-boot-grace", "TWONODE_TIMERS_BOOT_GRACE"},
		{"timers-pause-expiry", "TWONODE_TIMERS_PAUSE_EXPIRY"},
		{"timers-promote-timeout", "TWONODE_TIMERS_PROMOTE_TIMEOUT"},
		{"timers-slow-commit", "TWONODE_TIMERS_SLOW_COMMIT"},
		{"timers-slow-for", "TWONODE_TIMERS_SLOW_FOR"},
		{"api-peer-port", "TWONODE_API_PEER_PORT"},
		{"api-socket", "TWONODE_API_SOCKET"},
		{"api-metrics", "TWONODE_API_METRICS"},
		{"log-level", "TWONODE_LOG_LEVEL"},
		{"log-format", "TWONODE_LOG_FORMAT"},
		{"witness-endpoints", "TWONODE_WITNESS_ENDPOINTS"},
		{"witness-ca-file", "TWONODE_WITNESS_CA_FILE"},
		{"witness-cert-file", "TWONODE_WITNESS_CERT_FILE"},
		{"witness-key-file", "TWONODE_WITNESS_KEY_FILE"},
		{"witness-prefix", "TWONODE_WITNESS_PREFIX"},
		{"witness-dial-timeout", "TWONODE_WITNESS_DIAL_TIMEOUT"},
		{"witness-request-timeout", "TWONODE_WITNESS_REQUEST_TIMEOUT"},
		{"witness-lease-ttl", "TWONODE_WITNESS_LEASE_TTL"},
		{"witness-unreachable", "TWONODE_WITNESS_UNREACHABLE"},
		{"witness-watchdog", "TWONODE_WITNESS_WATCHDOG"},
		{"witness-watchdog-timeout", "TWONODE_WITNESS_WATCHDOG_TIMEOUT"},
		{"vip-address", "TWONODE_VIP_ADDRESS"},
		{"vip-interface", "TWONODE_VIP_INTERFACE"},
		{"archives-keep", "TWONODE_ARCHIVES_KEEP"},
		{"archives-max-age", "TWONODE_ARCHIVES_MAX_AGE"},
		{"test-clock-offset", "TWONODE_TEST_CLOCK_OFFSET"},
	}
	flags := Flags()
	if len(flags) != len(want) {
		t.Fatalf("%d flags, want %d", len(flags), len(want))
	}
	for i, f := range flags {
		names := f.Names()
		var env []string
		var usage string
		switch f := f.(type) {
		case *cli.StringFlag:
			env, usage = f.EnvVars, f.Usage
		case *cli.IntFlag:
			env, usage = f.EnvVars, f.Usage
		case *cli.DurationFlag:
			env, usage = f.EnvVars, f.Usage
		default:
			t.Fatalf("flag %v has type %T", names, f)
		}
		if len(names) != 1 || names[0] != want[i][0] || len(env) != 1 || env[0] != want[i][1] {
			t.Errorf("flag %d: %v %v, want %v", i, names, env, want[i])
		}
		if usage == "" {
			t.Errorf("flag %v has no usage", names)
		}
	}
	if len(leaves())+1 != len(flags) {
		t.Errorf("not one flag per leaf")
	}
}

// run runs the agent command of a minimal app, as bootstrap/cli does.
func run(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	var got *Config
	app := &cli.App{
		Name:      "twonode",
		Writer:    io.Discard,
		ErrWriter: io.Discard,
		Commands: []*cli.Command{{
			Name:  "agent",
			Flags: Flags(),
			Action: func(c *cli.Context) error {
				cfg, err := FromCLI(c)
				got = cfg
				return err
			},
		}},
	}
	err := app.Run(append([]string{"twonode", "agent"}, args...))
	return got, err
}

// noDefaultFile points --config's default at a file that does not exist.
func noDefaultFile(t *testing.T) string {
	t.Helper()
	old := defaultConfigPath
	defaultConfigPath = filepath.Join(t.TempDir(), "config.yaml")
	t.Cleanup(func() { defaultConfigPath = old })
	return defaultConfigPath
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFromCLIPrecedence: flag > environment > file > default.
func TestFromCLIPrecedence(t *testing.T) {
	file := writeConfig(t, minimal+"timers: {probe_interval: 700ms}\nlog: {level: warn}\n")
	get := func(t *testing.T, args ...string) *Config {
		t.Helper()
		c, err := run(t, append([]string{"--config", file}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("default", func(t *testing.T) {
		if c := get(t); c.Timers.ProbeTimeout != 400*time.Millisecond {
			t.Errorf("probe_timeout = %v, want the default", c.Timers.ProbeTimeout)
		}
	})
	t.Run("file beats default", func(t *testing.T) {
		if c := get(t); c.Timers.ProbeInterval != 700*time.Millisecond || c.Log.Level != "warn" {
			t.Errorf("got %v %s, want the file's", c.Timers.ProbeInterval, c.Log.Level)
		}
	})
	t.Run("environment beats file", func(t *testing.T) {
		t.Setenv("TWONODE_TIMERS_PROBE_INTERVAL", "800ms")
		t.Setenv("TWONODE_LOG_LEVEL", "debug")
		t.Setenv("TWONODE_NODE_NAME", "c")
		t.Setenv("TWONODE_API_PEER_PORT", "9000")
		c := get(t)
		if c.Timers.ProbeInterval != 800*time.Millisecond || c.Log.Level != "debug" || c.Node.Name != "c" || c.API.PeerPort != 9000 {
			t.Errorf("got %v %s %s %d, want the environment's", c.Timers.ProbeInterval, c.Log.Level, c.Node.Name, c.API.PeerPort)
		}
	})
	t.Run("flag beats environment", func(t *testing.T) {
		t.Setenv("TWONODE_TIMERS_PROBE_INTERVAL", "800ms")
		c := get(t, "--timers-probe-interval", "900ms", "--log-level=error", "--postgres-port", "5433")
		if c.Timers.ProbeInterval != 900*time.Millisecond || c.Log.Level != "error" || c.Postgres.Port != 5433 {
			t.Errorf("got %v %s %d, want the flags'", c.Timers.ProbeInterval, c.Log.Level, c.Postgres.Port)
		}
	})
	t.Run("empty environment value sets empty", func(t *testing.T) {
		t.Setenv("TWONODE_API_METRICS", "")
		if c := get(t); c.API.Metrics != "" {
			t.Errorf("metrics = %q, want disabled", c.API.Metrics)
		}
	})
	t.Run("TWONODE_CONFIG names the file", func(t *testing.T) {
		t.Setenv("TWONODE_CONFIG", file)
		c, err := run(t)
		if err != nil {
			t.Fatal(err)
		}
		if c.Timers.ProbeInterval != 700*time.Millisecond {
			t.Errorf("probe_interval = %v, want the file's", c.Timers.ProbeInterval)
		}
	})
}

func TestFromCLIWithoutFile(t *testing.T) {
	path := noDefaultFile(t)
	required := []string{"--node-name", "a", "--node-address", "10.0.0.1", "--peer-name", "b", "--peer-address", "10.0.0.2", "--secret-file", "/etc/twonode/secret"}

	c, err := run(t, required...)
	if err != nil {
		t.Fatalf("defaults plus flags: %v", err)
	}
	if want := valid(); *c != want {
		t.Errorf("got %+v\nwant %+v", *c, want)
	}

	c, err = run(t, append(required, "--run-dir", "/run/other")...)
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Socket != "/run/other/agent.sock" {
		t.Errorf("socket = %q, want it to follow --run-dir", c.API.Socket)
	}

	_, err = run(t, "--node-name", "a")
	want := "config file " + path + " does not exist, so flags must give node, peer and secret_file\n" +
		"node.address: required\npeer.name: required\npeer.address: required\nsecret_file: required: the path of a file holding the cluster secret"
	if err == nil || err.Error() != want {
		t.Errorf("no file, too few flags:\n got %v\nwant %q", err, want)
	}

	// A file named explicitly must exist: a typo must not silently drop it.
	missing := filepath.Join(t.TempDir(), "typo.yaml")
	_, err = run(t, append(required, "--config", missing)...)
	if err == nil || err.Error() != "config file: open "+missing+": no such file or directory" {
		t.Errorf("explicit missing file: %v", err)
	}
	// --config "" is flags only.
	if _, err := run(t, append(required, "--config", "")...); err != nil {
		t.Errorf("--config \"\": %v", err)
	}
}

func TestFromCLISocket(t *testing.T) {
	// The file does not set the socket: --run-dir moves it.
	file := writeConfig(t, minimal)
	c, err := run(t, "--config", file, "--run-dir", "/run/x")
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Socket != "/run/x/agent.sock" {
		t.Errorf("socket = %q", c.API.Socket)
	}
	// The file sets it: it stays.
	file = writeConfig(t, minimal+"api: {socket: /run/mine.sock}\n")
	if c, err = run(t, "--config", file, "--run-dir", "/run/x"); err != nil {
		t.Fatal(err)
	}
	if c.API.Socket != "/run/mine.sock" {
		t.Errorf("socket = %q", c.API.Socket)
	}
}

func TestFromCLIErrors(t *testing.T) {
	file := writeConfig(t, minimal+"timers: {probe_intervall: 1s}\n")
	_, err := run(t, "--config", file)
	if want := "config file " + file + ":\ntimers.probe_intervall (line 5): unknown key"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("bad file:\n got %v\nwant prefix %q", err, want)
	}

	// Flags are validated like the file, in the same words.
	file = writeConfig(t, minimal)
	_, err = run(t, "--config", file, "--peer-address", "10.0.0.1", "--timers-failure-threshold", "1")
	if want := "peer.address: must differ from node.address (both 10.0.0.1)\ntimers.failure_threshold: must be between 2 and 100 (got 1)"; err == nil || err.Error() != want {
		t.Errorf("bad flags:\n got %v\nwant %q", err, want)
	}

	t.Setenv("TWONODE_TIMERS_BOOT_GRACE", "soon")
	if _, err := run(t, "--config", file); err == nil || !strings.Contains(err.Error(), "TWONODE_TIMERS_BOOT_GRACE") {
		t.Errorf("bad environment value: %v", err)
	}
}
