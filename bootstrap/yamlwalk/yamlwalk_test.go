package yamlwalk

import (
	"errors"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var testFields = []Field{
	{Key: "name"},
	{Key: "port", Kind: Whole},
	{Key: "every", Kind: Duration},
	{Key: "on", Kind: Bool},
	{Key: "hosts", Kind: List},
	{Key: "key", Secret: true, Kind: Whole},
	{Key: "sub", Kind: Section, Fields: []Field{{Key: "a"}}},
}

func walk(t *testing.T, w *Walker, root, doc string) string {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	w.Walk(root, n.Content[0], testFields)
	if err := errors.Join(w.Errs...); err != nil {
		return err.Error()
	}
	return ""
}

// The leaves come back decoded to their kinds, by their path below the root.
func TestValues(t *testing.T) {
	var w Walker
	if err := walk(t, &w, "x", "name: a\nport: 7\nevery: 2s\n'on': true\nhosts: [h1, h2]\nsub: {a: b}\n"); err != "" {
		t.Fatal(err)
	}
	want := map[string]Value{
		"name": {Text: "a", Line: 1}, "port": {Text: "7", Whole: 7, Line: 2}, "every": {Text: "2s", Duration: 2 * time.Second, Line: 3},
		"on": {Text: "true", Bool: true, Line: 4}, "hosts": {Text: "h1,h2", Line: 5}, "sub.a": {Text: "b", Line: 6},
	}
	for k, v := range want {
		if w.Values[k] != v {
			t.Errorf("%s: got %+v want %+v", k, w.Values[k], v)
		}
	}
}

// Each mistake is one sentence with its path and line, all of them at once.
func TestErrors(t *testing.T) {
	for _, c := range []struct{ name, root, doc, want string }{
		{"unknown key at the top", "", "nmae: a\n", "nmae (line 1): unknown key; the top level has name, port, every, on, hosts, key, sub"},
		{"unknown key below a root", "x", "sub: {b: 1}\n", "x.sub.b (line 1): unknown key; x.sub has a"},
		{"odd key quoted", "", "'a b': 1\n", `"a b" (line 1): unknown key; the top level has name, port, every, on, hosts, key, sub`},
		{"key not a value", "x", "[a]: 1\n", "x (line 1): has a key that is a list; its keys are name, port, every, on, hosts, key, sub"},
		{"twice", "", "name: a\nname: b\n", "name (line 2): appears twice (lines 1 and 2): keep one"},
		{"no value", "", "name:\n", `name (line 1): has no value: remove the key to keep the default, or give a value ("" for empty)`},
		{"duration without unit", "", "every: 5\n", "every (line 1): a duration needs a unit, such as 5ms, 5s or 5m (got 5)"},
		{"not a bool", "", "'on': yes\n", `on (line 1): must be true or false (got "yes")`},
		{"a secret is not shown", "", "key: hunter2\n", `key (line 1): must be a whole number (got "[redacted]")`},
		{"a list item", "", "hosts: [a, [b]]\n", "hosts (line 1): must be a list of single values (or one value); item 2 is not one"},
		{"section of a value", "", "sub: 1\n", "sub (line 1): must be a mapping of keys (a), not a single value"},
		{"merge refused", "", "<<: {name: a}\n", "<< (line 1): merge keys are not supported here: write the keys out"},
		{"two mistakes", "", "port: x\nevery: soon\n", "port (line 1): must be a whole number (got \"x\")\nevery (line 2): must be a duration such as 500ms, 30s or 2h (got \"soon\")"},
	} {
		if got := walk(t, &Walker{}, c.root, c.doc); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

// With Merges, merged keys are checked where they land; Default names the
// default of a key with no value.
func TestMergesAndDefault(t *testing.T) {
	w := Walker{Merges: true, Default: func(path string) string { return "<" + path + ">" }}
	got := walk(t, &w, "", "base: &b {a: 1, z: 2}\n")
	if got != "base (line 1): unknown key; the top level has name, port, every, on, hosts, key, sub" {
		t.Errorf("got %q", got)
	}
	w = Walker{Merges: true, Default: func(path string) string { return "<" + path + ">" }}
	got = walk(t, &w, "", "sub:\n  <<: [{a: 1}, {z: 2}]\nname:\n")
	if want := "sub.z (line 2): unknown key; sub has a\nname (line 3): has no value: remove the key for the default (<name>) or give a value (\"\" for empty)"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
