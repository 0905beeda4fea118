package userdata_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

// examplePEMs are the inline CA, certificate and key of
// docs/user-data/node1-witness.yaml.
func examplePEMs(t testing.TB) (ca, cert, key string) {
	t.Helper()
	var doc struct {
		Twonode struct {
			Witness struct{ CA, Cert, Key string }
		}
	}
	if err := yaml.Unmarshal(docs(t, "node1-witness.yaml"), &doc); err != nil {
		t.Fatal(err)
	}
	w := doc.Twonode.Witness
	if w.CA == "" || w.Cert == "" || w.Key == "" {
		t.Fatalf("node1-witness.yaml has no inline ca, cert and key")
	}
	return w.CA, w.Cert, w.Key
}

// indent makes a PEM a YAML literal block's content under a witness key.
func indent(pem string) string {
	return "|\n      " + strings.ReplaceAll(strings.TrimSpace(pem), "\n", "\n      ") + "\n"
}

// The documented witness example is node1.yaml plus a witness with inline
// PEMs: the agent reads them at the paths the stages write them to, the
// other settings over the agent's defaults.
func TestDocumentedWitnessUserData(t *testing.T) {
	res, err := userdata.Parse(docs(t, "node1-witness.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := userdata.Parse(docs(t, "node1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ca, cert, key := examplePEMs(t)
	w := res.Block.Witness
	if w.CA != ca || w.Cert != cert || string(w.Key.Reveal()) != key || w.CAFile != "" || w.CertFile != "" || w.KeyFile != "" {
		t.Errorf("TLS material %+v", w)
	}
	want := plain.Block.AgentConfig()
	want.Witness = config.Default().Witness
	want.Witness.Endpoints = "https://10.0.0.21:2379,https://10.0.0.22:2379,https://10.0.0.23:2379"
	want.Witness.Prefix = "/twonode/site-0042/"
	want.Witness.CAFile = userdata.AgentWitnessCAPath
	want.Witness.CertFile = userdata.AgentWitnessCertPath
	want.Witness.KeyFile = userdata.AgentWitnessKeyPath
	got := res.Block.AgentConfig()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AgentConfig\n%+v\nwant\n%+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the agent refuses it: %v", err)
	}
}

// witnessBase is a valid block with a witness whose TLS material is in
// files; the cases below edit it.
const witnessBase = `twonode:
  enabled: true
  node: {name: a, address: 10.99.0.1}
  peer: {name: b, address: 10.99.0.2}
  secret_file: /oem/twonode/secret
  failover: manual
  witness:
    endpoints: https://10.0.0.21:2379, https://10.0.0.22:2379
    prefix: /twonode/site-0042/
    ca_file: /oem/twonode/witness-ca.pem
    cert_file: /oem/twonode/witness.crt
    key_file: /oem/twonode/witness.key
`

// Files are used where they are; a list and one string of endpoints are the
// same; every setting reaches the agent.
func TestWitnessWithFiles(t *testing.T) {
	for name, cc := range map[string]string{
		"one string": witnessBase,
		"a list": strings.Replace(witnessBase, "    endpoints: https://10.0.0.21:2379, https://10.0.0.22:2379\n",
			"    endpoints:\n      - https://10.0.0.21:2379\n      - https://10.0.0.22:2379\n", 1),
		"a flow list": strings.Replace(witnessBase, "    endpoints: https://10.0.0.21:2379, https://10.0.0.22:2379\n",
			"    endpoints: [https://10.0.0.21:2379, https://10.0.0.22:2379]\n", 1),
	} {
		t.Run(name, func(t *testing.T) {
			cc := cc + "    dial_timeout: 3s\n    request_timeout: 2s\n    lease_ttl: 20s\n    unreachable: promote\n    watchdog: /dev/watchdog1\n    watchdog_timeout: 4s\n"
			res, err := userdata.Parse([]byte(cc))
			if err != nil {
				t.Fatal(err)
			}
			got := res.Block.AgentConfig()
			want := config.Witness{
				Endpoints: "https://10.0.0.21:2379,https://10.0.0.22:2379", Prefix: "/twonode/site-0042/",
				CAFile: "/oem/twonode/witness-ca.pem", CertFile: "/oem/twonode/witness.crt", KeyFile: "/oem/twonode/witness.key",
				DialTimeout: 3 * time.Second, RequestTimeout: 2 * time.Second, LeaseTTL: 20 * time.Second,
				Unreachable: "promote", Watchdog: "/dev/watchdog1", WatchdogTimeout: 4 * time.Second,
			}
			if got.Witness != want || got.Failover != "manual" {
				t.Errorf("witness %+v failover %q\nwant %+v manual", got.Witness, got.Failover, want)
			}
			if w := res.Block.Witness; !reflect.DeepEqual(w.Endpoints, []string{"https://10.0.0.21:2379", "https://10.0.0.22:2379"}) || w.CA != "" || w.Key != "" {
				t.Errorf("block's witness %+v", w)
			}
		})
	}
}

// No witness: the agent's defaults, no witness; an empty section or empty
// endpoints alone are no witness either.
func TestNoWitness(t *testing.T) {
	head, _, _ := strings.Cut(witnessBase, "  witness:\n")
	for name, section := range map[string]string{"absent": "", "empty": "  witness:\n", "empty endpoints": "  witness: {endpoints: []}\n"} {
		res, err := userdata.Parse([]byte(head + section))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := res.Block.AgentConfig().Witness; got != config.Default().Witness || res.Block.Witness.On() {
			t.Errorf("%s: witness %+v", name, got)
		}
	}
}

// otherKey is a valid private key that is not the example certificate's.
func otherKey(t *testing.T) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// keyMaterial marks the key-like values of the cases below: it must never
// be in a message.
const keyMaterial = "c2VjcmV0LWtleS1tYXRlcmlhbA=="

// Every problem of the witness section, by the exact message the operator
// reads. Lines refer to witnessBase (witness at line 7).
func TestWitnessInvalid(t *testing.T) {
	ca, cert, key := examplePEMs(t)
	tlsFiles := "    ca_file: /oem/twonode/witness-ca.pem\n    cert_file: /oem/twonode/witness.crt\n    key_file: /oem/twonode/witness.key\n"
	inline := "    ca: " + indent(ca) + "    cert: " + indent(cert) + "    key: " + indent(key)
	garbledKey := "-----BEGIN PRIVATE KEY-----\n" + keyMaterial + "\n-----END PRIVATE KEY-----\n"
	for _, c := range []struct {
		name     string
		old, new string
		want     []string
	}{
		{"inline PEMs are valid", tlsFiles, inline, nil},
		{"no endpoints, other keys set", "    endpoints: https://10.0.0.21:2379, https://10.0.0.22:2379\n", "",
			[]string{"twonode.witness.endpoints: required with the witness's other keys (prefix, ca_file, cert_file, key_file): the https:// URLs of the witness's etcd cluster; remove the witness section for a pair that decides alone"}},
		{"empty endpoints, other keys set", "    endpoints: https://10.0.0.21:2379, https://10.0.0.22:2379\n", "    endpoints: []\n    lease_ttl: 20s\n",
			[]string{"twonode.witness.endpoints (line 8): required with the witness's other keys (prefix, ca_file, cert_file, key_file, lease_ttl): the https:// URLs of the witness's etcd cluster; remove the witness section for a pair that decides alone"}},
		{"http endpoint", "https://10.0.0.22:2379", "http://10.0.0.22:2379",
			[]string{`twonode.witness.endpoints (line 8): must be https:// URLs: the witness decides who may write, so it is reached over TLS only (got "http://10.0.0.22:2379")`}},
		{"endpoint list with a mapping", "    endpoints: https://10.0.0.21:2379, https://10.0.0.22:2379\n", "    endpoints:\n      - https://10.0.0.21:2379\n      - {url: https://10.0.0.22:2379}\n",
			[]string{"twonode.witness.endpoints (line 10): must be a list of single values (or one value); item 2 is not one"}},
		{"endpoints a mapping", "    endpoints: https://10.0.0.21:2379, https://10.0.0.22:2379\n", "    endpoints: {a: https://10.0.0.21:2379}\n",
			[]string{"twonode.witness.endpoints (line 8): must be a single value, not a mapping"}},
		{"ca and ca_file", tlsFiles, "    ca: " + indent(ca) + tlsFiles,
			[]string{"twonode.witness.ca_file (line 22): give either ca or ca_file, not both"}},
		{"no ca", "    ca_file: /oem/twonode/witness-ca.pem\n", "",
			[]string{"twonode.witness.ca: required with a witness: the CA certificates that sign the etcd servers' certificates, inline PEM, or ca_file, the path of a file holding them"}},
		{"no cert", "    cert_file: /oem/twonode/witness.crt\n", "",
			[]string{"twonode.witness.cert: required with a witness: this node's client certificate for etcd, inline PEM, or cert_file, the path of a file holding it"}},
		{"no key", "    key_file: /oem/twonode/witness.key\n", "",
			[]string{"twonode.witness.key: required with a witness: the client certificate's private key, inline PEM, or key_file, the path of a file holding it"}},
		{"ca not PEM", "    ca_file: /oem/twonode/witness-ca.pem\n", "    ca: /oem/twonode/witness-ca.pem\n",
			[]string{"twonode.witness.ca (line 10): must be PEM: one or more blocks from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----, and nothing else"}},
		{"ca with text around", "    ca_file: /oem/twonode/witness-ca.pem\n", "    ca: " + indent("subject=CN = example\n"+ca),
			[]string{"twonode.witness.ca (line 10): must be PEM: one or more blocks from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----, and nothing else"}},
		{"ca holds a key", "    ca_file: /oem/twonode/witness-ca.pem\n", "    ca: " + indent(ca+key),
			[]string{`twonode.witness.ca (line 10): must hold certificates only: PEM block 2 is "PRIVATE KEY", not CERTIFICATE`}},
		{"ca garbled", "    ca_file: /oem/twonode/witness-ca.pem\n", "    ca: " + indent("-----BEGIN CERTIFICATE-----\n"+keyMaterial+"\n-----END CERTIFICATE-----"),
			[]string{"twonode.witness.ca (line 10): PEM block 1 is not a certificate that can be read (X.509, DER inside the PEM)"}},
		{"key garbled", "    key_file: /oem/twonode/witness.key\n", "    key: " + indent(garbledKey),
			[]string{"twonode.witness.key (line 12): is not a private key that can be read (PKCS #8, PKCS #1 or SEC 1, DER inside the PEM)"}},
		{"key not PEM", "    key_file: /oem/twonode/witness.key\n", "    key: " + keyMaterial + "\n",
			[]string{"twonode.witness.key (line 12): must be PEM: one block from -----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY----- (or EC PRIVATE KEY, RSA PRIVATE KEY), and nothing else"}},
		{"two keys", "    key_file: /oem/twonode/witness.key\n", "    key: " + indent(key+key),
			[]string{"twonode.witness.key (line 12): must be one private key (got 2 PEM blocks)"}},
		{"key encrypted", "    key_file: /oem/twonode/witness.key\n", "    key: " + indent(strings.ReplaceAll(garbledKey, "PRIVATE KEY", "ENCRYPTED PRIVATE KEY")),
			[]string{"twonode.witness.key (line 12): is encrypted: the agent has no passphrase for it; decrypt it first (openssl pkey -in key.pem -out plain.pem)"}},
		{"key is a certificate", "    key_file: /oem/twonode/witness.key\n", "    key: " + indent(cert),
			[]string{`twonode.witness.key (line 12): must be a private key: the PEM block is "CERTIFICATE", not PRIVATE KEY`}},
		{"key of another certificate", tlsFiles, "    ca: " + indent(ca) + "    cert: " + indent(cert) + "    key: " + indent(otherKey(t)),
			[]string{"twonode.witness.key (line 33): does not belong to witness.cert: the certificate is for another key"}},
		{"key_file holding the key itself", "    key_file: /oem/twonode/witness.key\n", "    key_file: \"" + strings.ReplaceAll(garbledKey, "\n", `\n`) + "\"\n",
			[]string{"twonode.witness.key_file (line 12): must be the absolute path of a file holding the client key, not the key itself (got a relative value of 83 characters)"}},
		{"ca_file under /etc/twonode", "/oem/twonode/witness-ca.pem", "/etc/twonode/witness-ca.pem",
			[]string{`twonode.witness.ca_file (line 10): must not be under /etc/twonode: the boot stages write the inline PEMs there, and /etc is rebuilt at every boot; keep it on a persistent path such as /oem/twonode/witness-ca.pem (got "/etc/twonode/witness-ca.pem")`}},
		{"cert_file not plain", "/oem/twonode/witness.crt", "/oem/twonode/my cert.crt",
			[]string{`twonode.witness.cert_file (line 11): must be a plain absolute path (letters, digits and . _ @ + : - /, no .. or //) (got "/oem/twonode/my cert.crt")`}},
		{"unknown key", "    prefix: /twonode/site-0042/\n", "    prefix: /twonode/site-0042/\n    username: edge\n",
			[]string{"twonode.witness.username (line 10): unknown key; twonode.witness has endpoints, prefix, ca, ca_file, cert, cert_file, key, key_file, dial_timeout, request_timeout, lease_ttl, unreachable, watchdog, watchdog_timeout"}},
		{"unreachable unknown", "  witness:\n", "  witness:\n    unreachable: panic\n",
			[]string{`twonode.witness.unreachable (line 8): must be wait or promote (got "panic")`}},
		{"no prefix", "    prefix: /twonode/site-0042/\n", "",
			[]string{"twonode.witness.prefix: required with a witness: a key prefix unique to this pair, such as /twonode/site-042/"}},
		{"lease_ttl without unit", "  witness:\n", "  witness:\n    lease_ttl: 10\n",
			[]string{"twonode.witness.lease_ttl (line 8): a duration needs a unit, such as 10ms, 10s or 10m (got 10)"}},
		{"watchdog_timeout too long", "  witness:\n", "  witness:\n    watchdog_timeout: 4s\n",
			[]string{"twonode.witness.watchdog_timeout (line 8): must be at most lease_ttl/2 - request_timeout - probe_interval (3.5s), or a hung agent's node would reset after its lease expired (got 4s)"}},
		{"failover maybe", "  failover: manual\n", "  failover: maybe\n",
			[]string{`twonode.failover (line 6): must be auto or manual (got "maybe")`}},
		{"in the block's order", "  failover: manual\n", "  failover: maybe\n  timers: {boot_grace: 2h}\n" +
			"  api: {peer_port: 0}\n  postgres: {port: 0}\n  secret: short\n",
			[]string{
				"twonode.secret_file (line 5): give either secret or secret_file, not both",
				`twonode.failover (line 6): must be auto or manual (got "maybe")`,
				"twonode.timers.boot_grace (line 7): must be between 0s and 1h (got 2h)",
				"twonode.postgres.port (line 9): must be between 1 and 65535 (got 0)",
				"twonode.api.peer_port (line 8): must be between 1 and 65535 (got 0)",
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(witnessBase, c.old) {
				t.Fatalf("the base has no %q", c.old)
			}
			cc := strings.Replace(witnessBase, c.old, c.new, 1)
			res, err := userdata.Parse([]byte(cc))
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("problems:\n%s\nwant:\n%s\nin:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"), cc)
			}
			if err == nil && res.State == userdata.Enabled {
				if c := res.Block.AgentConfig(); c.Validate() != nil {
					err := c.Validate()
					t.Errorf("accepted, but the agent refuses it: %v", err)
				}
			}
			for _, s := range []string{keyMaterial, "MIGHAgEAMBMGByqGSM49", "MIIB"} {
				if err != nil && strings.Contains(err.Error(), s) {
					t.Errorf("a PEM's content is in the message: %v", err)
				}
			}
		})
	}
}

// The inline key prints as [redacted] whatever prints the block; the
// certificates, which are public, print as they are.
func TestWitnessKeyNeverPrinted(t *testing.T) {
	res, err := userdata.Parse(docs(t, "node1-witness.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, cert, key := examplePEMs(t)
	body := strings.Split(strings.TrimSpace(key), "\n")[1] // a line of base64
	b := res.Block
	j, _ := json.Marshal(b)
	y, _ := yaml.Marshal(b)
	for _, s := range []string{fmt.Sprint(b), fmt.Sprintf("%v %+v %#v %s %q", *b, *b, b.Witness, b.Witness.Key, b.Witness.Key), string(j), string(y)} {
		if strings.Contains(s, body) {
			t.Errorf("the key is printed: %s", s)
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("no [redacted] in %s", s)
		}
	}
	if !strings.Contains(fmt.Sprintf("%+v", *b), strings.Split(cert, "\n")[1]) {
		t.Errorf("the certificate is not printed as it is")
	}
}
