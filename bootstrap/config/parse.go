package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/twonode-edge/twonode/bootstrap/yamlwalk"
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
	doc = yamlwalk.ResolveAlias(doc)
	switch {
	case doc.Kind == yaml.ScalarNode && doc.ShortTag() == "!!null":
		return nil, errors.New("the config is empty: it needs at least node, peer and secret_file")
	case doc.Kind != yaml.MappingNode:
		// Never echo the value: a config path pointing at the secret file
		// would put the secret in the log.
		return nil, fmt.Errorf("the config must be a YAML mapping with keys such as node: and peer: (got %s on line %d)", yamlwalk.KindName(doc), doc.Line)
	}

	// First a walk of our own, for errors that name the field and its line
	// (all of them at once); then the strict decoder, which is the authority
	// on what the struct receives.
	w := yamlwalk.Walker{Merges: true, Default: defaultOf}
	w.Walk("", doc, schema)
	if len(w.Errs) > 0 {
		return nil, errors.Join(w.Errs...)
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

// schema is the Config struct as yamlwalk fields: the keys its yaml tags
// name, of the kinds its Go types are.
var schema = fieldsOf(reflect.TypeOf(Config{}))

var durationType = reflect.TypeOf(time.Duration(0))

func fieldsOf(t reflect.Type) []yamlwalk.Field {
	fields := make([]yamlwalk.Field, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		yf := yamlwalk.Field{Key: yamlKey(f)}
		switch {
		case f.Type == durationType:
			yf.Kind = yamlwalk.Duration
		case f.Type.Kind() == reflect.Int:
			yf.Kind = yamlwalk.Whole
		case f.Type.Kind() == reflect.String:
			yf.Kind = yamlwalk.Text
		case f.Type.Kind() == reflect.Struct:
			yf.Kind, yf.Fields = yamlwalk.Section, fieldsOf(f.Type)
		default:
			panic(fmt.Sprintf("config: %s.%s: the walk has no kind for %s", t.Name(), f.Name, f.Type))
		}
		fields = append(fields, yf)
	}
	return fields
}

// defaultOf names the default of the leaf at path, for messages.
func defaultOf(path string) string {
	if path == "api.socket" {
		return "<run_dir>/" + socketName
	}
	v := reflect.ValueOf(Default())
	for _, key := range strings.Split(path, ".") {
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

func yamlKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return k
}
