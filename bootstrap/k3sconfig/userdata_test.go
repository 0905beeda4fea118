package k3sconfig_test

import (
	"encoding/json"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-sdk/clusterplugin"
	"gopkg.in/yaml.v3"

	"github.com/twonode-edge/twonode/bootstrap/k3sconfig"
	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

// TestDocumentedUserData derives, from each documented user-data file alone
// (docs/user-data/*.yaml, what a site flashes), the /etc/rancher/k3s/config.yaml
// provider-k3s writes at the version the image pins, and checks that it
// makes k3s what the pair needs: a server on this node's own Kine, the
// loopback address the agent has Kine listen on (the agent's configuration
// as the plugin renders it from the same file), without an embedded etcd,
// without joining another server, with the same token on both nodes, and
// with the pair's address, which follows the leader, among its
// certificate's names.
func TestDocumentedUserData(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "user-data", "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("docs/user-data: %d files, %v", len(files), err)
	}
	var tokens, endpoints []string
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// What provider-k3s reads: the cloud-config decoded into
			// clusterplugin.Config, as kairos-sdk's ClusterPlugin.onBoot
			// does (clusterplugin/plugin.go, v0.9.3, provider-k3s's pin).
			var cc clusterplugin.Config
			if err := yaml.Unmarshal(b, &cc); err != nil || cc.Cluster == nil {
				t.Fatalf("no cluster: block provider-k3s can read: %v", err)
			}
			w, err := k3sconfig.Server(*cc.Cluster)
			if err != nil {
				t.Fatal(err)
			}
			cfg := w.Config
			shown, _ := json.MarshalIndent(cfg, "", "  ")
			t.Logf("%s, as provider-k3s %s writes it:\n%s", k3sconfig.ConfigFile, k3sconfig.ProviderVersion, shown)

			// This node, as the twonode plugin reads the same file.
			res, err := userdata.Parse(b)
			if err != nil || res.State != userdata.Enabled {
				t.Fatalf("twonode: block: %v, %v", res.State, err)
			}
			agent := res.Block.AgentConfig()

			// This node's Kine: k3s's datastore-endpoint is the address
			// the agent makes Kine listen on (kine.listen, which the
			// agent passes as KINE_LISTEN_ADDRESS), over http (k3s talks
			// etcd's protocol to an http:// endpoint), on loopback.
			ep, _ := cfg["datastore-endpoint"].(string)
			if want := "http://" + agent.Kine.Listen; ep != want {
				t.Errorf("datastore-endpoint %q: this node's Kine is %s", ep, want)
			}
			if u, err := url.Parse(ep); err != nil || u.Scheme != "http" || !loopback(u.Host) {
				t.Errorf("datastore-endpoint %q is not a loopback http:// address", ep)
			}
			endpoints = append(endpoints, ep)

			// A k3s server on that datastore alone: cluster-init written
			// as false (true would start an embedded etcd), no server (it
			// would join the other node's k3s), no disable-etcd (k3s
			// refuses it without server, and with a datastore-endpoint:
			// pkg/cli/server/server.go, run).
			if v, ok := cfg["cluster-init"]; !ok || v != false {
				t.Errorf("cluster-init: %v (present: %v), want false", v, ok)
			}
			for _, k := range []string{"server", "disable-etcd", "disable-apiserver"} {
				if v, ok := cfg[k]; ok {
					t.Errorf("%s is set (%v): k3s would not serve on its own Kine", k, v)
				}
			}

			// Both servers share one datastore, hence one token.
			tok, _ := cfg["token"].(string)
			if tok == "" {
				t.Error("no token")
			}
			tokens = append(tokens, tok)

			// tls-san: the names clients may use. k3s adds the node's own
			// name and addresses itself; what the user-data must give is
			// the address that follows the leader, the pair's virtual IP
			// (twonode.vip), which control_plane_host names.
			var sans []string
			if l, ok := cfg["tls-san"].([]any); ok {
				for _, s := range l {
					if s, ok := s.(string); ok {
						sans = append(sans, s)
					}
				}
			}
			vip, err := netip.ParsePrefix(agent.VIP.Address)
			if err != nil {
				t.Fatalf("twonode.vip.address %q: %v", agent.VIP.Address, err)
			}
			if !slices.Contains(sans, vip.Addr().String()) {
				t.Errorf("tls-san %v lacks the pair's address %s", sans, vip.Addr())
			}

			// docs/first-boot.md shows node 1's file as provider-k3s
			// writes it (config is empty, so config.yaml is the options
			// file's content, which jq keeps in its order).
			if filepath.Base(f) == "node1.yaml" {
				doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "first-boot.md"))
				if err != nil {
					t.Fatal(err)
				}
				if string(w.UserOptions) != "{}" || !strings.Contains(string(doc), "\n"+string(w.Options)+"\n") {
					t.Errorf("docs/first-boot.md does not show %s as provider-k3s writes it for node1.yaml: %s", k3sconfig.ConfigFile, w.Options)
				}
			}

			// Nothing else: a key the documented files add later shows up here.
			for k := range cfg {
				if !slices.Contains([]string{"cluster-init", "datastore-endpoint", "tls-san", "token"}, k) {
					t.Errorf("config.yaml has %s, which this test does not check", k)
				}
			}
		})
	}
	if len(slices.Compact(slices.Sorted(slices.Values(tokens)))) != 1 {
		t.Errorf("the documented nodes' k3s tokens differ")
	}
	if len(slices.Compact(slices.Sorted(slices.Values(endpoints)))) != 1 {
		t.Errorf("the documented nodes' datastore endpoints differ: %v", endpoints)
	}
}

func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}
