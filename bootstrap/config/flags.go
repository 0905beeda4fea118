package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// defaultConfigPath is --config's default (a variable for the tests).
var defaultConfigPath = "/etc/twonode/config.yaml"

// leaf is one settable field of Config: a YAML key path, a flag, an
// environment variable.
type leaf struct {
	path  []string // YAML keys from the top, e.g. timers, probe_interval
	index []int    // reflect field index from Config
	typ   reflect.Type
	usage string
	group string // the top-level section, for --help
}

// field is the leaf's name in error messages: timers.probe_interval.
func (l leaf) field() string { return strings.Join(l.path, ".") }

// flagName is --timers-probe-interval without the dashes.
func (l leaf) flagName() string { return strings.ReplaceAll(strings.Join(l.path, "-"), "_", "-") }

// envName is the flag's environment twin: TWONODE_TIMERS_PROBE_INTERVAL.
func (l leaf) envName() string {
	return "TWONODE_" + strings.ToUpper(strings.ReplaceAll(l.flagName(), "-", "_"))
}

// leaves lists every leaf of Config in declaration order. The flags are
// derived from the struct, so a new field cannot lack one.
func leaves() []leaf {
	var out []leaf
	var walk func(t reflect.Type, path []string, index []int, prefix, group string)
	walk = func(t reflect.Type, path []string, index []int, prefix, group string) {
		for i := range t.NumField() {
			f := t.Field(i)
			p := append(path[:len(path):len(path)], yamlKey(f))
			ix := append(index[:len(index):len(index)], i)
			usage := f.Tag.Get("usage")
			if f.Type.Kind() == reflect.Struct {
				g := group
				if g == "" {
					g = yamlKey(f)
				}
				sub := ""
				if f.Type == reflect.TypeOf(Host{}) {
					sub = usage + " " // "this node's" + " name: ..."
				}
				walk(f.Type, p, ix, sub, g)
				continue
			}
			out = append(out, leaf{path: p, index: ix, typ: f.Type, usage: prefix + usage, group: group})
		}
	}
	walk(reflect.TypeOf(Config{}), nil, nil, "", "")
	return out
}

// Flags are the agent's flags: --config, and one per leaf of Config named
// after its YAML path (--node-name, --timers-probe-interval, ...), each with
// an environment twin (TWONODE_NODE_NAME, ...). A flag given on the command
// line beats its environment variable, which beats the config file, which
// beats the default shown in --help. Each call returns new flags.
func Flags() []cli.Flag {
	d := reflect.ValueOf(Default())
	flags := []cli.Flag{&cli.StringFlag{
		Name:      "config",
		Usage:     "YAML config file; the flags below override it (empty: flags only)",
		Value:     defaultConfigPath,
		EnvVars:   []string{"TWONODE_CONFIG"},
		TakesFile: true,
	}}
	for _, l := range leaves() {
		def := d.FieldByIndex(l.index)
		usage := l.usage + " (" + l.field() + ")"
		env := []string{l.envName()}
		group := l.group
		if group == "" {
			group = "general"
		}
		switch {
		case l.typ == durationType:
			d := time.Duration(def.Int())
			flags = append(flags, &cli.DurationFlag{Name: l.flagName(), Usage: usage, Category: group, EnvVars: env,
				Value: d, DefaultText: dur(d)})
		case l.typ.Kind() == reflect.Int:
			flags = append(flags, &cli.IntFlag{Name: l.flagName(), Usage: usage, Category: group, EnvVars: env,
				Value: int(def.Int())})
		case l.typ.Kind() == reflect.String:
			f := &cli.StringFlag{Name: l.flagName(), Usage: usage, Category: group, EnvVars: env, Value: def.String()}
			if l.field() == "api.socket" {
				f.DefaultText = "<run_dir>/" + socketName
			}
			flags = append(flags, f)
		default:
			panic("config: no flag type for " + l.field())
		}
	}
	return flags
}

// FromCLI builds the agent's config: the YAML file named by --config, then
// every flag (or environment twin) that was explicitly set, then Validate,
// once. When --config was left at its default and that file does not
// exist, the defaults stand in for it; a file named explicitly must exist.
// --config "" means no file at all.
func FromCLI(c *cli.Context) (*Config, error) {
	cfg := Default()
	cfg.API.Socket = "" // derived from run_dir unless the file or a flag sets it
	path := c.String("config")
	missing := false
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			d, err := decode(data)
			if err != nil {
				return nil, fmt.Errorf("config file %s:\n%w", path, err)
			}
			cfg = *d
		case errors.Is(err, fs.ErrNotExist) && !c.IsSet("config"):
			missing = true
		default:
			return nil, fmt.Errorf("config file: %w", err)
		}
	}

	v := reflect.ValueOf(&cfg).Elem()
	for _, l := range leaves() {
		name := l.flagName()
		if !c.IsSet(name) {
			continue
		}
		f := v.FieldByIndex(l.index)
		switch {
		case l.typ == durationType:
			f.SetInt(int64(c.Duration(name)))
		case l.typ.Kind() == reflect.Int:
			f.SetInt(int64(c.Int(name)))
		default:
			f.SetString(c.String(name))
		}
	}

	if err := cfg.finish(); err != nil {
		if missing {
			return nil, errors.Join(fmt.Errorf("config file %s does not exist, so flags must give node, peer and secret_file", path), err)
		}
		return nil, err
	}
	return &cfg, nil
}
