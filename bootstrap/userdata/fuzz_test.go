package userdata_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mudler/yip/pkg/schema"
	"gopkg.in/yaml.v3"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/plugin"
	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

// FuzzUserData: Parse never panics; what it rejects it rejects with a
// message that never holds the secret or the witness's key; what it
// accepts as enabled renders to stages yip loads, which hold neither, and
// whose agent configuration config.Parse reads back to exactly the
// block's. Seeds: testdata/fuzz/FuzzUserData, plus the documented
// user-data files.
func FuzzUserData(f *testing.F) {
	f.Add(docs(f, "node1.yaml"))
	f.Add(docs(f, "node2.yaml"))
	f.Add(docs(f, "node1-witness.yaml"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := userdata.Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("rejected with an empty error: %q", data)
			}
			if !reflect.DeepEqual(res, userdata.Result{}) {
				t.Fatalf("a result returned with an error: %+v", res)
			}
			for _, s := range secretsOf(data) {
				if len(s) >= 12 && strings.Count(string(data), s) == 1 && strings.Contains(err.Error(), s) {
					t.Fatalf("the secret %q is in the error: %v", s, err)
				}
			}
			return
		}
		if res.State != userdata.Enabled {
			if res.Block != nil || res.Cluster != nil {
				t.Fatalf("%v with a block or a cluster", res.State)
			}
			return
		}
		want := res.Block.AgentConfig()
		if err := want.Validate(); err != nil {
			t.Fatalf("accepted a block whose agent configuration is invalid: %v\n%q", err, data)
		}
		content, err := plugin.StageFileContent(res.Block)
		if err != nil {
			t.Fatalf("rendering: %v", err)
		}
		for _, s := range []userdata.Secret{res.Block.Secret, res.Block.Witness.Key} {
			if s != "" && strings.Contains(string(content), strings.TrimSpace(string(s.Reveal()))) {
				t.Fatalf("a secret is in the stages:\n%s", content)
			}
		}
		y, err := schema.Load(string(content), nil, nil, nil)
		if err != nil {
			t.Fatalf("yip cannot load the stages: %v\n%s", err, content)
		}
		for _, step := range y.Stages[plugin.StageName] {
			for _, f := range step.Files {
				if f.Path != plugin.ConfigFile {
					continue // the witness's certificates
				}
				got, err := config.Parse([]byte(strings.ReplaceAll(f.Content, `{{"{{"}}`, "{{")))
				if err != nil {
					t.Fatalf("config.Parse refuses the rendered configuration: %v\n%s", err, f.Content)
				}
				if got.Timers.BootGrace == plugin.RejoinBootGrace {
					got.Timers.BootGrace = want.Timers.BootGrace // the reset variant
				}
				if !reflect.DeepEqual(*got, want) {
					t.Fatalf("the rendered configuration reads back as\n%+v\nwant\n%+v", *got, want)
				}
			}
		}
	})
}

// secretsOf digs twonode.secret and twonode.witness.key out of a
// cloud-config, those that are strings.
func secretsOf(data []byte) []string {
	var doc struct {
		Twonode struct {
			Secret  any `yaml:"secret"`
			Witness any `yaml:"witness"`
		} `yaml:"twonode"`
	}
	if yaml.Unmarshal(data, &doc) != nil {
		return nil
	}
	witness, _ := doc.Twonode.Witness.(map[string]any)
	var out []string
	for _, v := range []any{doc.Twonode.Secret, witness["key"]} {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
