package plugin

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/mudler/yip/pkg/schema"
	"gopkg.in/yaml.v3"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

// StageName is the yip stage the rendered steps run in: initramfs, chrooted
// into the booting root before systemd takes over. Kairos fires agent.boot
// from /system/oem's initramfs steps, and yip reads /usr/local/cloud-config
// after /system/oem, so the file written then already runs at this boot,
// the very first one included. Running here, before the boot stages, also
// means the agent is enabled before provider-k3s's boot.before step starts
// k3s and waits for its datastore.
const StageName = "initramfs"

// Shell conditions of the rendered steps.
var (
	condRejoining = fmt.Sprintf(`[ -e %s ] && ! %s`, RejoinMarker, isMember)
	condFormed    = fmt.Sprintf(`[ ! -e %s ] || %s`, RejoinMarker, isMember)
	condRejoined  = fmt.Sprintf(`[ -e %s ] && %s`, RejoinMarker, isMember)
	isMember      = fmt.Sprintf(`grep -Eqs '"member": *true' %s`, StateFile)
)

// Render returns the yip stages for a valid block: the agent's
// configuration, secret and inline witness PEMs (0600, in a 0700
// directory) and its unit enabled. PostgreSQL and Kine are not started
// here: the agent starts their units once it knows which node leads
// (Kine's unit cannot start before the agent writes its endpoint).
func Render(b *userdata.Block) (schema.YipConfig, error) {
	cfg := b.AgentConfig()
	formed, err := configFile(cfg, "")
	if err != nil {
		return schema.YipConfig{}, err
	}
	cfg.Timers.BootGrace = RejoinBootGrace
	rejoin, err := configFile(cfg, "# This node was reset (the marker "+RejoinMarker+" exists) and is no member yet:\n"+
		"# it waits up to "+fmtDuration(RejoinBootGrace)+" (boot_grace) for its peer instead of forming a new pair\n"+
		"# alone. The stages remove the marker at the first boot after it has joined.\n")
	if err != nil {
		return schema.YipConfig{}, err
	}
	source := b.SecretFile
	if source == "" {
		source = SecretStash
	}

	steps := []schema.Stage{
		{
			Name:     "twonode: a reset node has rejoined the pair: forget the reset",
			If:       condRejoined,
			Commands: []string{"rm -f " + RejoinMarker},
		},
		{
			Name:        "twonode: configuration directory, root only",
			Directories: []schema.Directory{{Path: ConfigDir, Permissions: 0o700}},
		},
		{
			Name:  "twonode: agent configuration",
			If:    condFormed,
			Files: []schema.File{{Path: ConfigFile, Permissions: 0o600, Content: escapeTemplate(formed)}},
		},
		{
			Name:  "twonode: agent configuration for a node rejoining after a reset",
			If:    condRejoining,
			Files: []schema.File{{Path: ConfigFile, Permissions: 0o600, Content: escapeTemplate(rejoin)}},
		},
		{
			Name:     "twonode: cluster secret, root only",
			Commands: []string{install(source, userdata.AgentSecretPath)},
		},
	}
	steps = append(steps, witnessSteps(b.Witness)...)
	steps = append(steps, schema.Stage{
		Name:      "twonode: enable the agent (it starts PostgreSQL and Kine)",
		Systemctl: schema.Systemctl{Enable: []string{AgentUnit}},
	})
	return schema.YipConfig{Name: "twonode", Stages: map[string][]schema.Stage{StageName: steps}}, nil
}

// install copies a file the stages do not write themselves (a stash, a
// secret_file) to where the agent reads it: root's, 0600.
func install(from, to string) string {
	return fmt.Sprintf("install -m 0600 -o root -g root %s %s", from, to)
}

// witnessSteps write the witness's inline PEMs where the agent's
// configuration says they are: the certificates, which are public, from
// the stage; the key, a secret, copied from the plugin's stash.
func witnessSteps(w userdata.Witness) []schema.Stage {
	var files []schema.File
	for _, f := range []struct{ path, pem string }{{userdata.AgentWitnessCAPath, w.CA}, {userdata.AgentWitnessCertPath, w.Cert}} {
		if f.pem != "" {
			files = append(files, schema.File{Path: f.path, Permissions: 0o600, Content: escapeTemplate(f.pem)})
		}
	}
	var steps []schema.Stage
	if len(files) > 0 {
		steps = append(steps, schema.Stage{Name: "twonode: the witness's certificates, root only", Files: files})
	}
	if w.Key != "" {
		steps = append(steps, schema.Stage{Name: "twonode: the witness's client key, root only", Commands: []string{install(WitnessKeyStash, userdata.AgentWitnessKeyPath)}})
	}
	return steps
}

// fileHeader opens the stage file.
const fileHeader = `# Written by agent-provider-twonode at every boot (Kairos event agent.boot)
# from the twonode: block of this node's cloud-config. Do not edit: the next
# boot rewrites it. Change the user-data instead (docs/first-boot.md).
# No #cloud-config header on purpose: yip runs this file, Kairos does not merge
# it into the cloud-config it hands to plugins.
`

// StageFileContent is the whole stage file for a block.
func StageFileContent(b *userdata.Block) ([]byte, error) {
	y, err := Render(b)
	if err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := n.Encode(y); err != nil {
		return nil, fmt.Errorf("encoding the stages: %w", err)
	}
	tidy(&n)
	var buf bytes.Buffer
	buf.WriteString(fileHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("encoding the stages: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding the stages: %w", err)
	}
	return buf.Bytes(), nil
}

// tidy makes the encoded stages read the way people write them, without
// changing what yip reads: each step's name and if: first, permissions in
// octal, no empty encoding: and ownerstring: keys.
func tidy(n *yaml.Node) {
	for _, c := range n.Content {
		tidy(c)
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	var name, cond, rest []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case (k.Value == "encoding" || k.Value == "ownerstring") && v.Value == "":
			continue
		case k.Value == "permissions" && v.Kind == yaml.ScalarNode:
			if p, err := strconv.ParseUint(v.Value, 10, 32); err == nil {
				v.Value = fmt.Sprintf("0%o", p)
			}
		}
		switch k.Value {
		case "name":
			name = append(name, k, v)
		case "if":
			cond = append(cond, k, v)
		default:
			rest = append(rest, k, v)
		}
	}
	n.Content = append(append(name, cond...), rest...)
}

// configHeader opens the agent's configuration file.
const configHeader = `# The twonode agent's configuration, written at every boot by the stages that
# agent-provider-twonode renders from the twonode: block of this node's
# cloud-config. Edit the user-data, not this file: /etc is rebuilt at boot.
# Every key is explained in /usr/share/doc/twonode (bootstrap/config/example.yaml).
`

// configFile renders the agent's configuration as a YAML document that
// config.Parse reads back to c: durations as Go durations (500ms, 2h),
// every key written out.
func configFile(c config.Config, note string) (string, error) {
	n, err := toNode(reflect.ValueOf(c))
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	buf.WriteString(configHeader)
	buf.WriteString(note)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return "", fmt.Errorf("encoding the agent's configuration: %w", err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("encoding the agent's configuration: %w", err)
	}
	return buf.String(), nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// toNode turns the config struct into YAML by its yaml tags, leaving out
// the fault-test clock offset.
func toNode(v reflect.Value) (*yaml.Node, error) {
	switch {
	case v.Type() == durationType:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmtDuration(time.Duration(v.Int()))}, nil
	case v.Kind() == reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for i := range v.NumField() {
			key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if key == "" || key == "-" || key == "test_clock_offset" {
				continue
			}
			val, err := toNode(v.Field(i))
			if err != nil {
				return nil, fmt.Errorf("%s.%w", key, err)
			}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, val)
		}
		return m, nil
	case v.Kind() == reflect.String:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v.String()}, nil
	case v.Kind() == reflect.Int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}, nil
	}
	return nil, fmt.Errorf("%s: no YAML form for a %s", v.Type(), v.Kind())
}

// fmtDuration writes a duration the way people do: 2h, 1m30s, 500ms.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// escapeTemplate makes s come out of yip's Go templating unchanged: yip
// renders file contents, commands and conditions as templates, and logs a
// content it fails to render.
func escapeTemplate(s string) string {
	return strings.ReplaceAll(s, "{{", `{{"{{"}}`)
}
