package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mudler/go-pluggable"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/plugin/yiptest"
)

// A cloud-config without twonode: (a normal cluster on the same image):
// not applicable, nothing written, nothing removed.
func TestBootWithoutBlockDoesNothing(t *testing.T) {
	plain := "#cloud-config\ncluster:\n  cluster_token: t\n  role: init\n"
	for name, cc := range map[string]string{
		"no twonode key":         plain,
		"empty cloud-config":     "",
		"only a header":          "#cloud-config\n",
		"cloud-config is a list": "- a\n- b\n",
	} {
		t.Run(name, func(t *testing.T) {
			tp := newTestPlugin(t)
			resp, _ := tp.run(t, "agent.boot", bootEvent(t, cc))
			want := pluggable.EventResponse{State: "non-applicable", Data: `{"state":"absent"}`,
				Logs: "no twonode: block in the cloud-config: this node is not one of a two-node pair; nothing to do"}
			if resp != want {
				t.Errorf("answer %+v\nwant %+v", resp, want)
			}
			if files := tp.files(t); len(files) != 0 {
				t.Errorf("files written: %v", files)
			}
		})
	}
	t.Run("stages of an earlier boot", func(t *testing.T) {
		tp := newTestPlugin(t)
		tp.run(t, "agent.boot", bootEvent(t, base))
		before := tp.files(t)
		tp.report = nil
		resp, _ := tp.run(t, "agent.boot", bootEvent(t, plain))
		if resp.State != "non-applicable" || !strings.Contains(resp.Logs, "still configures twonode: set twonode.enabled: false to remove it") {
			t.Errorf("answer %+v", resp)
		}
		if after := tp.files(t); !reflect.DeepEqual(after, before) {
			t.Errorf("files changed: %v", after)
		}
		if len(tp.report) != 2 || !tp.report[1].Problem {
			t.Errorf("report %+v: want the note as a problem", tp.report)
		}
	})
}

// enabled: false: not applicable, nothing else read (its mistakes
// included), and the files of an earlier enabled boot removed.
func TestBootDisabled(t *testing.T) {
	disabled := strings.Replace(base, "  enabled: true\n", "  enabled: false\n", 1)
	t.Run("fresh", func(t *testing.T) {
		tp := newTestPlugin(t)
		resp, _ := tp.run(t, "agent.boot", bootEvent(t, disabled))
		want := pluggable.EventResponse{State: "non-applicable", Data: `{"state":"disabled"}`, Logs: "twonode.enabled is false: nothing to do"}
		if resp != want {
			t.Errorf("answer %+v\nwant %+v", resp, want)
		}
		if files := tp.files(t); len(files) != 0 {
			t.Errorf("files written: %v", files)
		}
	})
	t.Run("the rest is not read", func(t *testing.T) {
		tp := newTestPlugin(t)
		resp, _ := tp.run(t, "agent.boot", bootEvent(t, "twonode:\n  enabled: false\n  node: 5\n  timers: {probe_interval: soon}\n"))
		if resp.State != "non-applicable" || resp.Error != "" {
			t.Errorf("answer %+v", resp)
		}
	})
	t.Run("after an enabled boot", func(t *testing.T) {
		tp := newTestPlugin(t)
		tp.run(t, "agent.boot", bootEvent(t, base))
		resp, _ := tp.run(t, "agent.boot", bootEvent(t, disabled))
		wantLogs := "twonode.enabled is false: nothing to do\nremoved " + tp.StageFile + ", written while twonode was enabled\nremoved " + tp.SecretStash + ", written while twonode was enabled"
		if resp.State != "non-applicable" || resp.Logs != wantLogs {
			t.Errorf("answer %+v\nwant logs %q", resp, wantLogs)
		}
		if files := tp.files(t); len(files) != 0 {
			t.Errorf("files left: %v", files)
		}
	})
}

// Every other event gets the empty answer provider-k3s gives, and the
// plugin writes nothing.
func TestOtherEvents(t *testing.T) {
	for _, name := range []string{"agent.install", "agent.reset.before", "agent.bootstrap", "init.provider.info", "some.future.event"} {
		tp := newTestPlugin(t)
		ev, _ := json.Marshal(pluggable.Event{Name: pluggable.EventType(name), Data: `{"config":"twonode: {enabled: true}"}`})
		resp, raw := tp.run(t, name, ev)
		if resp != (pluggable.EventResponse{}) || raw != `{"state":"","data":"","error":"","log":""}` {
			t.Errorf("%s: answer %s", name, raw)
		}
		if len(tp.files(t)) != 0 || len(tp.report) != 0 {
			t.Errorf("%s: files or report", name)
		}
	}
}

// Kairos hands a large event's data in a file (go-pluggable's Event.File).
func TestBootEventDataInAFile(t *testing.T) {
	tp := newTestPlugin(t)
	data, _ := json.Marshal(map[string]string{"config": base})
	file := filepath.Join(t.TempDir(), "pluggable123")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ev, _ := json.Marshal(pluggable.Event{Name: "agent.boot", File: file})
	if resp, _ := tp.run(t, "agent.boot", ev); resp.State != "success" {
		t.Errorf("answer %+v", resp)
	}
}

// Input that is not an event still gets a JSON answer saying so.
func TestBootMalformedInput(t *testing.T) {
	for name, c := range map[string]struct{ in, err string }{
		"not JSON":         {"cloud-config, not JSON", "the event on stdin is not JSON: invalid character 'c' looking for beginning of value"},
		"data not payload": {`{"name":"agent.boot","data":"[1]"}`, "the agent.boot event's data is not the expected JSON ({\"config\": ...}): json: cannot unmarshal array into Go value of type bus.EventPayload"},
		"missing file":     {`{"name":"agent.boot","file":"/nonexistent/pluggable"}`, "the event's data file: open /nonexistent/pluggable: no such file or directory"},
		"config not YAML":  {`{"name":"agent.boot","data":"{\"config\":\"twonode: [\"}"}`, "the twonode: block is invalid (1 problem); nothing was changed on this node:\nthe cloud-config is not valid YAML: line 1: did not find expected node content"},
	} {
		t.Run(name, func(t *testing.T) {
			tp := newTestPlugin(t)
			resp, _ := tp.run(t, "agent.boot", []byte(c.in))
			if resp.State != "error" || resp.Error != c.err {
				t.Errorf("answer %+v\nwant error %q", resp, c.err)
			}
			if len(tp.files(t)) != 0 {
				t.Errorf("files written")
			}
		})
	}
}

// yip renders file contents as Go templates: a value with {{ in it (here
// a metrics host, which the config accepts) must reach the file unchanged.
func TestRenderedContentSurvivesYipTemplating(t *testing.T) {
	cc := strings.Replace(base, "  timers:\n", "  api: {metrics: \"{{.Values.Random}}:9641\"}\n  timers:\n", 1)
	tp := newTestPlugin(t)
	if resp, _ := tp.run(t, "agent.boot", bootEvent(t, cc)); resp.State != "success" {
		t.Fatalf("answer %+v", resp)
	}
	m := booted(t, tp, nil)
	got, err := config.Parse([]byte(m.Tree(t, ConfigFile)[ConfigFile].Content))
	if err != nil {
		t.Fatal(err)
	}
	if got.API.Metrics != "{{.Values.Random}}:9641" {
		t.Errorf("metrics %q after yip", got.API.Metrics)
	}
}

// The secret_file form: the stages copy the named file; no stash, and a
// stash left by an earlier inline secret goes.
func TestBootWithSecretFile(t *testing.T) {
	tp := newTestPlugin(t)
	tp.run(t, "agent.boot", bootEvent(t, base)) // inline first: a stash
	cc := strings.Replace(base, "  secret: "+testSecret+"\n", "  secret_file: /oem/twonode/secret\n", 1)
	if resp, _ := tp.run(t, "agent.boot", bootEvent(t, cc)); resp.State != "success" {
		t.Fatalf("answer %+v", resp)
	}
	if _, err := os.Stat(tp.SecretStash); !os.IsNotExist(err) {
		t.Errorf("the stash of the inline secret is still there: %v", err)
	}
	m := booted(t, tp, map[string]string{"/oem/twonode/secret": testSecret + "\n"})
	if got := m.Tree(t, "/etc/twonode/secret")["/etc/twonode/secret"]; got != (yiptest.Entry{Mode: 0o600, Content: testSecret + "\n"}) {
		t.Errorf("secret %v", got)
	}
	if want := "install -m 0600 -o root -g root /oem/twonode/secret /etc/twonode/secret"; m.Console.Commands[0] != want {
		t.Errorf("commands %q", m.Console.Commands)
	}
}
