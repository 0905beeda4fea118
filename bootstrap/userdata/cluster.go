package userdata

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/kairos-io/kairos-sdk/clusterplugin"
	"gopkg.in/yaml.v3"

	"github.com/twonode-edge/twonode/bootstrap/k3sconfig"
	"github.com/twonode-edge/twonode/bootstrap/yamlwalk"
)

// This file checks the cloud-config's cluster: block, provider-k3s's
// input, against what a pair needs: each k3s server on its own node's
// Kine, reached at the pair's address. No value of it is ever shown.

// checkControlPlaneHost: provider-k3s puts control_plane_host in k3s's
// tls-san, and kubeconfigs and joining workers use it, so it must be the
// address that follows the leader. An address literal other than the
// pair's address is a mistake; a name cannot be checked here.
func checkControlPlaneHost(host string, b *Block) (warning string, err error) {
	if !b.VIP.On() {
		return "twonode.vip: absent: kubeconfigs and workers reach k3s at cluster.control_plane_host, one address, which stops answering when its node does; give the pair an address that follows the leader (docs/first-boot.md)", nil
	}
	vip, perr := netip.ParsePrefix(b.VIP.Address)
	if perr != nil {
		return "", nil // twonode.vip.address has its own error
	}
	if a, perr := netip.ParseAddr(host); perr != nil {
		return fmt.Sprintf("cluster.control_plane_host: %q is a name: it must resolve to the pair's address %s, or kubeconfigs stop working when this node does", host, vip.Addr()), nil
	} else if a.Unmap() != vip.Addr() {
		return "", fmt.Errorf("cluster.control_plane_host: must be the pair's address %s (twonode.vip.address): provider-k3s puts it in k3s's certificate, and kubeconfigs and joining workers use it, so it must follow the leader (got %s)", vip.Addr(), a)
	}
	return "", nil
}

// checkCluster reads provider-k3s's cluster: block and checks that it makes
// k3s keep its data in this node's Kine, the way both servers of a pair
// must: role init (or none), cluster-init "no", the same token on both
// nodes, datastore-endpoint the local Kine. No value of the block is shown:
// a datastore endpoint can hold a password.
func checkCluster(n *yaml.Node) (*clusterplugin.Cluster, []error) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return &clusterplugin.Cluster{}, []error{fmt.Errorf("cluster (line %d): has no value: provider-k3s needs cluster_token, role and providerConfig (see docs/first-boot.md)", n.Line)}
	}
	if n.Kind != yaml.MappingNode {
		return nil, []error{fmt.Errorf("cluster (line %d): must be a mapping (cluster_token, role, providerConfig, ...), not %s", n.Line, yamlwalk.KindName(n))}
	}
	var c clusterplugin.Cluster
	if err := n.Decode(&c); err != nil {
		return nil, []error{fmt.Errorf("cluster (line %d): provider-k3s cannot read this block: a value has the wrong type (%s)", n.Line, typeProblem(err))}
	}
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cluster.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.Role {
	case "", clusterplugin.RoleInit:
	case clusterplugin.RoleControlPlane:
		add("role", "must be init on both nodes of a pair: each is a k3s server on its own node's Kine, and controlplane would make this node's k3s join the other node's at control_plane_host (got %q)", string(c.Role))
	case clusterplugin.RoleWorker:
		add("role", "must be init on both nodes of a pair: each is a k3s server on its own node's Kine, and worker would make this node a k3s agent without a datastore (got %q)", string(c.Role))
	default:
		add("role", "must be init on both nodes of a pair (got %q)", string(c.Role))
	}
	if strings.TrimSpace(c.ClusterToken) == "" {
		add("cluster_token", "required: both k3s servers share one datastore and must use the same token")
	}
	switch ep, ok := c.ProviderOptions["datastore-endpoint"]; {
	case !ok || ep == "":
		add("providerConfig.datastore-endpoint", "required: %s, this node's Kine, so that k3s keeps its data in the pair's PostgreSQL", K3sDatastoreEndpoint)
	case ep != K3sDatastoreEndpoint:
		add("providerConfig.datastore-endpoint", "must be %s, this node's Kine, so that k3s keeps its data in the pair's PostgreSQL (got another value)", K3sDatastoreEndpoint)
	}
	if c.Role == clusterplugin.RoleInit && c.ProviderOptions["cluster-init"] != "no" {
		add("providerConfig.cluster-init", `must be "no" with role init: the datastore is Kine, not an embedded etcd that k3s would start`)
	}
	if len(errs) == 0 {
		errs = checkWritten(c)
	}
	return &c, errs
}

// checkWritten derives the k3s configuration provider-k3s writes from the
// block (k3sconfig, at the version the image pins) and checks what the
// pair needs of it: config and providerConfig may add k3s options, but not
// ones that make provider-k3s stop or crash, nor change the datastore or
// make k3s start an etcd of its own or join another server. No value is
// shown.
func checkWritten(c clusterplugin.Cluster) []error {
	w, err := k3sconfig.Server(c)
	if err != nil {
		return []error{err}
	}
	var errs []error
	add := func(key, why string) {
		errs = append(errs, fmt.Errorf("cluster: the k3s configuration provider-k3s %s writes from this block (%s) must not set %s (set in config or providerConfig): %s",
			k3sconfig.ProviderVersion, k3sconfig.ConfigFile, key, why))
	}
	if ep, _ := w.Config["datastore-endpoint"].(string); ep != K3sDatastoreEndpoint {
		add("datastore-endpoint other than "+K3sDatastoreEndpoint, "a datastore-endpoint in config is joined to providerConfig's, and k3s would use neither this node's Kine")
	}
	if w.Config["cluster-init"] == true {
		add("cluster-init", "k3s would start an embedded etcd instead of using Kine")
	}
	if _, ok := w.Config["server"]; ok {
		add("server", "k3s would join another server's cluster instead of serving from this node's Kine")
	}
	if w.Config["disable-etcd"] == true {
		add("disable-etcd", "k3s refuses it without server (and newer k3s releases with a datastore-endpoint)")
	}
	if w.Config["disable-apiserver"] == true {
		add("disable-apiserver", "this node's k3s would serve no API from its Kine (and newer k3s releases refuse it with a datastore-endpoint)")
	}
	return errs
}

// typeProblem keeps yaml.v3's line numbers and type names but none of the
// values it quotes.
func typeProblem(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return "unreadable"
	}
	var out []string
	for _, e := range te.Errors {
		if i := strings.Index(e, "`"); i >= 0 {
			if j := strings.LastIndex(e, "`"); j > i {
				e = e[:i] + "<value>" + e[j+1:]
			}
		}
		out = append(out, e)
	}
	return strings.Join(out, "; ")
}
