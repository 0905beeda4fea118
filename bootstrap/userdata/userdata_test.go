package userdata_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

func docs(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "user-data", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The two documented user-data files are valid and describe ONE pair:
// node and peer swapped, everything the two nodes must agree on equal.
func TestDocumentedUserDataFormAPair(t *testing.T) {
	one, err := userdata.Parse(docs(t, "node1.yaml"))
	if err != nil {
		t.Fatalf("node1.yaml: %v", err)
	}
	two, err := userdata.Parse(docs(t, "node2.yaml"))
	if err != nil {
		t.Fatalf("node2.yaml: %v", err)
	}
	a, b := one.Block, two.Block
	if one.State != userdata.Enabled || two.State != userdata.Enabled {
		t.Fatalf("states %v %v", one.State, two.State)
	}
	if a.Node != b.Peer || a.Peer != b.Node {
		t.Errorf("node/peer not swapped: %+v %+v / %+v %+v", a.Node, a.Peer, b.Node, b.Peer)
	}
	if a.Secret != b.Secret || a.SecretFile != b.SecretFile || a.PreferredLeader != b.PreferredLeader ||
		a.Timers != b.Timers || a.Postgres != b.Postgres || a.API != b.API || a.Log != b.Log {
		t.Errorf("the nodes disagree:\n%+v\n%+v", *a, *b)
	}
	if one.Cluster.ClusterToken != two.Cluster.ClusterToken || !reflect.DeepEqual(one.Cluster.ProviderOptions, two.Cluster.ProviderOptions) || one.Cluster.Role != two.Cluster.Role {
		t.Errorf("the k3s settings differ:\n%+v\n%+v", *one.Cluster, *two.Cluster)
	}
	if len(one.Warnings) != 1 || !strings.HasPrefix(one.Warnings[0], "twonode.secret: this is the example secret") {
		t.Errorf("warnings %q", one.Warnings)
	}
}

// Keys left out take the agent's defaults; the probe timeout follows the
// interval; the appliance's settings are imposed.
func TestDefaultsAreTheAgents(t *testing.T) {
	res, err := userdata.Parse([]byte(`twonode:
  enabled: true
  node: {name: a, address: "fd00::1"}
  peer: {name: b, address: "fd00::2"}
  secret_file: /oem/twonode/secret
  timers: {probe_interval: 250ms, failure_threshold: 8, slow_commit: 500ms, slow_for: 5s}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.Timers.SlowCommit, want.Timers.SlowFor = 500*time.Millisecond, 5*time.Second
	want.Node = config.Host{Name: "a", Address: "fd00::1"}
	want.Peer = config.Host{Name: "b", Address: "fd00::2"}
	want.SecretFile = userdata.AgentSecretPath
	want.Postgres.BinDir = userdata.PostgresBinDir
	want.Postgres.Supervisor, want.Kine.Supervisor = "systemd", "systemd"
	want.Timers.ProbeInterval, want.Timers.ProbeTimeout, want.Timers.FailureThreshold = 250*time.Millisecond, 200*time.Millisecond, 8
	if got := res.Block.AgentConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("AgentConfig\n%+v\nwant\n%+v", got, want)
	}
	if res.Block.SecretFile != "/oem/twonode/secret" || res.Block.Secret != "" {
		t.Errorf("secret fields %q %q", res.Block.SecretFile, string(res.Block.Secret))
	}
	if len(res.Warnings) != 1 || !strings.HasPrefix(res.Warnings[0], "cluster: absent") {
		t.Errorf("warnings %q", res.Warnings)
	}
}

func TestStates(t *testing.T) {
	for in, want := range map[string]userdata.State{
		"":                                    userdata.Absent,
		"#cloud-config\nk3s: {enabled: true}": userdata.Absent,
		"[1, 2]":                              userdata.Absent,
		"twonode: {enabled: false}":           userdata.Disabled,
		"twonode: {enabled: false, node: 1}":  userdata.Disabled,
	} {
		res, err := userdata.Parse([]byte(in))
		if err != nil || res.State != want || res.Block != nil {
			t.Errorf("%q: %v %v %v", in, res.State, res.Block, err)
		}
	}
	if userdata.Enabled.String() != "enabled" || userdata.State(9).String() != "State(9)" {
		t.Errorf("State.String")
	}
}

// The inline secret prints as [redacted] whatever prints it.
func TestSecretNeverPrinted(t *testing.T) {
	res, err := userdata.Parse(docs(t, "node1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b := res.Block
	j, _ := json.Marshal(b)
	y, _ := yaml.Marshal(b)
	for _, s := range []string{fmt.Sprint(b), fmt.Sprintf("%v %+v %#v %s %q", *b, *b, *b, b.Secret, b.Secret), string(j), string(y)} {
		if strings.Contains(s, userdata.ExampleSecret) {
			t.Errorf("the secret is printed: %s", s)
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("no [redacted] in %s", s)
		}
	}
	if string(b.Secret.Reveal()) != userdata.ExampleSecret {
		t.Errorf("Reveal")
	}
}

// docs/first-boot.md shows the two user-data files exactly as they are.
func TestFirstBootDocShowsTheFiles(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "first-boot.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"node1.yaml", "node2.yaml"} {
		block := "### " + name + "\n\n```yaml\n" + string(docs(t, name)) + "```\n"
		if !strings.Contains(string(doc), block) {
			t.Errorf("docs/first-boot.md does not show docs/user-data/%s as it is", name)
		}
	}
}
