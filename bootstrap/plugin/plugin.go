package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kairos-io/kairos-sdk/bus"
	"github.com/mudler/go-pluggable"

	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

// Plugin answers Kairos bus events.
type Plugin struct {
	// StageFile, SecretStash and WitnessKeyStash are the plugin's files
	// (the constants of the same names; tests point them into a temporary
	// directory).
	StageFile       string
	SecretStash     string
	WitnessKeyStash string
	// Report gets every line the plugin has to say, its problems included:
	// Kairos does not log plugins' answers, so this is where an operator
	// sees them (stderr, and the journal or the kernel log).
	Report func(Line)
}

// Line is one thing the plugin says.
type Line struct {
	Problem bool // an error or a warning, as opposed to information
	Text    string
}

// New returns the plugin with its real paths, reporting to report
// (SystemReporter on a machine).
func New(report func(Line)) *Plugin {
	return &Plugin{StageFile: StageFile, SecretStash: SecretStash, WitnessKeyStash: WitnessKeyStash, Report: report}
}

// BootData is the data of the answer to agent.boot (JSON).
type BootData struct {
	State string `json:"state"`          // absent, disabled or enabled
	File  string `json:"file,omitempty"` // the stage file, when written
	Node  string `json:"node,omitempty"`
	Peer  string `json:"peer,omitempty"`
}

// Run answers one event, as go-pluggable's protocol wants: the event as
// JSON on in (its data in a file when Kairos found it too large), the
// answer as JSON on out. An error is returned only when there is nothing
// to answer or no way to.
func (p *Plugin) Run(name string, in io.Reader, out io.Writer) error {
	var ev pluggable.Event
	raw, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading the event: %w", err)
	}
	var resp pluggable.EventResponse
	switch err := json.Unmarshal(raw, &ev); {
	case err != nil:
		resp = p.fail("the event on stdin is not JSON: %v", err)
	case ev.File != "":
		data, err := os.ReadFile(ev.File)
		if err != nil {
			resp = p.fail("the event's data file: %v", err)
			break
		}
		ev.Data = string(data)
		fallthrough
	default:
		if ev.Name == "" {
			ev.Name = pluggable.EventType(name)
		}
		resp = p.Handle(ev)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encoding the answer: %w", err)
	}
	_, err = out.Write(b)
	return err
}

// Handle answers one event. Every event but agent.boot gets an empty
// answer, as provider-k3s gives.
func (p *Plugin) Handle(ev pluggable.Event) pluggable.EventResponse {
	if ev.Name != bus.EventBoot {
		return pluggable.EventResponse{}
	}
	return p.boot(ev)
}

// boot reads the twonode: block of the cloud-config in the event and
// writes the stages for it; an invalid block changes nothing.
func (p *Plugin) boot(ev pluggable.Event) pluggable.EventResponse {
	var payload bus.EventPayload
	if err := json.Unmarshal([]byte(ev.Data), &payload); err != nil {
		return p.fail("the agent.boot event's data is not the expected JSON ({\"config\": ...}): %v", err)
	}
	res, err := userdata.Parse([]byte(payload.Config))
	if err == nil && res.Cluster != nil {
		err = p.checkClusterPath(res.Cluster.ClusterConfigPath)
	}
	if err != nil {
		return p.invalid(err)
	}

	var logs []string
	say := func(problem bool, format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		logs = append(logs, line)
		p.say(problem, line)
	}
	data := BootData{State: res.State.String()}
	switch res.State {
	case userdata.Absent:
		say(false, "no twonode: block in the cloud-config: this node is not one of a two-node pair; nothing to do")
		if exists(p.StageFile) {
			say(true, "%s, written at an earlier boot, still configures twonode: set twonode.enabled: false to remove it", p.StageFile)
		}
		return p.answer(bus.EventResponseNotApplicable, data, logs)
	case userdata.Disabled:
		say(false, "twonode.enabled is false: nothing to do")
		for _, f := range p.files() {
			switch err := os.Remove(f); {
			case err == nil:
				say(false, "removed %s, written while twonode was enabled", f)
			case !errors.Is(err, os.ErrNotExist):
				say(true, "could not remove %s: %v", f, err)
			}
		}
		return p.answer(bus.EventResponseNotApplicable, data, logs)
	}

	b := res.Block
	for _, w := range res.Warnings {
		say(true, "warning: %s", w)
	}
	content, err := StageFileContent(b)
	if err != nil {
		return p.fail("rendering the stages: %v", err)
	}
	for _, s := range p.stashes(b) {
		if s.secret == "" {
			if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				say(true, "could not remove %s, an inline secret no longer used: %v", s.path, err)
			}
			continue
		}
		data := s.secret.Reveal()
		if !bytes.HasSuffix(data, []byte("\n")) {
			data = append(data, '\n')
		}
		if err := writeFile(s.path, data); err != nil {
			return p.fail("writing %s for the stages: %v", s.what, err)
		}
	}
	if err := writeFile(p.StageFile, content); err != nil {
		return p.fail("writing the stages: %v", err)
	}
	data.File, data.Node, data.Peer = p.StageFile, b.Node.Name, b.Peer.Name
	say(false, "wrote the stages for node %s (%s), peer %s (%s) to %s", b.Node.Name, b.Node.Address, b.Peer.Name, b.Peer.Address, p.StageFile)
	return p.answer(bus.EventResponseSuccess, data, logs)
}

// checkClusterPath refuses a cluster: block that would make provider-k3s
// write its stages over this plugin's files.
func (p *Plugin) checkClusterPath(path string) error {
	if path == "" {
		return nil
	}
	clean := filepath.Clean(path)
	if slices.Contains(p.files(), clean) {
		return fmt.Errorf("cluster.cluster_config_path: must not be %s, twonode's own file: provider-k3s and twonode would overwrite each other's stages (remove the key for provider-k3s's default)", clean)
	}
	return nil
}

// stash is one of the plugin's files that keep an inline secret of the
// block for the stages to copy: a secret is never in a stage, where yip's
// debug log would print it.
type stash struct {
	path, what string
	secret     userdata.Secret // "": the block does not inline it
}

// stashes are the plugin's stashes, with what b inlines in them.
func (p *Plugin) stashes(b *userdata.Block) []stash {
	s := []stash{{path: p.SecretStash, what: "the secret"}, {path: p.WitnessKeyStash, what: "the witness's key"}}
	if b != nil {
		s[0].secret, s[1].secret = b.Secret, b.Witness.Key
	}
	return s
}

// files are all the plugin's files.
func (p *Plugin) files() []string {
	files := []string{p.StageFile}
	for _, s := range p.stashes(nil) {
		files = append(files, s.path)
	}
	return files
}

// invalid answers an invalid block: every problem, in the answer and in
// the report, and nothing changed.
func (p *Plugin) invalid(err error) pluggable.EventResponse {
	problems := strings.Split(err.Error(), "\n")
	head := fmt.Sprintf("the twonode: block is invalid (%d problem%s); nothing was changed on this node", len(problems), plural(len(problems)))
	p.say(true, head+":")
	for _, line := range problems {
		p.say(true, "  "+line)
	}
	text := head + ":\n" + strings.Join(problems, "\n")
	return pluggable.EventResponse{State: bus.EventResponseError, Error: text, Logs: text}
}

// fail answers a failure that is not the block's fault.
func (p *Plugin) fail(format string, args ...any) pluggable.EventResponse {
	text := fmt.Sprintf(format, args...)
	p.say(true, text)
	return pluggable.EventResponse{State: bus.EventResponseError, Error: text, Logs: text}
}

func (p *Plugin) answer(state string, data BootData, logs []string) pluggable.EventResponse {
	b, _ := json.Marshal(data) // plain strings: cannot fail
	return pluggable.EventResponse{State: state, Data: string(b), Logs: strings.Join(logs, "\n")}
}

func (p *Plugin) say(problem bool, text string) {
	if p.Report != nil {
		p.Report(Line{Problem: problem, Text: text})
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// writeFile replaces path atomically with data, mode 0600, creating its
// directory (0700) when missing: a new file, synced, renamed over the old.
func writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
