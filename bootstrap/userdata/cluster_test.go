package userdata_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

// The cluster: block is also checked against the k3s configuration
// provider-k3s writes from it (bootstrap/k3sconfig): what passes the
// block's own checks may still stop provider-k3s, or give k3s another
// datastore, an etcd of its own or another server to join.
func TestClusterAsProviderK3sWritesIt(t *testing.T) {
	const twonode = `twonode:
  enabled: true
  node: {name: edge-1, address: 10.99.0.1}
  peer: {name: edge-2, address: 10.99.0.2}
  secret_file: /oem/twonode/secret
`
	const head = "cluster:\n  cluster_token: shared-token\n  control_plane_host: 10.99.0.1\n  role: init\n"
	const provider = "  providerConfig:\n    cluster-init: \"no\"\n    datastore-endpoint: http://127.0.0.1:2379\n"
	const cidrs = "    cluster-cidr: 10.52.0.0/16\n    service-cidr: 10.53.0.0/16\n"
	for _, tc := range []struct{ name, cluster, want string }{
		{"extra options", head + provider + "    node-name: edge-1\n  config: |\n" + cidrs + "    tls-san: 10.99.0.10\n    disable: traefik\n", ""},
		{"a list key in providerConfig", head + provider + "    disable: traefik\n",
			"cluster.providerConfig: provider-k3s v4.10.3 stops on a value of the wrong type for disable"},
		{"config without the CIDRs", head + provider + "  config: |\n    node-name: edge-1\n",
			"cluster.config: must set cluster-cidr and service-cidr"},
		{"a boolean written true in providerConfig", head + provider + "    disable-etcd: \"true\"\n",
			"cluster.providerConfig: provider-k3s v4.10.3 stops on a value of the wrong type for disable-etcd"},
		{"disable-etcd", head + provider + "    disable-etcd: \"yes\"\n",
			"cluster: the k3s configuration provider-k3s v4.10.3 writes from this block (/etc/rancher/k3s/config.yaml) must not set disable-etcd"},
		{"datastore-endpoint in config too", head + provider + "  config: |\n" + cidrs + "    datastore-endpoint: http://127.0.0.1:2379\n",
			"cluster: the k3s configuration provider-k3s v4.10.3 writes from this block (/etc/rancher/k3s/config.yaml) must not set datastore-endpoint other than http://127.0.0.1:2379"},
		{"server in config", head + provider + "  config: |\n" + cidrs + "    server: https://10.99.0.2:6443\n",
			"cluster: the k3s configuration provider-k3s v4.10.3 writes from this block (/etc/rancher/k3s/config.yaml) must not set server"},
		{"cluster-init in config: jq fails", head + provider + "  config: |\n" + cidrs + "    cluster-init: true\n",
			"cluster: cluster-init is set both in config and by provider-k3s v4.10.3"},
		{"no role, cluster-init in config", "cluster:\n  cluster_token: t\n" + provider[:len("  providerConfig:\n")] + "    datastore-endpoint: http://127.0.0.1:2379\n  config: |\n" + cidrs + "    cluster-init: true\n",
			"cluster: the k3s configuration provider-k3s v4.10.3 writes from this block (/etc/rancher/k3s/config.yaml) must not set cluster-init"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := userdata.Parse([]byte(tc.cluster + twonode))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var list interface{ Unwrap() []error }
			if err == nil || !errors.As(err, &list) || len(list.Unwrap()) != 1 || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want one starting %q", err, tc.want)
			}
			for _, v := range []string{"shared-token", "10.52.0.0", "6443"} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("the error shows a value of the block (%s): %v", v, err)
				}
			}
		})
	}
}
