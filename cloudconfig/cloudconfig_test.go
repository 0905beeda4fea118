package cloudconfig_test

import (
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mudler/yip/pkg/schema"

	"github.com/twonode-edge/twonode/bootstrap/plugin"
	"github.com/twonode-edge/twonode/bootstrap/plugin/yiptest"
	"github.com/twonode-edge/twonode/bootstrap/userdata"
	"github.com/twonode-edge/twonode/cloudconfig"
)

const oem = "/system/oem"

// Kairos's cloud-config directories, in the order it runs them.
var kairosDirs = []string{oem, "/oem", "/usr/local/cloud-config"}

// kairosStages are the stage names Kairos runs (each also with .before and
// .after).
var kairosStages = map[string]bool{
	"rootfs": true, "initramfs": true, "boot": true, "fs": true, "network": true, "reconcile": true,
	"before-install": true, "after-install-chroot": true, "after-install": true,
	"before-upgrade": true, "after-upgrade-chroot": true, "after-upgrade": true,
	"before-reset": true, "after-reset-chroot": true, "after-reset": true,
}

// baked returns the image's /system/oem files as a test root's files.
func baked(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := fs.WalkDir(cloudconfig.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := cloudconfig.Files.ReadFile(p)
		files[oem+"/"+p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no baked files")
	}
	return files
}

// machine is a test root with the baked files, /etc and /oem, plus extra.
func machine(t *testing.T, extra map[string]string) *yiptest.Machine {
	t.Helper()
	files := baked(t)
	files["/etc/"], files["/oem/"], files["/run/"], files["/usr/local/cloud-config/"] = "", "", "", ""
	for k, v := range extra {
		files[k] = v
	}
	return yiptest.NewMachine(t, files)
}

// Every baked file is a yip config whose stages are stages Kairos runs.
func TestBakedFilesAreYipConfigs(t *testing.T) {
	for path, content := range baked(t) {
		y, err := schema.Load(content, nil, nil, nil)
		if err != nil {
			t.Errorf("%s: yip cannot load it: %v", path, err)
			continue
		}
		if y.Name == "" || len(y.Stages) == 0 {
			t.Errorf("%s: no name or no stages", path)
		}
		for stage, steps := range y.Stages {
			base := strings.TrimSuffix(strings.TrimSuffix(stage, ".before"), ".after")
			if !kairosStages[base] {
				t.Errorf("%s: Kairos never runs stage %q", path, stage)
			}
			for _, s := range steps {
				if s.Name == "" {
					t.Errorf("%s: a step of %s has no name", path, stage)
				}
			}
		}
	}
}

var (
	configured    = map[string]string{plugin.ConfigFile: "node: {}\n"}
	agentDisable  = "systemctl disable " + plugin.AgentUnit
	agentStart    = "systemctl start --no-block " + plugin.AgentUnit
	upgradeBegin  = plugin.ProviderBinary + " upgrade-begin"
	upgradeFinish = "systemd-run --no-block --unit=twonode-upgrade-finish --description=\"twonode - end the pause of this node's upgrade\" " + plugin.ProviderBinary + " upgrade-finish"
)

// Each baked stage, on a node with and without twonode: the exact
// commands, and nothing on a node that does not run twonode but the one
// that keeps the agent off.
func TestBakedStages(t *testing.T) {
	for _, c := range []struct {
		name  string
		stage string
		files map[string]string
		want  []string
	}{
		{"initramfs, twonode not configured", "initramfs", nil, []string{agentDisable}},
		{"initramfs, twonode configured", "initramfs", map[string]string{plugin.StageFile: "name: twonode\n"}, nil},
		{"initramfs, recovery", "initramfs", map[string]string{"/run/cos/recovery_mode": ""}, nil},
		{"boot.before, configured", "boot", configured, []string{agentStart}},
		{"boot, not configured", "boot", nil, nil},
		{"boot, after an upgrade", "boot", merge(configured, map[string]string{plugin.UpgradeMarker: "{}"}), []string{agentStart, upgradeFinish}},
		{"boot, upgrade marker but twonode no longer configured", "boot", map[string]string{plugin.UpgradeMarker: "{}"}, nil},
		{"before-upgrade, configured", "before-upgrade", configured, []string{upgradeBegin}},
		{"before-upgrade, not configured", "before-upgrade", nil, nil},
		{"after-upgrade", "after-upgrade", configured, nil},
		{"reconcile", "reconcile", configured, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := machine(t, c.files)
			before := m.Tree(t, "/")
			m.Run(t, c.stage, oem)
			if !reflect.DeepEqual(m.Console.Commands, c.want) {
				t.Errorf("commands:\n got %q\nwant %q", m.Console.Commands, c.want)
			}
			if after := m.Tree(t, "/"); !reflect.DeepEqual(after, before) {
				t.Errorf("files changed:\n got %v\nwant %v", after, before)
			}
		})
	}
}

// before-reset (in the recovery system) leaves the rejoin marker on the OEM
// partition, which the reset keeps.
func TestBakedBeforeReset(t *testing.T) {
	m := machine(t, nil)
	m.Run(t, "before-reset", oem)
	if len(m.Console.Commands) != 0 {
		t.Errorf("commands %q", m.Console.Commands)
	}
	tree := m.Tree(t, "/oem")
	want := map[string]yiptest.Entry{
		"/oem":              {Mode: 0o755 | fs.ModeDir},
		"/oem/twonode":      {Mode: 0o755 | fs.ModeDir},
		plugin.RejoinMarker: {Mode: 0o644, Content: tree[plugin.RejoinMarker].Content},
	}
	if !reflect.DeepEqual(tree, want) || !strings.HasPrefix(tree[plugin.RejoinMarker].Content, "This node was reset.") {
		t.Errorf("/oem after before-reset:\n got %v\nwant %v", tree, want)
	}
}

// A node's life the way Kairos runs it, baked and rendered stages
// together, for each documented node: first boot, an upgrade and the boot
// after it, a reset and the boot after that. Stage by stage, the exact
// commands; the files the agent needs; the reset node's longer wait.
func TestNodeLifecycle(t *testing.T) {
	for _, node := range []string{"node1", "node2"} {
		t.Run(node, func(t *testing.T) {
			ud, err := os.ReadFile("../docs/user-data/" + node + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			res, err := userdata.Parse(ud)
			if err != nil {
				t.Fatal(err)
			}
			stages, err := plugin.StageFileContent(res.Block)
			if err != nil {
				t.Fatal(err)
			}
			// What the plugin leaves at agent.boot (02_notify.yaml, initramfs).
			written := map[string]string{plugin.StageFile: string(stages), plugin.SecretStash: userdata.ExampleSecret + "\n"}
			install := "install -m 0600 -o root -g root " + plugin.SecretStash + " " + userdata.AgentSecretPath
			enable := "systemctl enable " + plugin.AgentUnit

			// First boot.
			m := machine(t, written)
			m.Run(t, "initramfs", kairosDirs...)
			m.Run(t, "boot", kairosDirs...)
			if want := []string{install, enable, agentStart}; !reflect.DeepEqual(m.Console.Commands, want) {
				t.Errorf("first boot:\n got %q\nwant %q", m.Console.Commands, want)
			}
			etc := m.Tree(t, "/etc/twonode")
			if etc[plugin.ConfigFile].Mode != 0o600 || etc[userdata.AgentSecretPath] != (yiptest.Entry{Mode: 0o600, Content: userdata.ExampleSecret + "\n"}) || etc[plugin.ConfigDir].Mode != 0o700|fs.ModeDir {
				t.Errorf("/etc/twonode after the first boot: %v", etc)
			}
			if !strings.Contains(etc[plugin.ConfigFile].Content, "  name: "+res.Block.Node.Name+"\n") {
				t.Errorf("the configuration is not %s's:\n%s", res.Block.Node.Name, etc[plugin.ConfigFile].Content)
			}

			// An upgrade: before-upgrade pauses; the helper leaves its marker.
			m.Console.Commands = nil
			m.Run(t, "before-upgrade", kairosDirs...)
			m.Run(t, "after-upgrade", kairosDirs...)
			if want := []string{upgradeBegin}; !reflect.DeepEqual(m.Console.Commands, want) {
				t.Errorf("upgrade:\n got %q\nwant %q", m.Console.Commands, want)
			}

			// The boot after it (the /etc tmpfs is new, the marker persists).
			m = machine(t, merge(written, map[string]string{plugin.UpgradeMarker: "{}"}))
			m.Run(t, "initramfs", kairosDirs...)
			m.Run(t, "boot", kairosDirs...)
			if want := []string{install, enable, agentStart, upgradeFinish}; !reflect.DeepEqual(m.Console.Commands, want) {
				t.Errorf("boot after the upgrade:\n got %q\nwant %q", m.Console.Commands, want)
			}

			// A reset: before-reset in the recovery system marks /oem.
			m = machine(t, map[string]string{"/run/cos/recovery_mode": ""})
			m.Run(t, "before-reset", kairosDirs...)
			marker := m.Tree(t, plugin.RejoinMarker)[plugin.RejoinMarker].Content
			if marker == "" {
				t.Fatalf("no rejoin marker after before-reset")
			}
			// The first boot after it: persistent partition wiped (no state),
			// /oem kept; the plugin renders the same stages again.
			m = machine(t, merge(written, map[string]string{plugin.RejoinMarker: marker}))
			m.Run(t, "initramfs", kairosDirs...)
			m.Run(t, "boot", kairosDirs...)
			if want := []string{install, enable, agentStart}; !reflect.DeepEqual(m.Console.Commands, want) {
				t.Errorf("boot after the reset:\n got %q\nwant %q", m.Console.Commands, want)
			}
			if cfg := m.Tree(t, plugin.ConfigFile)[plugin.ConfigFile].Content; !strings.Contains(cfg, "  boot_grace: 1h\n") {
				t.Errorf("a reset node is not given the long boot grace:\n%s", cfg)
			}
		})
	}
}

// A node whose user-data has no twonode: block, on the same image: only
// the step that keeps the agent off runs, through a whole boot.
func TestPlainNodeBoot(t *testing.T) {
	m := machine(t, nil)
	before := m.Tree(t, "/")
	for _, stage := range []string{"rootfs", "initramfs", "boot", "fs", "network", "reconcile"} {
		m.Run(t, stage, kairosDirs...)
	}
	if want := []string{agentDisable}; !reflect.DeepEqual(m.Console.Commands, want) {
		t.Errorf("commands %q, want %q", m.Console.Commands, want)
	}
	if after := m.Tree(t, "/"); !reflect.DeepEqual(after, before) {
		t.Errorf("files changed")
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
