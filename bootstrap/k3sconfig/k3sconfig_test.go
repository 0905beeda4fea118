package k3sconfig

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-sdk/clusterplugin"
)

// The expectations of provider-k3s's own test of parseOptions
// (pkg/provider/provider_test.go, Test_parseOptions, at ProviderVersion):
// the same inputs must give the same bytes here.
func TestParseOptionsAsUpstream(t *testing.T) {
	for _, tc := range []struct {
		name          string
		c             clusterplugin.Cluster
		options, user string
	}{
		{"empty", clusterplugin.Cluster{}, `{}`, `{}`},
		{"init", clusterplugin.Cluster{ClusterToken: "token", ControlPlaneHost: "localhost", Role: "init"},
			`{"tls-san":["localhost"],"token":"token","cluster-init":true}`, `{}`},
		{"init, two nodes", clusterplugin.Cluster{ClusterToken: "token", ControlPlaneHost: "localhost", Role: "init",
			ProviderOptions: map[string]string{"cluster-init": "no", "datastore-endpoint": "localhost:2379"}},
			`{"cluster-init":false,"tls-san":["localhost"],"token":"token","datastore-endpoint":"localhost:2379"}`, `{}`},
		{"control plane", clusterplugin.Cluster{ClusterToken: "token", ControlPlaneHost: "localhost", Role: "controlplane"},
			`{"tls-san":["localhost"],"token":"token","server":"https://localhost:6443"}`, `{}`},
		{"control plane with options", clusterplugin.Cluster{ClusterToken: "token", ControlPlaneHost: "localhost", Role: "controlplane",
			Options: "disable-apiserver-lb: true\nenable-pprof: true"},
			`{"tls-san":["localhost"],"token":"token","server":"https://localhost:6443"}`, `{"enable-pprof":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := options(tc.c)
			if err != nil || string(o) != tc.options {
				t.Errorf("options = %s, %v; provider-k3s writes %s", o, err, tc.options)
			}
			u, err := userOptions(tc.c)
			if err != nil || string(u) != tc.user {
				t.Errorf("user options = %s, %v; provider-k3s writes %s", u, err, tc.user)
			}
		})
	}
}

// provider-k3s's decodeOptions (Test_decodeOptions upstream): a string with
// a comma becomes a list, a list key's lone string a list of one.
func TestDecodeOptions(t *testing.T) {
	got := decodeOptions(map[string]any{"a": "x,y", "b": "x", "cluster-cidr": "10.42.0.0/16", "c": 3})
	want := map[string]any{"a": []string{"x", "y"}, "b": "x", "cluster-cidr": []string{"10.42.0.0/16"}, "c": 3}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeOptions = %v, want %v", got, want)
	}
}

func TestSchema(t *testing.T) {
	keys := Keys()
	if len(keys) != 119 || keys[0] != "config" || keys[len(keys)-1] != "kube-cloud-controller-arg" {
		t.Errorf("%d keys from %s to %s; api.K3sServerConfig has 119, from config to kube-cloud-controller-arg", len(keys), keys[0], keys[len(keys)-1])
	}
	lists := 0
	for _, k := range keys {
		if isList(k) {
			lists++
		}
	}
	if lists != 21 { // len(api.StringListKeys)
		t.Errorf("%d list keys, provider-k3s has 21", lists)
	}
}

func twoNode(config string, provider map[string]string) clusterplugin.Cluster {
	p := map[string]string{"cluster-init": "no", "datastore-endpoint": "http://127.0.0.1:2379"}
	for k, v := range provider {
		p[k] = v
	}
	return clusterplugin.Cluster{ClusterToken: "secret-token", ControlPlaneHost: "10.99.0.1", Role: "init", Options: config, ProviderOptions: p}
}

// What provider-k3s does with blocks that look harmless, as this package
// derives it. Errors never show a value.
func TestServer(t *testing.T) {
	const cidrs = "cluster-cidr: 10.52.0.0/16\nservice-cidr: 10.53.0.0/16\n"
	for _, tc := range []struct {
		name   string
		c      clusterplugin.Cluster
		config string // the merged config.yaml as JSON, or
		err    string // the error's start
	}{
		{"the pair's block", twoNode("", nil),
			`{"cluster-init":false,"datastore-endpoint":"http://127.0.0.1:2379","tls-san":["10.99.0.1"],"token":"secret-token"}`, ""},
		{"an extra SAN through config: the lists are joined", twoNode(cidrs+"tls-san: 10.99.0.10\n", nil),
			`{"cluster-cidr":["10.52.0.0/16"],"cluster-init":false,"datastore-endpoint":"http://127.0.0.1:2379","service-cidr":["10.53.0.0/16"],"tls-san":["10.99.0.10","10.99.0.1"],"token":"secret-token"}`, ""},
		{"a key it does not know is dropped", twoNode(cidrs+"no-such-flag: 1\n", map[string]string{"cluster_root_path": "/"}),
			`{"cluster-cidr":["10.52.0.0/16"],"cluster-init":false,"datastore-endpoint":"http://127.0.0.1:2379","service-cidr":["10.53.0.0/16"],"tls-san":["10.99.0.1"],"token":"secret-token"}`, ""},
		{"datastore-endpoint in config too: the strings are joined", twoNode(cidrs+"datastore-endpoint: http://127.0.0.1:2379\n", nil),
			`{"cluster-cidr":["10.52.0.0/16"],"cluster-init":false,"datastore-endpoint":"http://127.0.0.1:2379http://127.0.0.1:2379","service-cidr":["10.53.0.0/16"],"tls-san":["10.99.0.1"],"token":"secret-token"}`, ""},
		{"disable-etcd: yes is read as true", twoNode("", map[string]string{"disable-etcd": "yes"}),
			`{"cluster-init":false,"datastore-endpoint":"http://127.0.0.1:2379","disable-etcd":true,"tls-san":["10.99.0.1"],"token":"secret-token"}`, ""},
		{"no role: config passes unfiltered, no tls-san", clusterplugin.Cluster{ClusterToken: "t", Options: cidrs + "anything: 1\n", ProviderOptions: map[string]string{"cluster-init": "no"}},
			`{"anything":1,"cluster-cidr":["10.52.0.0/16"],"cluster-init":false,"service-cidr":["10.53.0.0/16"],"token":"t"}`, ""},

		{"config without the CIDRs crashes the plugin", twoNode("node-name: edge-1\n", nil), "",
			"cluster.config: must set cluster-cidr and service-cidr"},
		{"config with a CIDR as a list", twoNode("cluster-cidr: [10.42.0.0/16]\nservice-cidr: 10.43.0.0/16\n", nil), "",
			"cluster.config: must set cluster-cidr (one value each"},
		{"config not a mapping", twoNode("- a\n", nil), "", "cluster.config: must be a YAML mapping"},
		{"disable-etcd: \"true\" is not a boolean to it", twoNode("", map[string]string{"disable-etcd": "true"}), "",
			"cluster.providerConfig: provider-k3s v4.10.3 stops on a value of the wrong type for disable-etcd "},
		{"tls-san in providerConfig is one string", twoNode("", map[string]string{"tls-san": "10.99.0.10"}), "",
			"cluster.providerConfig: provider-k3s v4.10.3 stops on a value of the wrong type for tls-san "},
		{"a list where config wants one value", twoNode(cidrs+"node-name: a,b\n", nil), "",
			"cluster.config: provider-k3s v4.10.3 stops on a value of the wrong type for node-name "},
		{"cluster-init in config and providerConfig: jq cannot add booleans", twoNode(cidrs+"cluster-init: true\n", nil), "",
			"cluster: cluster-init is set both in config and by provider-k3s"},
		{"cluster-init no and nothing else: jq cannot read the file", clusterplugin.Cluster{ProviderOptions: map[string]string{"cluster-init": "no"}}, "",
			"cluster: provider-k3s v4.10.3 writes a server option file jq cannot read"},
		{"worker", clusterplugin.Cluster{Role: "worker"}, "", "cluster.role: worker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := Server(tc.c)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("error %v, want one starting %q", err, tc.err)
				}
				for _, secret := range []string{"secret-token", "10.52.0.0/16", "http://"} {
					if strings.Contains(err.Error(), secret) && !strings.Contains(tc.err, secret) {
						t.Errorf("the error shows a value of the block: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(w.Config)
			if string(got) != tc.config {
				t.Errorf("%s:\n got %s\nwant %s", ConfigFile, got, tc.config)
			}
		})
	}
}
