package appliance

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
	"github.com/twonode-edge/twonode/e2e/results"
)

// Exposure ceilings for systemd-analyze security (0 = fully locked down,
// 10 = no sandbox; systemd calls 1.1-4.9 "OK", 5.0-7.4 "MEDIUM").
//
// Every unit must stay at or below 3.0. The agent is the one that needs the
// room: it must be root (it runs the PostgreSQL tools as user postgres, so it
// keeps CAP_SETUID/CAP_SETGID; it writes PostgreSQL's configuration into the
// postgres-owned data directory, so it keeps CAP_CHOWN, CAP_FOWNER and
// CAP_DAC_OVERRIDE; it asks PID 1 to start units, which systemd allows root
// only), and it needs the network; everything else is locked (2.5 measured
// with systemd 252). Kine and PostgreSQL run without any capability as
// unprivileged users and must stay at or below 2.0 (1.1 and 1.3 measured):
// a rise means someone removed hardening.
const (
	maxExposure             = 3.0
	maxExposureUnprivileged = 2.0
)

var unprivilegedUnits = map[string]bool{"twonode-kine.service": true, "twonode-postgresql.service": true}

func overlayUnits(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(repoRoot(t), "overlay/etc/systemd/system/*.service"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no units in overlay/etc/systemd/system: %v", err)
	}
	var names []string
	for _, p := range m {
		names = append(names, filepath.Base(p))
	}
	for u := range units {
		if !contains(names, u) {
			t.Errorf("overlay lacks %s", u)
		}
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestStaticUnitsVerify: systemd-analyze verify on every unit, in a scratch
// root made of the overlay, this machine's systemd units (for the targets
// the units name) and a stub at every executable path they run.
func TestStaticUnitsVerify(t *testing.T) {
	requireTools(t, "systemd-analyze")
	root := repoRoot(t)
	scratch := unitRoot(t)
	if _, err := run(time.Minute, "cp", "-a", filepath.Join(root, "overlay")+"/.", scratch); err != nil {
		t.Fatal(err)
	}
	execRE := regexp.MustCompile(`(?m)^Exec[A-Za-z]*=[-+!@:]*(/\S+)`)
	for _, u := range overlayUnits(t) {
		b, err := os.ReadFile(filepath.Join(scratch, "etc/systemd/system", u))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range execRE.FindAllStringSubmatch(string(b), -1) {
			stub := filepath.Join(scratch, m[1])
			if err := os.MkdirAll(filepath.Dir(stub), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, u := range overlayUnits(t) {
		out, err := run(time.Minute, "systemd-analyze", "verify", "--root="+scratch, "/etc/systemd/system/"+u)
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}
}

// TestStaticUnitsSecurity records each unit's exposure and holds it to the
// ceilings above.
func TestStaticUnitsSecurity(t *testing.T) {
	requireTools(t, "systemd-analyze")
	re := regexp.MustCompile(`Overall exposure level for (\S+): ([0-9.]+)`)
	for _, u := range overlayUnits(t) {
		path := filepath.Join(repoRoot(t), "overlay/etc/systemd/system", u)
		out, err := run(time.Minute, "systemd-analyze", "security", "--offline=yes", "--no-pager", path)
		if err != nil {
			t.Errorf("systemd-analyze security %s: %v", u, err)
			continue
		}
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("systemd-analyze security %s: no overall exposure in:\n%s", u, out)
			continue
		}
		score, _ := strconv.ParseFloat(m[2], 64)
		if err := results.Write(os.Stdout, results.UnitSecurity, "", map[string]any{"unit": u, "exposure": results.Fixed(score, 1)}); err != nil {
			t.Error(err)
		}
		limit := maxExposure
		if unprivilegedUnits[u] {
			limit = maxExposureUnprivileged
		}
		if score > limit {
			t.Errorf("%s: exposure %.1f is above %.1f; what systemd-analyze criticises:\n%s", u, score, limit, failing(out))
		}
	}
}

func failing(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "✗") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestStaticShellcheck: every shell script in the repository.
func TestStaticShellcheck(t *testing.T) {
	requireTools(t, "shellcheck")
	root := repoRoot(t)
	var scripts []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "node_modules", "testdata", ".lab":
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if strings.HasSuffix(p, ".sh") || isShellScript(p) {
			scripts = append(scripts, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scripts/install-two-node.sh", "scripts/image-binaries.sh", "scripts/images.sh"} {
		if !contains(scripts, filepath.Join(root, want)) {
			t.Errorf("%s missing", want)
		}
	}
	out, err := run(5*time.Minute, "shellcheck", scripts...)
	if err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
	t.Logf("shellcheck: %d scripts clean", len(scripts))
}

// isShellScript: an executable-looking file with an sh or bash shebang.
func isShellScript(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	return regexp.MustCompile(`^#!\s*(/usr/bin/env\s+)?(/bin/|/usr/bin/)?(ba)?sh\b`).MatchString(line)
}

// earthfile is what the tests read out of the Earthfile.
type earthfile struct {
	targets   map[string]bool   // lower-case targets and UPPER functions
	args      map[string]string // ARG name -> default, as written
	userArgs  []string          // ARGs of the "what a user sets" block, in order
	refs      []string          // every +name referenced
	lines     []string
	blockOf   map[string][]string // target -> its lines
	targetsIn []string
}

func parseEarthfile(t *testing.T) earthfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Earthfile"))
	if err != nil {
		t.Fatalf("Earthfile: %v", err)
	}
	e := earthfile{targets: map[string]bool{}, args: map[string]string{}, blockOf: map[string][]string{}}
	e.lines = strings.Split(string(b), "\n")
	targetRE := regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_-]*):\s*$`)
	argRE := regexp.MustCompile(`^\s*ARG\s+(?:--\S+\s+)*([A-Z][A-Z0-9_]*)(?:=(.*))?$`)
	refRE := regexp.MustCompile(`\+([A-Za-z][A-Za-z0-9_-]*)`)
	cur, inUser := "", false
	for _, l := range e.lines {
		if strings.HasPrefix(l, "# ---- what a user sets") {
			inUser = true
		} else if strings.HasPrefix(l, "# ----") {
			inUser = false
		}
		if m := targetRE.FindStringSubmatch(l); m != nil {
			cur = m[1]
			e.targets[cur] = true
			e.targetsIn = append(e.targetsIn, cur)
			continue
		}
		if cur != "" {
			e.blockOf[cur] = append(e.blockOf[cur], l)
		}
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if m := argRE.FindStringSubmatch(l); m != nil {
			e.args[m[1]] = strings.Trim(m[2], `"`)
			if inUser && cur == "" {
				e.userArgs = append(e.userArgs, m[1])
			}
		}
		for _, m := range refRE.FindAllStringSubmatch(l, -1) {
			e.refs = append(e.refs, m[1])
		}
	}
	return e
}

// TestEarthfile: targets and ARGs the issue and the docs promise, TWO_NODE
// gating, pinning, and no architecture assumed.
func TestEarthfile(t *testing.T) {
	e := parseEarthfile(t)
	root := repoRoot(t)

	for _, tg := range []string{"provider-image", "build-provider-images", "agent", "kine", "iso", "lint", "test",
		"uki-provider-image", "provider-image-rootfs", "build-all-images", "INSTALL_TWO_NODE"} {
		if !e.targets[tg] {
			t.Errorf("Earthfile: no target +%s", tg)
		}
	}
	for _, r := range e.refs {
		if !e.targets[r] {
			t.Errorf("Earthfile: +%s is referenced but not defined", r)
		}
	}

	gomod, _ := os.ReadFile(filepath.Join(root, "go.mod"))
	kine := regexp.MustCompile(`github\.com/k3s-io/kine (v\S+)`).FindSubmatch(gomod)
	if kine == nil {
		t.Fatal("go.mod does not pin github.com/k3s-io/kine")
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(gomod)
	want := map[string]func(string) bool{
		"TWO_NODE":         func(v string) bool { return v == "false" },
		"ARCH":             func(v string) bool { return v == "amd64" || v == "arm64" },
		"OS_DISTRIBUTION":  func(v string) bool { return v == "ubuntu" || v == "opensuse-leap" },
		"OS_VERSION":       func(v string) bool { return v != "" },
		"BASE_IMAGE":       func(v string) bool { return true }, // empty: derived from the three above
		"KAIROS_VERSION":   func(v string) bool { return regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(v) },
		"K8S_DISTRIBUTION": func(v string) bool { return v == "k3s" },
		"K8S_VERSION":      func(v string) bool { return regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(v) },
		"K8S_VERSIONS":     func(v string) bool { return len(strings.Fields(v)) > 0 },
		"KINE_VERSION":     func(v string) bool { return v == string(kine[1]) },
		"POSTGRES_VERSION": func(v string) bool { return v == "" || regexp.MustCompile(`^\d+$`).MatchString(v) },
		"IMAGE_REGISTRY":   func(v string) bool { return true },
		"IMAGE_REPO":       func(v string) bool { return v != "" },
		"CUSTOM_TAG":       func(v string) bool { return true },
		"IS_UKI":           func(v string) bool { return v == "false" },
		"GO_VERSION":       func(v string) bool { return goVersion != nil && v == string(goVersion[1]) },
	}
	for name, ok := range want {
		v, found := e.args[name]
		if !found {
			t.Errorf("Earthfile: no ARG %s", name)
			continue
		}
		if !ok(v) {
			t.Errorf("Earthfile: ARG %s has the default %q", name, v)
		}
	}

	// TWO_NODE gates the two-node content: the install function is used
	// only inside IF [ "$TWO_NODE" = "true" ], and the script only inside
	// that function. The trusted-boot image and the ISO are made from the
	// provider image's root filesystem, so they carry the same content.
	var stack []string
	uses := 0
	cur := ""
	targetRE := regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_-]*):\s*$`)
	for i, l := range e.lines {
		if m := targetRE.FindStringSubmatch(l); m != nil {
			cur, stack = m[1], nil
			continue
		}
		s := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(s, "IF "):
			stack = append(stack, s)
		case strings.HasPrefix(s, "ELSE"):
			if len(stack) > 0 {
				stack[len(stack)-1] = "ELSE of " + stack[len(stack)-1]
			}
		case s == "END":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
		if strings.Contains(s, "+INSTALL_TWO_NODE") && strings.HasPrefix(s, "DO ") {
			uses++
			gated := false
			for _, c := range stack {
				if strings.HasPrefix(c, "IF ") && strings.Contains(c, `"$TWO_NODE" = "true"`) {
					gated = true
				}
			}
			if !gated || cur != "provider-image" {
				t.Errorf("Earthfile:%d: the two-node content is installed outside IF [ \"$TWO_NODE\" = \"true\" ] of +provider-image (in +%s)", i+1, cur)
			}
		}
		if strings.Contains(s, "install-two-node.sh") && !strings.HasPrefix(s, "#") && cur != "INSTALL_TWO_NODE" {
			t.Errorf("Earthfile:%d: install-two-node.sh used outside INSTALL_TWO_NODE (in +%s)", i+1, cur)
		}
	}
	if uses == 0 {
		t.Error("Earthfile: +INSTALL_TWO_NODE is never used")
	}
	for _, tg := range []string{"uki-provider-image", "iso"} {
		if !strings.Contains(strings.Join(e.blockOf[tg], "\n"), "+provider-image-rootfs/rootfs") {
			t.Errorf("Earthfile: +%s is not made from +provider-image-rootfs: it could miss the two-node content", tg)
		}
	}
	if !strings.Contains(strings.Join(e.blockOf["provider-image-rootfs"], "\n"), "FROM +provider-image") {
		t.Error("Earthfile: +provider-image-rootfs is not FROM +provider-image")
	}
	if !strings.Contains(strings.Join(e.blockOf["build-provider-images"], "\n"), "FOR version IN $K8S_VERSIONS") {
		t.Error("Earthfile: +build-provider-images does not build one image per K8S_VERSIONS entry")
	}

	// Pinning. Images: every *_IMAGE default names a version tag (never
	// latest); BASE_IMAGE's default is derived from KAIROS_VERSION.
	for name, v := range e.args {
		if !strings.HasSuffix(name, "_IMAGE") || name == "BASE_IMAGE" {
			continue
		}
		tag := ""
		if i := strings.LastIndex(v, ":"); i >= 0 {
			tag = v[i+1:]
		}
		if tag == "" || tag == "latest" || (!strings.Contains(tag, "$") && !regexp.MustCompile(`\d`).MatchString(tag)) {
			t.Errorf("Earthfile: ARG %s=%s is not pinned to a version", name, v)
		}
	}
	for _, l := range e.lines {
		if s := strings.TrimSpace(l); strings.HasPrefix(s, "FROM ") && strings.Contains(s, ":latest") {
			t.Errorf("Earthfile: unpinned image: %s", s)
		}
	}
	// URLs: the Earthfile and the scripts it runs download nothing but
	// through Go modules (go.sum) and the distribution's package manager.
	// A URL that is ever added must name a version and be checked against a
	// sha256 in the same step.
	urlRE := regexp.MustCompile(`https?://[^\s"')]+`)
	for _, f := range []string{"Earthfile", "scripts/install-two-node.sh", "scripts/image-binaries.sh"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		steps := strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n")
		for i, s := range steps {
			code := s
			if strings.HasPrefix(strings.TrimSpace(s), "#") {
				continue
			}
			for _, u := range urlRE.FindAllString(code, -1) {
				versioned := regexp.MustCompile(`[/@_-]v?\d+\.\d+`).MatchString(u)
				checked := regexp.MustCompile(`[0-9a-f]{64}`).MatchString(code) && strings.Contains(code, "sha256sum")
				if !versioned || !checked {
					t.Errorf("%s: step %d downloads %s without a pinned version and sha256 check", f, i+1, u)
				}
			}
			if regexp.MustCompile(`\b(curl|wget)\b`).MatchString(code) && !urlRE.MatchString(code) {
				t.Errorf("%s: step %d downloads from a URL that is not written out: %s", f, i+1, strings.TrimSpace(code))
			}
		}
	}

	// Nothing assumes amd64: every mention is an ARCH default or an
	// architecture mapping.
	for _, f := range []string{"Earthfile", "scripts/install-two-node.sh", "scripts/image-binaries.sh"} {
		b, _ := os.ReadFile(filepath.Join(root, f))
		for i, l := range strings.Split(string(b), "\n") {
			s := strings.TrimSpace(l)
			if strings.HasPrefix(s, "#") || !regexp.MustCompile(`amd64|x86_64`).MatchString(s) {
				continue
			}
			if !strings.Contains(strings.ToLower(s), "arch") {
				t.Errorf("%s:%d mentions amd64 outside an architecture choice: %s", f, i+1, s)
			}
		}
	}
	// +agent and +kine build with the script the appliance test builds with.
	for _, tg := range []string{"agent"} {
		if !strings.Contains(strings.Join(e.blockOf[tg], "\n"), "scripts/image-binaries.sh $ARCH") {
			t.Errorf("Earthfile: +%s does not build with scripts/image-binaries.sh $ARCH", tg)
		}
	}
}

// TestArgTemplate: every ARG a user sets, each with a one-line comment,
// with the Earthfile's defaults (TWO_NODE=false).
func TestArgTemplate(t *testing.T) {
	e := parseEarthfile(t)
	b, err := os.ReadFile(filepath.Join(repoRoot(t), ".arg.template"))
	if err != nil {
		t.Fatalf(".arg.template: %v", err)
	}
	lines := strings.Split(string(b), "\n")
	seen := map[string]bool{}
	for i, l := range lines {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Errorf(".arg.template:%d: not NAME=value: %q", i+1, l)
			continue
		}
		seen[k] = true
		if i == 0 || !strings.HasPrefix(lines[i-1], "# ") {
			t.Errorf(".arg.template:%d: %s has no comment on the line above", i+1, k)
		}
		def, ok := e.args[k]
		if !ok {
			t.Errorf(".arg.template: %s is not an ARG of the Earthfile", k)
			continue
		}
		if strings.Trim(v, `"`) != def {
			t.Errorf(".arg.template: %s=%s, but the Earthfile's default is %q", k, v, def)
		}
	}
	for _, a := range e.userArgs {
		if !seen[a] {
			t.Errorf(".arg.template lacks %s", a)
		}
	}
	if !seen["TWO_NODE"] {
		t.Error(".arg.template lacks TWO_NODE")
	}
}

// TestDocsNames: every Earthly target, ARG, unit and repository path the
// README and docs name exists.
func TestDocsNames(t *testing.T) {
	e := parseEarthfile(t)
	root := repoRoot(t)
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	docs = append(docs, filepath.Join(root, "README.md"))
	unitsHave := map[string]bool{}
	for _, u := range overlayUnits(t) {
		unitsHave[u] = true
	}
	earthlyRE := regexp.MustCompile("earthly((?:\\s+(?:\\+[A-Za-z0-9_-]+|--[A-Z0-9_]+=\\S+))+)")
	targetRE := regexp.MustCompile(`\+([A-Za-z0-9_-]+)`)
	flagRE := regexp.MustCompile(`--([A-Z0-9_]+)=`)
	unitRE := regexp.MustCompile(`twonode-[a-z]+\.service`)
	pathRE := regexp.MustCompile("`((?:scripts|overlay|e2e|images|docs|cloudconfig|cmd|bootstrap)/[A-Za-z0-9_./-]*[A-Za-z0-9_-])`")
	checked := 0
	for _, d := range docs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		rel, _ := filepath.Rel(root, d)
		text := string(b)
		for _, m := range earthlyRE.FindAllStringSubmatch(text, -1) {
			for _, tg := range targetRE.FindAllStringSubmatch(m[1], -1) {
				checked++
				if !e.targets[tg[1]] {
					t.Errorf("%s: earthly +%s: no such target in the Earthfile", rel, tg[1])
				}
			}
			for _, f := range flagRE.FindAllStringSubmatch(m[1], -1) {
				checked++
				if _, ok := e.args[f[1]]; !ok {
					t.Errorf("%s: earthly --%s: no such ARG in the Earthfile", rel, f[1])
				}
			}
		}
		for _, u := range unitRE.FindAllString(text, -1) {
			checked++
			if !unitsHave[u] {
				t.Errorf("%s names %s, which overlay/ does not have", rel, u)
			}
		}
		for _, m := range pathRE.FindAllStringSubmatch(text, -1) {
			p := strings.TrimSuffix(m[1], "/")
			if strings.ContainsAny(p, "*<>") {
				continue
			}
			checked++
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s names %s, which does not exist", rel, p)
			}
		}
	}
	// docs/image.md documents every ARG a user sets.
	guide, err := os.ReadFile(filepath.Join(root, "docs/image.md"))
	if err != nil {
		t.Fatalf("docs/image.md: %v", err)
	}
	for _, a := range e.userArgs {
		if !strings.Contains(string(guide), "`"+a+"`") {
			t.Errorf("docs/image.md does not document ARG %s", a)
		}
	}
	if !strings.Contains(string(guide), "earthly +provider-image --TWO_NODE=true") {
		t.Error("docs/image.md does not show `earthly +provider-image --TWO_NODE=true`")
	}
	sort.Strings(e.targetsIn)
	t.Logf("checked %d names in %d documents; Earthfile targets: %s", checked, len(docs), strings.Join(e.targetsIn, " "))
}

// TestDocsTestNames: every test docs/security.md names as the one that
// shows a defence exists, so the threat model cannot point at a test that
// was renamed or removed.
func TestDocsTestNames(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs/security.md"))
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	funcRE := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)[A-Za-z0-9_]+)\(`)
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		for _, m := range funcRE.FindAllSubmatch(b, -1) {
			have[string(m[1])] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]+)`").FindAllSubmatch(doc, -1)
	if len(named) < 10 {
		t.Fatalf("docs/security.md names %d tests: is its table gone?", len(named))
	}
	for _, m := range named {
		if !have[string(m[1])] {
			t.Errorf("docs/security.md names %s, which no test file defines", m[1])
		}
	}
}

// TestStaticPluginBuilt: the Earthfile and the appliance need the Kairos
// plugin's package; TWONODE_ALLOW_MISSING_PLUGIN=1 is the only way past it.
func TestStaticPluginBuilt(t *testing.T) {
	if _, err := os.Stat(filepath.Join(repoRoot(t), "cmd/agent-provider-twonode")); err != nil && !allowMissingPlugin() {
		t.Fatalf("cmd/agent-provider-twonode: %v (+agent builds it into every two-node image)", err)
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is not on PATH")
	}
}

// TestImages: the pictures match what they depict. The state machine's
// graph and the failover timeline are regenerated from the code and from
// docs/results.md and must equal the committed ones; the rendered SVGs must
// show every state; the architecture's ports and paths are the defaults.
func TestImages(t *testing.T) {
	root := repoRoot(t)
	if out, err := run(5*time.Minute, "bash", filepath.Join(root, "scripts/images.sh"), "--check"); err != nil {
		t.Errorf("%v\n%s", err, out)
	}
	dotSrc, err := os.ReadFile(filepath.Join(root, "images/state-machine.dot"))
	if err != nil {
		t.Fatal(err)
	}
	svgRaw, err := os.ReadFile(filepath.Join(root, "images/state-machine.svg"))
	if err != nil {
		t.Fatal(err)
	}
	svg := html.UnescapeString(string(svgRaw)) // graphviz writes '-' as &#45;
	for _, m := range regexp.MustCompile(`"([a-z_]+)" ->`).FindAllStringSubmatch(string(dotSrc), -1) {
		if !strings.Contains(svg, ">"+m[1]+"<") {
			t.Errorf("images/state-machine.svg lacks state %s: run scripts/images.sh", m[1])
		}
	}
	arch, err := os.ReadFile(filepath.Join(root, "images/architecture.dot"))
	if err != nil {
		t.Fatal(err)
	}
	archRaw, err := os.ReadFile(filepath.Join(root, "images/architecture.svg"))
	if err != nil {
		t.Fatal(err)
	}
	archSVG := html.UnescapeString(string(archRaw))
	d := config.Default()
	for _, want := range []string{
		d.Kine.Listen, ":" + strconv.Itoa(d.Postgres.Port), ":" + strconv.Itoa(d.API.PeerPort), d.DataDir + "/pgdata",
		d.Kine.Unit, postgres.SystemdUnit, "twonode-agent.service",
	} {
		if !strings.Contains(string(arch), want) {
			t.Errorf("images/architecture.dot does not show %s (a default of the agent)", want)
		}
		if !strings.Contains(archSVG, want) {
			t.Errorf("images/architecture.svg does not show %s: run scripts/images.sh", want)
		}
	}
}

// unitRoot is a scratch root holding this machine's system units, for
// systemd-analyze verify --root.
func unitRoot(t *testing.T) string {
	t.Helper()
	scratch := t.TempDir()
	sysUnits := "/usr/lib/systemd/system"
	if _, err := os.Stat(sysUnits); err != nil {
		sysUnits = "/lib/systemd/system"
	}
	if err := os.MkdirAll(filepath.Join(scratch, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := run(time.Minute, "cp", "-a", sysUnits, filepath.Join(scratch, "usr/lib/systemd/system")); err != nil {
		t.Fatal(err)
	}
	return scratch
}

// TestStaticK3sDropIn: the drop-in that keeps a pair that cannot form from
// holding the boot loads over a k3s.service like the one k3s installs
// (Type=notify, no start timeout, restarts always), and bounds it: the wait
// for the datastore ends well before the start job's timeout, which must
// be set (k3s's own is 0, no limit).
func TestStaticK3sDropIn(t *testing.T) {
	requireTools(t, "systemd-analyze")
	root := repoRoot(t)
	dropIn := filepath.Join(root, "overlay/etc/systemd/system/k3s.service.d/20-twonode.conf")
	b, err := os.ReadFile(dropIn)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	wait := regexp.MustCompile(`(?m)^ExecStartPre=/opt/twonode/bin/twonode wait-datastore --for (\S+)$`).FindStringSubmatch(text)
	limit := regexp.MustCompile(`(?m)^TimeoutStartSec=(\d+)$`).FindStringSubmatch(text)
	if wait == nil || limit == nil {
		t.Fatalf("%s: want ExecStartPre=/opt/twonode/bin/twonode wait-datastore --for D and TimeoutStartSec=N:\n%s", dropIn, text)
	}
	d, err := time.ParseDuration(wait[1])
	n, _ := strconv.Atoi(limit[1])
	if err != nil || n <= 0 || time.Duration(n)*time.Second < d+time.Minute {
		t.Errorf("wait-datastore --for %s and TimeoutStartSec=%s: the start job must outlast the wait by at least a minute (k3s's own start), and be finite", wait[1], limit[1])
	}
	scratch := unitRoot(t)
	for f, content := range map[string]string{
		"etc/systemd/system/k3s.service":                   "[Unit]\nDescription=k3s, as its installer writes it\n[Service]\nType=notify\nTimeoutStartSec=0\nRestart=always\nRestartSec=5s\nExecStart=/usr/bin/k3s server\n[Install]\nWantedBy=multi-user.target\n",
		"etc/systemd/system/k3s.service.d/20-twonode.conf": text,
		"usr/bin/k3s":             "#!/bin/sh\n",
		"opt/twonode/bin/twonode": "#!/bin/sh\n",
	} {
		p := filepath.Join(scratch, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if !strings.HasPrefix(f, "etc/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	out, err := run(time.Minute, "systemd-analyze", "verify", "--root="+scratch, "/etc/systemd/system/k3s.service")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify k3s.service with the drop-in: %v\n%s", err, out)
	}
}

// TestK3sArtifactScript: the k3s binary and the airgap images are
// installed only when their sha256 is one the build was given, each by its
// own ARG, with the right mode; nothing is downloaded (check reads the
// build context only).
func TestK3sArtifactScript(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	rel := filepath.Join(dir, "v1.32.3-k3s1")
	if err := os.MkdirAll(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for _, f := range []string{"k3s", "k3s-airgap-images-amd64.tar"} {
		b := []byte("not really " + f + "\n")
		if err := os.WriteFile(filepath.Join(rel, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		sums[f] = hex.EncodeToString(h[:])
	}
	other := strings.Repeat("0", 64)
	script := filepath.Join(root, "scripts/k3s-artifact.sh")
	for _, c := range []struct {
		cmd, file, sums string
		mode            os.FileMode
		refusal         string
	}{
		{"check", "k3s", other + " " + sums["k3s"], 0o755, ""},
		{"check-images", "k3s-airgap-images-amd64.tar", sums["k3s-airgap-images-amd64.tar"], 0o644, ""},
		{"check-images", "k3s-airgap-images-amd64.tar", "", 0, "K3S_IMAGES_SHA256 is empty"},
		{"check-images", "k3s-airgap-images-amd64.tar", sums["k3s"], 0, "which K3S_IMAGES_SHA256 does not list: not installed"},
		{"check", "k3s", sums["k3s-airgap-images-amd64.tar"], 0, "which K3S_SHA256 does not list: not installed"},
	} {
		out := filepath.Join(t.TempDir(), "out")
		msg, err := run(time.Minute, "sh", script, c.cmd, "v1.32.3+k3s1", "amd64", dir, c.sums, out)
		fi, statErr := os.Stat(out)
		switch {
		case c.refusal == "" && (err != nil || statErr != nil || fi.Mode().Perm() != c.mode):
			t.Errorf("%s %s with its sha256: %v, %v (%s)", c.cmd, c.file, err, statErr, msg)
		case c.refusal != "" && (err == nil || statErr == nil || !strings.Contains(msg, c.refusal)):
			t.Errorf("%s %s with sums %q: installed or refused without saying %q: %v (%s)", c.cmd, c.file, c.sums, c.refusal, err, msg)
		}
	}
}
