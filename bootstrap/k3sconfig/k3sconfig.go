// Package k3sconfig derives, from a node's cluster: block alone, the k3s
// server configuration that provider-k3s (agent-provider-k3s, the Kairos
// plugin in github.com/kairos-io/provider-k3s) writes at the version the
// image pins, ProviderVersion. It re-implements provider-k3s's mapping, read
// from its source at that tag, and nothing else of it:
//
//   - pkg/provider/provider.go, parseOptions and decodeOptions: the block's
//     config (a YAML string) becomes /etc/rancher/k3s/config.d/90_userdata.yaml,
//     filtered through api.K3sServerConfig for a server; cluster_token, role,
//     control_plane_host and providerConfig become 99_userdata.yaml;
//   - parseFiles and proxyEnv/getDefaultNoProxy: the files, and the check of
//     config that makes the plugin crash;
//   - parseStages: jq merges config.d/*.yaml into /etc/rancher/k3s/config.yaml,
//     the one file k3s reads (k3s does not read config.d);
//   - api/k3s_config.go: the keys and types a server takes (schema.go).
//
// Both files are JSON despite their names. The same libraries do the work
// where provider-k3s uses a library: gopkg.in/yaml.v3 (v3.0.1, as
// provider-k3s pins), sigs.k8s.io/yaml's YAMLToJSON (v1.6.0 here, v1.5.0
// there) and encoding/json.
//
// Where provider-k3s would stop (logrus.Fatalf), crash (a failed type
// assertion) or make jq fail (which leaves config.yaml empty, and k3s then
// starts on a SQLite database of its own), Server returns an error instead.
// No error carries a value of the block: a token or a datastore endpoint
// with a password must not reach a log.
//
// Not modelled: the worker role (a k3s agent: the pair's nodes are both
// servers), the proxy environment file /etc/default/k3s (its content depends
// on the machine's addresses), import_local_images.
package k3sconfig

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/kairos-io/kairos-sdk/clusterplugin"
	"gopkg.in/yaml.v3"
	kyaml "sigs.k8s.io/yaml"
)

// ProviderVersion is the provider-k3s release the image copies (the
// Earthfile's PROVIDER_K3S_VERSION) and whose mapping this package follows.
const ProviderVersion = "v4.10.3"

// What provider-k3s writes for a k3s server (pkg/provider/provider.go:
// configurationPath, parseFiles, parseStages).
const (
	ConfigDir       = "/etc/rancher/k3s/config.d"
	UserOptionsFile = ConfigDir + "/90_userdata.yaml"
	OptionsFile     = ConfigDir + "/99_userdata.yaml"
	ConfigFile      = "/etc/rancher/k3s/config.yaml"
)

// Written is what provider-k3s's boot.before stage writes for a k3s server.
type Written struct {
	// UserOptions is UserOptionsFile: the block's config, as JSON.
	UserOptions []byte
	// Options is OptionsFile: token, cluster-init, server and tls-san from
	// the block, with providerConfig over them, as JSON.
	Options []byte
	// Config is ConfigFile, what k3s reads: jq's merge of both files.
	Config map[string]any
}

// Server derives what provider-k3s writes for a cluster: block whose role
// makes this node a k3s server (init, controlplane, or none).
func Server(c clusterplugin.Cluster) (Written, error) {
	if c.Role == clusterplugin.RoleWorker {
		return Written{}, fmt.Errorf("cluster.role: worker makes a k3s agent, which this package does not model")
	}
	// getDefaultNoProxy runs at every boot, proxy or not.
	if err := checkNoProxy(c.Options); err != nil {
		return Written{}, err
	}
	user, err := userOptions(c)
	if err != nil {
		return Written{}, err
	}
	options, err := options(c)
	if err != nil {
		return Written{}, err
	}
	config, err := merge(user, options)
	if err != nil {
		return Written{}, err
	}
	return Written{UserOptions: user, Options: options, Config: config}, nil
}

// userOptions is parseOptions' userOptions: config decoded as YAML, each
// string with a comma (and each string of a list key) made a list
// (decodeOptions), filtered through the server struct for a server role,
// then turned into JSON.
func userOptions(c clusterplugin.Cluster) ([]byte, error) {
	var in map[string]any
	if err := yaml.Unmarshal([]byte(c.Options), &in); err != nil {
		return nil, fmt.Errorf("cluster.config: must be a YAML mapping of k3s options: provider-k3s %s stops on anything else", ProviderVersion)
	}
	decoded := decodeOptions(in)
	out, err := yaml.Marshal(decoded)
	if err != nil {
		return nil, fmt.Errorf("cluster.config: cannot be encoded again: %w", err)
	}
	if server(c.Role) {
		v := reflect.New(serverType)
		if err := yaml.Unmarshal(out, v.Interface()); err != nil {
			return nil, typeProblem("cluster.config", decoded)
		}
		if out, err = yaml.Marshal(v.Interface()); err != nil {
			return nil, fmt.Errorf("cluster.config: cannot be encoded again: %w", err)
		}
	}
	j, err := kyaml.YAMLToJSON(out)
	if err != nil {
		return nil, fmt.Errorf("cluster.config: cannot be turned into JSON: %w", err)
	}
	return j, nil
}

// server reports whether parseOptions filters config through the server
// struct for this role (it does for init and controlplane only; with no
// role, config passes unfiltered, and the node is still a k3s server).
func server(r clusterplugin.Role) bool {
	return r == clusterplugin.RoleInit || r == clusterplugin.RoleControlPlane
}

// decodeOptions turns a string with a comma into a list, and a string of a
// list key into a list of one; other values pass as they are.
func decodeOptions(in map[string]any) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		s, ok := v.(string)
		switch parts := strings.Split(s, ","); {
		case !ok:
			out[k] = v
		case len(parts) > 1:
			out[k] = parts
		case isList(k):
			out[k] = []string{s}
		default:
			out[k] = s
		}
	}
	return out
}

// options is parseOptions' options: the server struct with the token, and
// for init and controlplane cluster-init (true for init), tls-san (the
// control-plane host) and server (for controlplane); then providerConfig
// decoded over it. cluster-init "no" is written as false although the
// struct's omitempty drops it.
func options(c clusterplugin.Cluster) ([]byte, error) {
	v := reflect.New(serverType)
	set(v.Elem(), "token", c.ClusterToken)
	if server(c.Role) {
		set(v.Elem(), "cluster-init", c.Role == clusterplugin.RoleInit)
		if c.Role == clusterplugin.RoleControlPlane {
			set(v.Elem(), "server", fmt.Sprintf("https://%s:6443", c.ControlPlaneHost))
		}
		set(v.Elem(), "tls-san", []string{c.ControlPlaneHost})
	}
	if len(c.ProviderOptions) > 0 {
		po, err := yaml.Marshal(c.ProviderOptions)
		if err != nil {
			return nil, fmt.Errorf("cluster.providerConfig: cannot be encoded: %w", err)
		}
		if err := yaml.Unmarshal(po, v.Interface()); err != nil {
			m := make(map[string]any, len(c.ProviderOptions))
			for k, s := range c.ProviderOptions {
				m[k] = s
			}
			return nil, typeProblem("cluster.providerConfig", m)
		}
	}
	out, err := json.Marshal(v.Interface())
	if err != nil {
		return nil, fmt.Errorf("the server options cannot be encoded: %w", err)
	}
	if ci, ok := c.ProviderOptions["cluster-init"]; ok && ci == "no" {
		out = append([]byte(`{"cluster-init":false,`), out[1:]...)
	}
	return out, nil
}

func set(v reflect.Value, key string, x any) {
	v.Field(fieldOf[key]).Set(reflect.ValueOf(x))
}

// typeProblem names the keys whose values the server struct does not take
// (yaml.v3 says which, with the value: it is not repeated here).
func typeProblem(field string, m map[string]any) error {
	var bad []string
	for k, val := range m {
		b, err := yaml.Marshal(map[string]any{k: val})
		if err == nil {
			err = yaml.Unmarshal(b, reflect.New(serverType).Interface())
		}
		if err != nil {
			bad = append(bad, k)
		}
	}
	slices.Sort(bad)
	return fmt.Errorf("%s: provider-k3s %s stops on a value of the wrong type for %s (a list where k3s takes one value, one value where it takes a list, or true/false, yes/no, on/off written otherwise)",
		field, ProviderVersion, strings.Join(bad, ", "))
}

// checkNoProxy follows getDefaultNoProxy, which reads config as JSON at
// every boot: when config holds anything, it must be a mapping whose
// cluster-cidr and service-cidr are single strings, or provider-k3s stops
// (not a mapping) or crashes (a failed type assertion).
func checkNoProxy(options string) error {
	j, err := kyaml.YAMLToJSON([]byte(options))
	var data map[string]any
	if err == nil {
		err = json.Unmarshal(j, &data)
	}
	if err != nil {
		return fmt.Errorf("cluster.config: must be a YAML mapping of k3s options: provider-k3s %s stops on anything else", ProviderVersion)
	}
	if data == nil {
		return nil
	}
	var missing []string
	for _, k := range []string{"cluster-cidr", "service-cidr"} {
		if _, ok := data[k].(string); !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cluster.config: must set %s (one value each, such as 10.42.0.0/16 and 10.43.0.0/16, k3s's defaults) whenever config is given: provider-k3s %s reads both at every boot and crashes without them",
			strings.Join(missing, " and "), ProviderVersion)
	}
	return nil
}

// merge is parseStages' jq program over config.d/*.yaml in name order
// (90_userdata.yaml, then 99_userdata.yaml): every key of every file added
// to the result with jq's +, so a key in both files has its values added:
// lists joined, strings joined, objects merged, null the other value, and
// anything else (two booleans) an error that leaves config.yaml empty.
func merge(files ...[]byte) (map[string]any, error) {
	out := map[string]any{}
	for _, f := range files {
		var m map[string]any
		if err := json.Unmarshal(f, &m); err != nil {
			return nil, fmt.Errorf("cluster: provider-k3s %s writes a server option file jq cannot read: k3s would start with an empty %s", ProviderVersion, ConfigFile)
		}
		for _, k := range sortedKeys(m) {
			sum, ok := jqAdd(out[k], m[k])
			if !ok {
				return nil, fmt.Errorf("cluster: %s is set both in config and by provider-k3s %s from the rest of the block, as values jq cannot add: its merge fails and k3s would start with an empty %s (on a SQLite database of its own)", k, ProviderVersion, ConfigFile)
			}
			out[k] = sum
		}
	}
	return out, nil
}

// jqAdd is jq's + on JSON values.
func jqAdd(a, b any) (any, bool) {
	switch {
	case a == nil:
		return b, true
	case b == nil:
		return a, true
	}
	switch x := a.(type) {
	case float64:
		if y, ok := b.(float64); ok {
			return x + y, true
		}
	case string:
		if y, ok := b.(string); ok {
			return x + y, true
		}
	case []any:
		if y, ok := b.([]any); ok {
			return append(slices.Clone(x), y...), true
		}
	case map[string]any:
		if y, ok := b.(map[string]any); ok {
			m := make(map[string]any, len(x)+len(y))
			for k, v := range x {
				m[k] = v
			}
			for k, v := range y {
				m[k] = v
			}
			return m, true
		}
	}
	return nil, false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
