package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goodSecret is 64 bytes; its marker must never show up in an error.
const (
	marker     = "Zq7-SECRET-MARKER-"
	goodSecret = marker + "0123456789abcdef0123456789abcdef0123456789abcd"
)

func writeSecret(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is subject to the umask
		t.Fatal(err)
	}
	return path
}

func readSecret(path string) ([]byte, error) {
	c := valid()
	c.SecretFile = path
	return c.ReadSecret()
}

func TestReadSecret(t *testing.T) {
	for _, tt := range []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"mode 0600, trailing newline", goodSecret + "\n", 0o600},
		{"mode 0400, surrounding whitespace", " \t" + goodSecret + "\r\n\n", 0o400},
		{"exactly 32 bytes", goodSecret[:32], 0o600},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readSecret(writeSecret(t, tt.content, tt.mode))
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSpace(tt.content); string(got) != want {
				t.Errorf("ReadSecret = %q, want %q", got, want)
			}
		})
	}

	// Kubernetes mounts secrets as symlinks: the target's mode counts.
	target := writeSecret(t, goodSecret, 0o600)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := readSecret(link); err != nil {
		t.Errorf("a symlink to a good secret file: %v", err)
	}
}

func TestReadSecretRefuses(t *testing.T) {
	for _, tt := range []struct {
		name    string
		content string
		mode    os.FileMode
		want    string // %s is the path
	}{
		{"mode 0644", goodSecret, 0o644,
			"secret_file: must not grant group or others any access, or other users could impersonate the peer: run chmod 600 %s (got mode 0644)"},
		{"mode 0640", goodSecret, 0o640,
			"secret_file: must not grant group or others any access, or other users could impersonate the peer: run chmod 600 %s (got mode 0640)"},
		{"mode 0602", goodSecret, 0o602,
			"secret_file: must not grant group or others any access, or other users could impersonate the peer: run chmod 600 %s (got mode 0602)"},
		{"short", marker, 0o600,
			"secret_file: the secret is too short: it needs at least 32 bytes after trimming whitespace (got 18); generate one with `openssl rand -hex 32 > %s`"},
		{"31 bytes padded with whitespace", "  " + goodSecret[:31] + "      \n", 0o600,
			"secret_file: the secret is too short: it needs at least 32 bytes after trimming whitespace (got 31); generate one with `openssl rand -hex 32 > %s`"},
		{"empty", "", 0o600,
			"secret_file: the secret is too short: it needs at least 32 bytes after trimming whitespace (got 0); generate one with `openssl rand -hex 32 > %s`"},
		{"too large", strings.Repeat(goodSecret, 2000), 0o600,
			"secret_file: too large to be a secret (over 65536 bytes): %s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeSecret(t, tt.content, tt.mode)
			got, err := readSecret(path)
			if err == nil {
				t.Fatalf("ReadSecret accepted it: %q", got)
			}
			if want := strings.ReplaceAll(tt.want, "%s", path); err.Error() != want {
				t.Errorf("ReadSecret:\n got %q\nwant %q", err, want)
			}
		})
	}

	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := readSecret(dir); err == nil || !strings.HasPrefix(err.Error(), "secret_file: must be a regular file (got "+dir) {
		t.Errorf("a directory: %v", err)
	}
	missing := filepath.Join(dir, "nope")
	if _, err := readSecret(missing); err == nil || err.Error() != "secret_file: open "+missing+": no such file or directory" {
		t.Errorf("a missing file: %v", err)
	}
	if _, err := readSecret(""); err == nil || err.Error() != "secret_file: required: the path of a file holding the cluster secret" {
		t.Errorf("no secret file: %v", err)
	}
}

func TestReadSecretOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the owner check applies when the agent runs as root")
	}
	path := writeSecret(t, goodSecret, 0o600)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := readSecret(path)
	if want := "secret_file: must be owned by root, as the agent runs as root: run chown root " + path + " (got uid 65534)"; err == nil || err.Error() != want {
		t.Errorf("ReadSecret:\n got %v\nwant %q", err, want)
	}
}

// TestSecretNeverInErrors: whatever goes wrong, and wherever the secret
// ends up by mistake, no error message carries it.
func TestSecretNeverInErrors(t *testing.T) {
	var errs []error
	collect := func(_ any, err error) {
		if err == nil {
			t.Errorf("expected an error (case %d)", len(errs))
		}
		errs = append(errs, err)
	}
	collect(readSecret(writeSecret(t, goodSecret, 0o644)))
	collect(readSecret(writeSecret(t, goodSecret, 0o666)))
	collect(readSecret(writeSecret(t, marker, 0o600)))
	collect(readSecret(writeSecret(t, marker+"\n"+marker, 0o604)))
	collect(readSecret(writeSecret(t, strings.Repeat(goodSecret, 2000), 0o600)))

	// The secret written where its path belongs.
	c := valid()
	c.SecretFile = goodSecret
	errs = append(errs, c.Validate())
	collect(Parse([]byte(minimal + "secret_file: " + goodSecret + "\n")))
	collect(Parse([]byte(strings.Replace(minimal, "secret_file: /etc/twonode/secret", "secret_file: "+goodSecret, 1))))
	// The config flag pointed at the secret file.
	collect(Load(writeSecret(t, goodSecret+"\n", 0o600)))
	collect(Parse([]byte(goodSecret)))

	for i, err := range errs {
		if err == nil {
			continue
		}
		if msg := err.Error(); msg == "" || strings.Contains(msg, marker) || strings.Contains(msg, goodSecret[len(marker):]) {
			t.Errorf("case %d: the error shows the secret: %q", i, msg)
		}
	}
}
