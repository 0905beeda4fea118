package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load reads the YAML file at path and Parses it.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	c, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("config file %s:\n%w", path, err)
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes a YAML config onto the defaults, strictly (an unknown key
// is an error naming it and its line), and validates the result.
func Parse(data []byte) (*Config, error) {
	c, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	return c, nil
}

// finish fills in the derived default and validates.
func (c *Config) finish() error {
	if c.API.Socket == "" {
		c.API.Socket = filepath.Join(c.RunDir, socketName)
	}
	return c.Validate()
}

// decode is Parse without finish: the defaults with the document on top,
// api.socket still empty when the document does not set it (so that a
// --run-dir flag can still move it).
func decode(data []byte) (c *Config, err error) {
	defer func() {
		// yaml.v3 turns its own failures into errors; anything else it
		// throws must not take the agent down with a stack trace either.
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("invalid YAML: the parser failed: %v", r)
		}
	}()

	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		return nil, errors.New("the config is empty: it needs at least node, peer and secret_file")
	case err != nil:
		return nil, yamlError(err)
	}
	var second yaml.Node
	switch err := dec.Decode(&second); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlError(err)
	default:
		return nil, fmt.Errorf("the config must be one YAML document (a second one starts on line %d)", second.Line)
	}

	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	doc = ResolveAlias(doc)
	switch {
	case doc.Kind == yaml.ScalarNode && doc.ShortTag() == "!!null":
		return nil, errors.New("the config is empty: it needs at least node, peer and secret_file")
	case doc.Kind != yaml.MappingNode:
		// Never echo the value: a config path pointing at the secret file
		// would put the secret in the log.
		return nil, fmt.Errorf("the config must be a YAML mapping with keys such as node: and peer: (got %s on line %d)", KindName(doc), doc.Line)
	}

	// First a walk of our own, for errors that name the field and its line
	// (all of them at once); then the strict decoder, which is the authority
	// on what the struct receives.
	w := walker{seen: map[mergeKey]bool{}, defaults: reflect.ValueOf(Default())}
	w.mapping(doc, reflect.TypeOf(Config{}), nil)
	if len(w.errs) > 0 {
		return nil, errors.Join(w.errs...)
	}

	cfg := Default()
	cfg.API.Socket = ""
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&cfg); err != nil {
		return nil, yamlError(err)
	}
	return &cfg, nil
}

// typeNames turns the decoder's Go type names into the config's words.
var typeNames = strings.NewReplacer(
	"config.Config", "the top level",
	"config.Host", "node/peer",
	"config.Postgres", "postgres",
	"config.Kine", "kine",
	"config.Timers", "timers",
	"config.API", "api",
	"config.Log", "log",
	"time.Duration", "a duration",
)

// yamlError rewords a yaml.v3 error: one error per problem, no Go types.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, e := range te.Errors {
			errs = append(errs, errors.New("invalid YAML: "+typeNames.Replace(e)))
		}
		return errors.Join(errs...)
	}
	return errors.New("invalid YAML: " + strings.TrimPrefix(typeNames.Replace(err.Error()), "yaml: "))
}

// walker checks a YAML tree against the Config struct before decoding.
type walker struct {
	errs     []error
	seen     map[mergeKey]bool // merged mappings already walked (merge chains can be exponential)
	defaults reflect.Value     // Default(), to name the default in messages
}

func (w *walker) fail(path []string, line int, format string, args ...any) {
	w.errs = append(w.errs, fmt.Errorf("%s (line %d): %s", strings.Join(path, "."), line, fmt.Sprintf(format, args...)))
}

// mergeKey is one merged mapping at one place in the config: the same
// anchor merged into two sections is checked in both.
type mergeKey struct {
	node *yaml.Node
	path string
}

// mapping checks the keys of one YAML mapping meant for struct type t.
func (w *walker) mapping(n *yaml.Node, t reflect.Type, path []string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := ResolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.Tag == "!!merge" || k.Tag == "tag:yaml.org,2002:merge") {
			w.merge(v, t, path)
			continue
		}
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			key = "<" + KindName(k) + ">"
		}
		f, ok := fieldByKey(t, key)
		if !ok {
			where := "the top level"
			if len(path) > 0 {
				where = strings.Join(path, ".")
			}
			w.fail(append(path[:len(path):len(path)], keyName(key)), k.Line, "unknown key; %s has %s", where, strings.Join(keysOf(t), ", "))
			continue
		}
		w.value(ResolveAlias(v), f, append(path[:len(path):len(path)], key))
	}
}

// merge walks the mapping(s) of a YAML merge key (<<) as part of t.
func (w *walker) merge(v *yaml.Node, t reflect.Type, path []string) {
	v = ResolveAlias(v)
	k := mergeKey{v, strings.Join(path, ".")}
	if w.seen[k] {
		return
	}
	w.seen[k] = true
	switch v.Kind {
	case yaml.MappingNode:
		w.mapping(v, t, path)
	case yaml.SequenceNode:
		for _, m := range v.Content {
			w.merge(m, t, path)
		}
	default:
		w.fail(append(path[:len(path):len(path)], "<<"), v.Line, "a merge key needs a mapping or a list of mappings (got %s)", KindName(v))
	}
}

var durationType = reflect.TypeOf(time.Duration(0))

// value checks the YAML value of one struct field.
func (w *walker) value(v *yaml.Node, f reflect.StructField, path []string) {
	null := v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null"
	if f.Type.Kind() == reflect.Struct {
		switch {
		case null: // an empty section: its defaults
		case v.Kind == yaml.MappingNode:
			w.mapping(v, f.Type, path)
		default:
			w.fail(path, v.Line, "must be a mapping of keys (%s), not %s", strings.Join(keysOf(f.Type), ", "), KindName(v))
		}
		return
	}
	if v.Kind != yaml.ScalarNode {
		w.fail(path, v.Line, "must be a single value, not %s", KindName(v))
		return
	}
	if null {
		// "metrics:" with nothing after it must not silently mean the
		// default (metrics on) when the writer meant "" (metrics off).
		def := w.defaultOf(path)
		w.fail(path, v.Line, "has no value: remove the key for the default (%s) or give a value (\"\" for empty)", def)
		return
	}
	switch {
	case f.Type == durationType:
		switch {
		case v.ShortTag() == "!!int":
			w.fail(path, v.Line, "a duration needs a unit, such as %sms, %ss or %sm (got %s)", v.Value, v.Value, v.Value, v.Value)
		case v.ShortTag() != "!!str":
			w.fail(path, v.Line, "must be a duration such as 500ms, 30s or 2h (got %q)", v.Value)
		default:
			if _, err := time.ParseDuration(v.Value); err != nil {
				w.fail(path, v.Line, "must be a duration such as 500ms, 30s or 2h (got %q)", v.Value)
			}
		}
	case f.Type.Kind() == reflect.Int:
		var i int
		if v.ShortTag() != "!!int" || v.Decode(&i) != nil {
			w.fail(path, v.Line, "must be a whole number (got %q)", v.Value)
		}
	case f.Type.Kind() == reflect.String:
		// any scalar is its text
	}
}

// defaultOf names the default of the leaf at path, for messages.
func (w *walker) defaultOf(path []string) string {
	if strings.Join(path, ".") == "api.socket" {
		return "<run_dir>/" + socketName
	}
	v := w.defaults
	for _, key := range path {
		f, ok := fieldByKey(v.Type(), key)
		if !ok {
			return "?"
		}
		v = v.FieldByIndex(f.Index)
	}
	switch x := v.Interface().(type) {
	case string:
		if x == "" {
			return `""`
		}
		return x
	default:
		return fmt.Sprint(x)
	}
}

// fieldByKey finds the field of struct t whose yaml tag is key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// keysOf lists the YAML keys of struct t in declaration order.
func keysOf(t reflect.Type) []string {
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		keys = append(keys, yamlKey(t.Field(i)))
	}
	return keys
}

func yamlKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return k
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// keyName shows an unknown key as typed, quoted when it is not plain.
func keyName(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return fmt.Sprintf("%q", k)
}

// ResolveAlias follows YAML aliases a bounded number of times (also used by
// the user-data parser).
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
