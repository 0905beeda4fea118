// Package yamlwalk checks a YAML mapping against a schema before anything
// decodes it, so that a mistake in the agent's config file or in a node's
// user-data is reported as a sentence naming the field and its line
// ("timers.probe_interval (line 6): a duration needs a unit ..."), every
// mistake at once, instead of yaml.v3's first error in Go's words.
//
// The rules are the project's: a key the schema does not know is an error,
// never ignored (a setting that silently does nothing is worse than a node
// that refuses to start); a key with no value is an error, not the
// default; a duration needs its unit. Both parsers (bootstrap/config and
// bootstrap/userdata) say only which fields exist and of what kind; the
// walk, the types and the wording live here.
package yamlwalk

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Kind is the type of one key's value.
type Kind int

const (
	Text     Kind = iota // any single value, kept as its text
	Whole                // a whole number
	Duration             // a duration with its unit, such as 500ms
	Bool                 // true or false
	Section              // a mapping of Fields; no value means its defaults
	List                 // a list of single values, or one value; kept joined with commas
)

// Field is one key of a mapping.
type Field struct {
	Key    string
	Kind   Kind
	Fields []Field // of a Section
	Secret bool    // its value never appears in a message, whatever its problem
}

// Value is one leaf as the walk decoded it, with its line.
type Value struct {
	Text     string
	Whole    int
	Duration time.Duration
	Bool     bool
	Line     int
}

// Walker walks one mapping (Walk) and keeps what it found.
type Walker struct {
	// Merges lets a mapping take keys from YAML merge keys (<<); without
	// it a merge key is an error asking for the keys to be written out.
	Merges bool
	// Default names the default of the leaf at a path below the root, for
	// the message about a key with no value; nil: the message names none.
	Default func(path string) string

	// Values are the leaves by their path below the root
	// ("timers.probe_interval"). Where merges bring a key twice, the
	// decoder that follows the walk is the authority on its value.
	Values map[string]Value
	// Errs are every problem found, in document order.
	Errs []error
	// Failed are the full paths ("twonode.timers") that had a problem.
	Failed map[string]bool

	root   string
	merged map[mergeKey]bool // merged mappings already walked (merge chains can be exponential)
}

// mergeKey is one merged mapping at one place: the same anchor merged into
// two sections is checked in both.
type mergeKey struct {
	node *yaml.Node
	path string
}

// Walk checks n, the mapping at root ("" for a document's top level),
// against fields. Values and Errs add up over several calls.
func (w *Walker) Walk(root string, n *yaml.Node, fields []Field) {
	if w.Values == nil {
		w.Values, w.Failed, w.merged = map[string]Value{}, map[string]bool{}, map[mergeKey]bool{}
	}
	w.root = root
	w.section(root, ResolveAlias(n), fields)
}

// Fail records a problem of the field at path (a full path), at line.
func (w *Walker) Fail(path string, line int, format string, args ...any) {
	w.Failed[path] = true
	w.Errs = append(w.Errs, fmt.Errorf("%s (line %d): %s", path, line, fmt.Sprintf(format, args...)))
}

// section checks the value of a key meant to hold fields.
func (w *Walker) section(path string, v *yaml.Node, fields []Field) {
	switch {
	case isNull(v): // an empty section: its defaults
	case v.Kind == yaml.MappingNode:
		w.mapping(path, v, fields)
	default:
		w.Fail(where(path), v.Line, "must be a mapping of keys (%s), not %s", keysOf(fields), KindName(v))
	}
}

// mapping checks the keys of one mapping.
func (w *Walker) mapping(path string, n *yaml.Node, fields []Field) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := ResolveAlias(n.Content[i]), ResolveAlias(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			w.Fail(where(path), k.Line, "has a key that is %s; its keys are %s", KindName(k), keysOf(fields))
			continue
		}
		sub := join(path, k.Value)
		switch {
		case w.Merges && isMerge(k):
			w.merge(path, v, fields)
			continue
		case !w.Merges && (k.Value == "<<" || k.ShortTag() == "!!merge"):
			w.Fail(sub, k.Line, "merge keys are not supported here: write the keys out")
			continue
		}
		f, ok := lookup(fields, k.Value)
		if !ok {
			w.Fail(join(path, quoteKey(k.Value)), k.Line, "unknown key; %s has %s", where(path), keysOf(fields))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.Fail(sub, k.Line, "appears twice (lines %d and %d): keep one", first, k.Line)
			continue
		}
		seen[k.Value] = k.Line
		if f.Kind == Section {
			w.section(sub, v, f.Fields)
			continue
		}
		w.leaf(sub, v, f)
	}
}

// isMerge is yaml.v3's test for a merge key.
func isMerge(k *yaml.Node) bool {
	return k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}

// merge walks the mapping(s) of a merge key (<<) as part of the mapping at path.
func (w *Walker) merge(path string, v *yaml.Node, fields []Field) {
	v = ResolveAlias(v)
	k := mergeKey{v, path}
	if w.merged[k] {
		return
	}
	w.merged[k] = true
	switch v.Kind {
	case yaml.MappingNode:
		w.mapping(path, v, fields)
	case yaml.SequenceNode:
		for _, m := range v.Content {
			w.merge(path, m, fields)
		}
	default:
		w.Fail(join(path, "<<"), v.Line, "a merge key needs a mapping or a list of mappings (got %s)", KindName(v))
	}
}

// leaf checks and decodes one value.
func (w *Walker) leaf(path string, v *yaml.Node, f Field) {
	rel := strings.TrimPrefix(strings.TrimPrefix(path, w.root), ".")
	if f.Kind == List && v.Kind == yaml.SequenceNode {
		items := make([]string, 0, len(v.Content))
		for i, item := range v.Content {
			if item = ResolveAlias(item); item.Kind != yaml.ScalarNode || isNull(item) {
				w.Fail(path, item.Line, "must be a list of single values (or one value); item %d is not one", i+1)
				return
			}
			items = append(items, item.Value)
		}
		w.Values[rel] = Value{Text: strings.Join(items, ","), Line: v.Line}
		return
	}
	if v.Kind != yaml.ScalarNode {
		w.Fail(path, v.Line, "must be a single value, not %s", KindName(v))
		return
	}
	if isNull(v) {
		// "metrics:" with nothing after it must not silently mean the
		// default (metrics on) when the writer meant "" (metrics off).
		if w.Default != nil {
			w.Fail(path, v.Line, "has no value: remove the key for the default (%s) or give a value (\"\" for empty)", w.Default(rel))
		} else {
			w.Fail(path, v.Line, "has no value: remove the key to keep the default, or give a value (\"\" for empty)")
		}
		return
	}
	shown := v.Value
	if f.Secret {
		shown = "[redacted]"
	}
	l := Value{Text: v.Value, Line: v.Line}
	switch f.Kind {
	case Whole:
		if v.ShortTag() != "!!int" || v.Decode(&l.Whole) != nil {
			w.Fail(path, v.Line, "must be a whole number (got %q)", shown)
			return
		}
	case Duration:
		d, err := time.ParseDuration(v.Value)
		switch {
		case v.ShortTag() == "!!int":
			w.Fail(path, v.Line, "a duration needs a unit, such as %sms, %ss or %sm (got %s)", shown, shown, shown, shown)
			return
		case v.ShortTag() != "!!str" || err != nil:
			w.Fail(path, v.Line, "must be a duration such as 500ms, 30s or 2h (got %q)", shown)
			return
		}
		l.Duration = d
	case Bool:
		if v.ShortTag() != "!!bool" || v.Decode(&l.Bool) != nil {
			w.Fail(path, v.Line, "must be true or false (got %q)", shown)
			return
		}
	}
	w.Values[rel] = l
}

func isNull(v *yaml.Node) bool { return v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// where names a mapping in a message.
func where(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

func lookup(fields []Field, key string) (Field, bool) {
	for _, f := range fields {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

func keysOf(fields []Field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.Key
	}
	return strings.Join(keys, ", ")
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// quoteKey shows an unknown key as typed, quoted (and cut) when it is not
// plain.
func quoteKey(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	if len(k) > 64 {
		k = k[:64] + "..."
	}
	return fmt.Sprintf("%q", k)
}

// ResolveAlias follows YAML aliases a bounded number of times.
func ResolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// KindName names a YAML node's kind for error messages.
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return "nothing"
}
