package plugin

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mudler/go-pluggable"
	"github.com/mudler/yip/pkg/schema"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/plugin/yiptest"
	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// userData reads one of the documented user-data files.
func userData(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "user-data", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// bootEvent is the JSON kairos-agent writes on the plugin's stdin for
// agent.boot: an Event whose data is an EventPayload holding the whole
// cloud-config.
func bootEvent(t *testing.T, cloudConfig string) []byte {
	t.Helper()
	data, err := json.Marshal(map[string]string{"config": cloudConfig})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := json.Marshal(pluggable.Event{Name: "agent.boot", Data: string(data)})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// testPlugin is the plugin with its files in a temporary directory and its
// report recorded.
type testPlugin struct {
	*Plugin
	dir    string
	report []Line
}

func newTestPlugin(t *testing.T) *testPlugin {
	dir := t.TempDir()
	tp := &testPlugin{dir: dir}
	tp.Plugin = &Plugin{
		StageFile:       filepath.Join(dir, "cloud-config", "twonode.kairos.yaml"),
		SecretStash:     filepath.Join(dir, "cloud-config", "twonode.secret"),
		WitnessKeyStash: filepath.Join(dir, "cloud-config", "twonode.witness.key"),
		Report:          func(l Line) { tp.report = append(tp.report, l) },
	}
	return tp
}

// run feeds event to the plugin as its stdin and decodes its stdout, which
// must be exactly one JSON EventResponse.
func (tp *testPlugin) run(t *testing.T, name string, event []byte) (pluggable.EventResponse, string) {
	t.Helper()
	var out bytes.Buffer
	if err := tp.Run(name, bytes.NewReader(event), &out); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var resp pluggable.EventResponse
	dec := json.NewDecoder(bytes.NewReader(out.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("the answer is not one JSON EventResponse: %v\n%s", err, out.String())
	}
	if dec.More() {
		t.Fatalf("more than one JSON value on stdout:\n%s", out.String())
	}
	return resp, out.String()
}

func (tp *testPlugin) reportText() string {
	var b strings.Builder
	for _, l := range tp.report {
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}

// files lists the plugin's directory: path (relative) → mode and content.
func (tp *testPlugin) files(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.Walk(tp.dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(tp.dir, p)
		out[rel] = info.Mode().Perm().String() + " " + string(b)
		return nil
	})
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./bootstrap/plugin -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./bootstrap/plugin -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// The happy path, for both documented nodes: the answer, the two files
// and their modes, the report; the secret nowhere but in its 0600 file.
func TestBootWritesStagesForEachNode(t *testing.T) {
	for _, node := range []struct{ file, name, peer string }{
		{"node1.yaml", "edge-1", "edge-2"},
		{"node2.yaml", "edge-2", "edge-1"},
	} {
		t.Run(node.name, func(t *testing.T) {
			tp := newTestPlugin(t)
			resp, raw := tp.run(t, "agent.boot", bootEvent(t, userData(t, node.file)))
			if resp.State != "success" || resp.Error != "" {
				t.Fatalf("answer %+v", resp)
			}
			var data BootData
			if err := json.Unmarshal([]byte(resp.Data), &data); err != nil {
				t.Fatalf("data %q: %v", resp.Data, err)
			}
			if want := (BootData{State: "enabled", File: tp.StageFile, Node: node.name, Peer: node.peer}); data != want {
				t.Errorf("data %+v, want %+v", data, want)
			}
			wantLog := "wrote the stages for node " + node.name
			if !strings.Contains(resp.Logs, wantLog) || !strings.Contains(tp.reportText(), wantLog) {
				t.Errorf("log %q / report %q: want %q in both", resp.Logs, tp.reportText(), wantLog)
			}
			if !strings.Contains(tp.reportText(), "warning: twonode.secret: this is the example secret") {
				t.Errorf("no warning about the example secret in the report:\n%s", tp.reportText())
			}

			files := tp.files(t)
			if len(files) != 2 {
				t.Errorf("files %v, want the stage file and the secret", reflect.ValueOf(files).MapKeys())
			}
			if got, want := files["cloud-config/twonode.secret"], "-rw------- "+userdata.ExampleSecret+"\n"; got != want {
				t.Errorf("secret file %q, want %q", got, want)
			}
			stage, ok := files["cloud-config/twonode.kairos.yaml"]
			if !ok || !strings.HasPrefix(stage, "-rw------- ") {
				t.Fatalf("stage file %q, want mode 0600", stage)
			}
			golden(t, strings.TrimSuffix(node.file, ".yaml")+".kairos.yaml", []byte(strings.TrimPrefix(stage, "-rw------- ")))

			for what, text := range map[string]string{"stdout": raw, "report": tp.reportText(), "stage file": stage} {
				if strings.Contains(text, userdata.ExampleSecret) {
					t.Errorf("the secret is in the %s", what)
				}
			}
		})
	}
}

// The stage file, applied by yip's executor as Kairos would at boot, on a
// test root: exactly the agent's configuration and secret (0600, in a
// 0700 directory) and exactly two commands, for each node. The rendered
// configuration is what config.Parse reads back to the block's.
func TestRenderedStagesApplied(t *testing.T) {
	for _, node := range []string{"node1", "node2"} {
		t.Run(node, func(t *testing.T) {
			tp := newTestPlugin(t)
			if resp, _ := tp.run(t, "agent.boot", bootEvent(t, userData(t, node+".yaml"))); resp.State != "success" {
				t.Fatalf("answer %+v", resp)
			}
			res, err := userdata.Parse([]byte(userData(t, node+".yaml")))
			if err != nil {
				t.Fatal(err)
			}
			m := booted(t, tp, nil)
			tree := m.Tree(t, "/etc", "/oem")
			configFile := tree[ConfigFile].Content
			want := map[string]yiptest.Entry{
				"/etc":                   {Mode: 0o755 | os.ModeDir},
				"/oem":                   {Mode: 0o755 | os.ModeDir},
				ConfigDir:                {Mode: 0o700 | os.ModeDir},
				ConfigFile:               {Mode: 0o600, Content: configFile},
				userdata.AgentSecretPath: {Mode: 0o600, Content: userdata.ExampleSecret + "\n"},
			}
			if !reflect.DeepEqual(tree, want) {
				t.Errorf("files after the stages:\n got %v\nwant %v", tree, want)
			}
			golden(t, node+".config.yaml", []byte(configFile))
			ranAndReadsBack(t, m, res.Block,
				"install -m 0600 -o root -g root "+SecretStash+" "+userdata.AgentSecretPath,
				"systemctl enable "+AgentUnit)
		})
	}
}

// ranAndReadsBack checks the commands the stages ran, and that the agent's
// configuration they wrote reads back, through config.Parse, as the
// block's.
func ranAndReadsBack(t *testing.T, m *yiptest.Machine, b *userdata.Block, commands ...string) {
	t.Helper()
	if !reflect.DeepEqual(m.Console.Commands, commands) {
		t.Errorf("commands:\n got %q\nwant %q", m.Console.Commands, commands)
	}
	got, err := config.Parse([]byte(m.Tree(t, ConfigFile)[ConfigFile].Content))
	if err != nil {
		t.Fatalf("config.Parse refuses the rendered configuration: %v", err)
	}
	if want := b.AgentConfig(); !reflect.DeepEqual(*got, want) {
		t.Errorf("config.Parse reads back\n%+v\nwant\n%+v", *got, want)
	}
}

// booted applies the plugin's stage file to a test root holding it, the
// secrets it stashed, and extra files; it runs the stage as Kairos does.
func booted(t *testing.T, tp *testPlugin, extra map[string]string) *yiptest.Machine {
	t.Helper()
	stage, err := os.ReadFile(tp.StageFile)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"/etc/": "", "/oem/": "", StageFile: string(stage)}
	for real, stashed := range map[string]string{SecretStash: tp.SecretStash, WitnessKeyStash: tp.WitnessKeyStash} {
		if secret, err := os.ReadFile(stashed); err == nil {
			files[real] = string(secret)
		}
	}
	for k, v := range extra {
		files[k] = v
	}
	m := yiptest.NewMachine(t, files)
	m.Run(t, StageName, filepath.Dir(StageFile))
	return m
}

// A node that was reset (the marker on /oem) and is no member yet waits an
// hour for its peer; once a member, the marker goes and the configuration
// is the usual one again.
func TestRenderedStagesAfterAReset(t *testing.T) {
	tp := newTestPlugin(t)
	if resp, _ := tp.run(t, "agent.boot", bootEvent(t, userData(t, "node1.yaml"))); resp.State != "success" {
		t.Fatalf("answer %+v", resp)
	}
	res, _ := userdata.Parse([]byte(userData(t, "node1.yaml")))
	normal := res.Block.AgentConfig()

	t.Run("not a member yet", func(t *testing.T) {
		m := booted(t, tp, map[string]string{RejoinMarker: "reset\n", StateFile: `{"member": false}`})
		tree := m.Tree(t, "/etc", "/oem")
		if _, ok := tree[RejoinMarker]; !ok {
			t.Errorf("the marker was removed before the node joined")
		}
		got, err := config.Parse([]byte(tree[ConfigFile].Content))
		if err != nil {
			t.Fatal(err)
		}
		want := normal
		want.Timers.BootGrace = RejoinBootGrace
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("config %+v\nwant %+v", *got, want)
		}
		if tree[ConfigFile].Mode != 0o600 {
			t.Errorf("config mode %v", tree[ConfigFile].Mode)
		}
		golden(t, "node1.rejoin.config.yaml", []byte(tree[ConfigFile].Content))
	})
	t.Run("member again", func(t *testing.T) {
		m := booted(t, tp, map[string]string{RejoinMarker: "reset\n", StateFile: "{\n  \"member\": true,\n  \"term\": 7\n}\n"})
		tree := m.Tree(t, "/etc", "/oem")
		if _, ok := tree[RejoinMarker]; ok {
			t.Errorf("the marker is still there once the node is a member")
		}
		got, err := config.Parse([]byte(tree[ConfigFile].Content))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, normal) {
			t.Errorf("config %+v\nwant %+v", *got, normal)
		}
		if want := "rm -f " + RejoinMarker; len(m.Console.Commands) == 0 || m.Console.Commands[0] != want {
			t.Errorf("commands %q, want %q first", m.Console.Commands, want)
		}
	})
}

// The stage file reads back, through yip's own loader, as exactly the
// stages Render built: the tidying for human readers changes nothing yip
// sees.
func TestStageFileReadsBackAsRendered(t *testing.T) {
	for _, name := range []string{"node1.yaml", "node1-witness.yaml"} {
		res, err := userdata.Parse([]byte(userData(t, name)))
		if err != nil {
			t.Fatal(err)
		}
		content, err := StageFileContent(res.Block)
		if err != nil {
			t.Fatal(err)
		}
		got, err := schema.Load(string(content), nil, nil, nil)
		if err != nil {
			t.Fatalf("%s: yip cannot load the stage file: %v", name, err)
		}
		want, err := Render(res.Block)
		if err != nil {
			t.Fatal(err)
		}
		got.Source = ""
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("%s: yip reads\n%+v\nwant\n%+v", name, *got, want)
		}
	}
}
