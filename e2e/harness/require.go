package harness

import (
	"os"
	"os/exec"
	"testing"
)

// toolPackages maps tools to the Debian package that provides them, for the
// failure message.
var toolPackages = map[string]string{
	"ip":      "iproute2",
	"nft":     "nftables",
	"ping":    "iputils-ping",
	"psql":    "postgresql-client",
	"nsenter": "util-linux",
}

// RequireRoot fails (not skips) the test when not running as root: the
// harness needs network namespaces, and a skipped e2e suite would look green.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("e2e: must run as root (network namespaces, nftables); euid is %d", os.Geteuid())
	}
}

// RequireTools fails the test when any of the named tools is not on PATH.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if p, ok := toolPackages[tool]; ok {
				tool += " (apt-get install " + p + ")"
			}
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("e2e: missing tools: %v", missing)
	}
}
