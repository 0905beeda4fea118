package k3sconfig

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// serverSchema lists the keys of provider-k3s's api.K3sServerConfig
// (api/k3s_config.go at ProviderVersion) in its field order, each with its
// Go type. provider-k3s reads the cluster: block's config and providerConfig
// through that struct, so a key it lacks is dropped and a value of the wrong
// type stops the plugin. Every field there has the same json and yaml tag,
// both with omitempty; the list keys are exactly its StringListKeys.
//
// The list is the struct's schema (names and types), not its code: the
// struct type itself is built from it with reflect.StructOf (serverType), so
// that gopkg.in/yaml.v3 (the version provider-k3s pins, v3.0.1) and
// encoding/json treat it as they treat provider-k3s's struct.
const serverSchema = `
config string
debug bool
v int
vmodule string
log string
alsologtostderr bool
bind-address string
https-listen-port int
supervisor-port int
apiserver-port int
apiserver-bind-address string
advertise-address string
advertise-port int
tls-san []string
tls-san-security bool
data-dir string
cluster-cidr []string
service-cidr []string
service-node-port-range string
cluster-dns []string
cluster-domain string
flannel-backend string
flannel-ipv6-masq bool
flannel-external-ip bool
egress-selector-mode string
servicelb-namespace string
write-kubeconfig string
write-kubeconfig-mode string
write-kubeconfig-group string
helm-job-image string
token string
token-file string
agent-token string
agent-token-file string
server string
cluster-init bool
cluster-reset bool
cluster-reset-restore-path string
kube-apiserver-arg []string
etcd-arg []string
kube-controller-manager-arg []string
kube-scheduler-arg []string
kube-cloud-controller-manager-arg []string
kine-tls bool
datastore-endpoint string
datastore-cafile string
datastore-certfile string
datastore-keyfile string
etcd-expose-metrics bool
etcd-disable-snapshots bool
etcd-snapshot-name string
etcd-snapshot-schedule-cron string
etcd-snapshot-retention int
etcd-snapshot-dir string
etcd-snapshot-compress bool
etcd-s3 bool
etcd-s3-endpoint string
etcd-s3-endpoint-ca string
etcd-s3-skip-ssl-verify bool
etcd-s3-access-key string
etcd-s3-secret-key string
etcd-s3-bucket string
etcd-s3-region string
etcd-s3-folder string
etcd-s3-proxy string
etcd-s3-config-secret string
etcd-s3-insecure bool
etcd-s3-timeout time.Duration
default-local-storage-path string
disable []string
disable-scheduler bool
disable-cloud-controller bool
disable-kube-proxy bool
disable-network-policy bool
disable-helm-controller bool
disable-apiserver bool
disable-controller-manager bool
disable-etcd bool
embedded-registry bool
supervisor-metrics bool
node-name string
with-node-id bool
node-label []string
node-taint []string
image-credential-provider-bin-dir string
image-credential-provider-config string
docker bool
container-runtime-endpoint string
default-runtime string
image-service-endpoint string
disable-default-registry-endpoint bool
nonroot-devices bool
pause-image string
snapshotter string
private-registry string
system-default-registry string
airgap-extra-registry []string
node-ip []string
node-external-ip []string
node-internal-dns []string
node-external-dns []string
resolv-conf string
flannel-iface string
flannel-conf string
flannel-cni-conf string
vpn-auth string
vpn-auth-file string
kubelet-arg []string
kube-proxy-arg []string
protect-kernel-defaults bool
secrets-encryption bool
enable-pprof bool
rootless bool
prefer-bundled-bin bool
selinux bool
lb-server-port int
disable-agent bool
kube-controller-arg []string
kube-cloud-controller-arg []string
`

var goTypes = map[string]reflect.Type{
	"string":        reflect.TypeOf(""),
	"bool":          reflect.TypeOf(false),
	"int":           reflect.TypeOf(0),
	"[]string":      reflect.TypeOf([]string(nil)),
	"time.Duration": reflect.TypeOf(time.Duration(0)),
}

// serverType is api.K3sServerConfig as a type built from serverSchema;
// fieldOf maps a key to its field's index.
var serverType, fieldOf = func() (reflect.Type, map[string]int) {
	var fields []reflect.StructField
	index := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(serverSchema), "\n") {
		key, typ, _ := strings.Cut(line, " ")
		t, ok := goTypes[typ]
		if !ok {
			panic(fmt.Sprintf("k3sconfig: %s has the unknown type %s", key, typ))
		}
		index[key] = len(fields)
		fields = append(fields, reflect.StructField{
			Name: fmt.Sprintf("F%d", len(fields)),
			Type: t,
			Tag:  reflect.StructTag(fmt.Sprintf(`json:"%s,omitempty" yaml:"%s,omitempty"`, key, key)),
		})
	}
	return reflect.StructOf(fields), index
}()

// Keys are the keys provider-k3s passes to a k3s server, in its order.
func Keys() []string {
	keys := make([]string, serverType.NumField())
	for k, i := range fieldOf {
		keys[i] = k
	}
	return keys
}

// isList reports whether key is one of provider-k3s's StringListKeys: a
// []string field, to which its decodeOption turns a lone string into a list
// of one.
func isList(key string) bool {
	i, ok := fieldOf[key]
	return ok && serverType.Field(i).Type.Kind() == reflect.Slice
}
