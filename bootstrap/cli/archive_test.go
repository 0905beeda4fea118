package cli

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/twonode-edge/twonode/bootstrap/archive"
	"github.com/twonode-edge/twonode/bootstrap/config"
)

// `twonode archive show` reads the sealed archives in data_dir/archive
// with the node's secret; with another secret it fails and prints nothing.
func TestArchiveShow(t *testing.T) {
	dir := t.TempDir()
	secretPath, cfgPath := filepath.Join(dir, "secret"), filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(secretPath, []byte(strings.Repeat("k", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	yaml := "node: {name: a, address: 10.1.0.1}\npeer: {name: b, address: 10.1.0.2}\nsecret_file: " + secretPath +
		"\ndata_dir: " + data + "\nrun_dir: " + filepath.Join(dir, "run") + "\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := cfg.ReadSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(data, "archive"), 0o700); err != nil {
		t.Fatal(err)
	}
	const lines = "{\"kind\":\"header\",\"term\":2}\n{\"id\":27,\"name\":\"/registry/configmaps/default/x\"}\n"
	f, err := archive.Create(filepath.Join(data, "archive", "split-term2-1"+archive.Ext), secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, lines); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	out, err := stdoutOf(t, func() error { return App().Run([]string{"twonode", "archive", "show", "--config", cfgPath}) })
	if err != nil || out != lines {
		t.Fatalf("archive show: %q, %v", out, err)
	}

	if err := os.WriteFile(secretPath, []byte(strings.Repeat("x", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = stdoutOf(t, func() error { return App().Run([]string{"twonode", "archive", "show", "--config", cfgPath}) })
	var exit cli.ExitCoder
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || out != "" || !strings.Contains(err.Error(), "cluster secret") {
		t.Fatalf("archive show with another secret: printed %q, %v", out, err)
	}
}

// stdoutOf runs fn and returns what it printed.
func stdoutOf(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	ferr := fn()
	os.Stdout = saved
	w.Close()
	return <-done, ferr
}
