package plugin

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/twonode-edge/twonode/bootstrap/plugin/yiptest"
	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

// witnessFiles is a witness section whose TLS material is in files the
// site provisions.
const witnessFiles = `  witness:
    endpoints: [https://10.0.0.21:2379, https://10.0.0.22:2379]
    prefix: /twonode/site-0042/
    ca_file: /oem/twonode/witness-ca.pem
    cert_file: /oem/twonode/witness.crt
    key_file: /oem/twonode/witness.key
`

// withBase is base with extra keys after preferred_leader.
func withBase(t *testing.T, extra string) string {
	t.Helper()
	const at = "  preferred_leader: edge-1\n"
	if !strings.Contains(base, at) {
		t.Fatalf("the base has no %q", at)
	}
	return strings.Replace(base, at, at+extra, 1)
}

// The documented witness example, inline PEMs: the certificates are
// written from the stage, the key is stashed like the secret and copied
// from there, all three 0600 in the agent's 0700 directory, and the
// agent's configuration points at them. The key is in nothing printed:
// not the answer, the report, the stage file, the configuration, yip's
// debug log or a command.
func TestBootWithWitnessInline(t *testing.T) {
	ud := userData(t, "node1-witness.yaml")
	res, err := userdata.Parse([]byte(ud))
	if err != nil {
		t.Fatal(err)
	}
	w := res.Block.Witness
	key := string(w.Key.Reveal())
	keyLines := strings.Split(strings.TrimSpace(key), "\n")
	keyBody := strings.Join(keyLines[1:len(keyLines)-1], "\n")

	tp := newTestPlugin(t)
	resp, raw := tp.run(t, "agent.boot", bootEvent(t, ud))
	if resp.State != "success" {
		t.Fatalf("answer %+v", resp)
	}
	files := tp.files(t)
	if len(files) != 3 {
		t.Errorf("files %v, want the stage file, the secret and the key", reflect.ValueOf(files).MapKeys())
	}
	if got, want := files["cloud-config/twonode.witness.key"], "-rw------- "+key; got != want {
		t.Errorf("key stash %q, want %q", got, want)
	}
	stage := files["cloud-config/twonode.kairos.yaml"]
	golden(t, "node1-witness.kairos.yaml", []byte(strings.TrimPrefix(stage, "-rw------- ")))

	m := booted(t, tp, nil)
	tree := m.Tree(t, "/etc")
	configFile := tree[ConfigFile].Content
	want := map[string]yiptest.Entry{
		"/etc":                        {Mode: 0o755 | os.ModeDir},
		ConfigDir:                     {Mode: 0o700 | os.ModeDir},
		ConfigFile:                    {Mode: 0o600, Content: configFile},
		userdata.AgentSecretPath:      {Mode: 0o600, Content: userdata.ExampleSecret + "\n"},
		userdata.AgentWitnessCAPath:   {Mode: 0o600, Content: w.CA},
		userdata.AgentWitnessCertPath: {Mode: 0o600, Content: w.Cert},
		userdata.AgentWitnessKeyPath:  {Mode: 0o600, Content: key},
	}
	if !reflect.DeepEqual(tree, want) {
		t.Errorf("files after the stages:\n got %v\nwant %v", tree, want)
	}
	golden(t, "node1-witness.config.yaml", []byte(configFile))
	ranAndReadsBack(t, m, res.Block,
		"install -m 0600 -o root -g root "+SecretStash+" "+userdata.AgentSecretPath,
		"install -m 0600 -o root -g root "+WitnessKeyStash+" "+userdata.AgentWitnessKeyPath,
		"systemctl enable "+AgentUnit)
	if !strings.Contains(m.Log.String(), "witness-ca.pem") {
		t.Fatalf("yip's debug log says nothing of the stages: the check below would prove nothing")
	}
	for what, text := range map[string]string{
		"answer": raw, "report": tp.reportText(), "stage file": stage, "configuration": configFile,
		"yip's debug log": m.Log.String(), "commands": strings.Join(m.Console.Commands, "\n"),
	} {
		for _, line := range strings.Split(keyBody, "\n") {
			if strings.Contains(text, line) {
				t.Errorf("the key is in the %s", what)
				break
			}
		}
		if strings.Contains(text, userdata.ExampleSecret) {
			t.Errorf("the secret is in the %s", what)
		}
	}

	t.Run("then key_file: the stash goes", func(t *testing.T) {
		cc := strings.Replace(ud, "    key: |\n      "+strings.Join(keyLines, "\n      ")+"\n", "    key_file: /oem/twonode/witness.key\n", 1)
		if cc == ud {
			t.Fatal("the key was not replaced")
		}
		if resp, _ := tp.run(t, "agent.boot", bootEvent(t, cc)); resp.State != "success" {
			t.Fatalf("answer %+v", resp)
		}
		if _, err := os.Stat(tp.WitnessKeyStash); !os.IsNotExist(err) {
			t.Errorf("the stash of the inline key is still there: %v", err)
		}
	})
	t.Run("then disabled: every file goes", func(t *testing.T) {
		tp.run(t, "agent.boot", bootEvent(t, ud))
		tp.report = nil
		resp, _ := tp.run(t, "agent.boot", bootEvent(t, strings.Replace(ud, "  enabled: true\n", "  enabled: false\n", 1)))
		if resp.State != "non-applicable" || !strings.Contains(resp.Logs, "removed "+tp.WitnessKeyStash) {
			t.Errorf("answer %+v", resp)
		}
		if files := tp.files(t); len(files) != 0 {
			t.Errorf("files left: %v", files)
		}
	})
}

// Settings the stages only carry into the agent's configuration: a
// witness whose files the site provisions (used where they are: nothing
// copied, nothing stashed), and failover: manual.
func TestRenderedWitnessFilesAndFailover(t *testing.T) {
	for _, c := range []struct{ name, extra string }{
		{"witness-files", witnessFiles},
		{"failover-manual", "  failover: manual\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cc := withBase(t, c.extra)
			tp := newTestPlugin(t)
			if resp, _ := tp.run(t, "agent.boot", bootEvent(t, cc)); resp.State != "success" {
				t.Fatalf("answer %+v", resp)
			}
			if _, err := os.Stat(tp.WitnessKeyStash); !os.IsNotExist(err) {
				t.Errorf("a key stash without an inline key: %v", err)
			}
			m := booted(t, tp, nil)
			tree := m.Tree(t, "/etc")
			if len(tree) != 4 {
				t.Errorf("files after the stages: %v, want the directory, the configuration and the secret", tree)
			}
			golden(t, c.name+".config.yaml", []byte(tree[ConfigFile].Content))
			res, err := userdata.Parse([]byte(cc))
			if err != nil {
				t.Fatal(err)
			}
			ranAndReadsBack(t, m, res.Block,
				"install -m 0600 -o root -g root "+SecretStash+" "+userdata.AgentSecretPath,
				"systemctl enable "+AgentUnit)
		})
	}
}
