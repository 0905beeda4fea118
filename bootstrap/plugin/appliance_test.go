package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

// The configuration the stages write says what the image's agent unit
// imposes through TWONODE_ variables (overlay/, from the image build): the
// two must not drift apart. The unit also waits for the configuration
// file the stages write, and the other two units exist under the names the
// configuration and the stages use.
func TestConfigMatchesTheImage(t *testing.T) {
	units := filepath.Join("..", "..", "overlay", "etc", "systemd", "system")
	agent, err := os.ReadFile(filepath.Join(units, AgentUnit))
	if err != nil {
		t.Skipf("no agent unit in the overlay: %v", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(agent), "\n") {
		v, ok := strings.CutPrefix(line, "Environment=")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(v) {
			k, val, _ := strings.Cut(kv, "=")
			env[k] = val
		}
	}
	res, err := userdata.Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	c := res.Block.AgentConfig()
	for k, want := range map[string]string{
		"TWONODE_POSTGRES_SUPERVISOR": c.Postgres.Supervisor,
		"TWONODE_KINE_SUPERVISOR":     c.Kine.Supervisor,
		"TWONODE_KINE_UNIT":           c.Kine.Unit,
		"TWONODE_KINE_BINARY":         c.Kine.Binary,
		"TWONODE_POSTGRES_BIN_DIR":    c.Postgres.BinDir,
		"TWONODE_DATA_DIR":            c.DataDir,
		"TWONODE_RUN_DIR":             c.RunDir,
	} {
		if got, ok := env[k]; ok && got != want {
			t.Errorf("%s: the unit sets %s=%s, the rendered configuration says %q", AgentUnit, k, got, want)
		}
	}
	for _, want := range []string{"ConditionPathExists=" + ConfigFile, "--config " + ConfigFile, AgentBinary + " agent"} {
		if !strings.Contains(string(agent), want) {
			t.Errorf("%s: no %q", AgentUnit, want)
		}
	}
	for _, u := range []string{KineUnit, PostgresUnit} {
		if _, err := os.Stat(filepath.Join(units, u)); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	if c.Kine.Unit != KineUnit || c.DataDir != DataDir || config.Default().API.Socket != AgentSocket {
		t.Errorf("the agent's defaults moved: kine unit %s, data dir %s, socket %s", c.Kine.Unit, c.DataDir, config.Default().API.Socket)
	}
	if got := "http://" + c.Kine.Listen; got != userdata.K3sDatastoreEndpoint {
		t.Errorf("Kine listens on %s, k3s is told %s", got, userdata.K3sDatastoreEndpoint)
	}
}
