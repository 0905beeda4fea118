package userdata

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/yamlwalk"
)

// witnessFields is the schema of the twonode.witness: section, the
// agent's witness: (config.Witness) with its TLS material inline or as files.
var witnessFields = []yamlwalk.Field{
	{Key: "endpoints", Kind: yamlwalk.List},
	{Key: "prefix"},
	{Key: "ca"},
	{Key: "ca_file"},
	{Key: "cert"},
	{Key: "cert_file"},
	{Key: "key", Secret: true},
	{Key: "key_file"},
	{Key: "dial_timeout", Kind: yamlwalk.Duration},
	{Key: "request_timeout", Kind: yamlwalk.Duration},
	{Key: "lease_ttl", Kind: yamlwalk.Duration},
	{Key: "unreachable"},
	{Key: "watchdog"},
	{Key: "watchdog_timeout", Kind: yamlwalk.Duration},
}

// Witness is the pair's third vote: an etcd cluster both nodes reach. With
// no endpoints the pair decides alone.
type Witness struct {
	Endpoints []string
	Prefix    string
	// CA, Cert and Key are inline PEM, which the boot stages write to
	// AgentWitnessCAPath, AgentWitnessCertPath and AgentWitnessKeyPath;
	// CAFile, CertFile and KeyFile are files the site provisions, used
	// where they are. At most one of each pair is set, one with endpoints.
	CA, Cert                  string
	Key                       Secret
	CAFile, CertFile, KeyFile string
	DialTimeout               time.Duration
	RequestTimeout            time.Duration
	LeaseTTL                  time.Duration
	Unreachable               string
	Watchdog                  string
	WatchdogTimeout           time.Duration
}

// On reports whether a witness is configured.
func (w Witness) On() bool { return len(w.Endpoints) > 0 }

// witness builds the section from the decoded leaves over the agent's
// defaults.
func (set leaves) witness(def config.Witness) Witness {
	return Witness{
		Endpoints:       config.Witness{Endpoints: set.str("witness.endpoints", def.Endpoints)}.EndpointList(),
		Prefix:          set.str("witness.prefix", def.Prefix),
		CA:              set.str("witness.ca", ""),
		Cert:            set.str("witness.cert", ""),
		Key:             Secret(set.str("witness.key", "")),
		CAFile:          set.str("witness.ca_file", def.CAFile),
		CertFile:        set.str("witness.cert_file", def.CertFile),
		KeyFile:         set.str("witness.key_file", def.KeyFile),
		DialTimeout:     set.dur("witness.dial_timeout", def.DialTimeout),
		RequestTimeout:  set.dur("witness.request_timeout", def.RequestTimeout),
		LeaseTTL:        set.dur("witness.lease_ttl", def.LeaseTTL),
		Unreachable:     set.str("witness.unreachable", def.Unreachable),
		Watchdog:        set.str("witness.watchdog", def.Watchdog),
		WatchdogTimeout: set.dur("witness.watchdog_timeout", def.WatchdogTimeout),
	}
}

// agent is the agent's witness configuration: the inline PEMs at the paths
// the boot stages write them to.
func (w Witness) agent() config.Witness {
	pick := func(inline, file, path string) string {
		if inline != "" {
			return path
		}
		return file
	}
	return config.Witness{
		Endpoints:       strings.Join(w.Endpoints, ","),
		CAFile:          pick(w.CA, w.CAFile, AgentWitnessCAPath),
		CertFile:        pick(w.Cert, w.CertFile, AgentWitnessCertPath),
		KeyFile:         pick(string(w.Key), w.KeyFile, AgentWitnessKeyPath),
		Prefix:          w.Prefix,
		DialTimeout:     w.DialTimeout,
		RequestTimeout:  w.RequestTimeout,
		LeaseTTL:        w.LeaseTTL,
		Unreachable:     w.Unreachable,
		Watchdog:        w.Watchdog,
		WatchdogTimeout: w.WatchdogTimeout,
	}
}

const witnessWhy = "the boot stages write the inline PEMs there, and /etc is rebuilt at every boot"

// witnessSources are the witness's TLS files, each inline or a file.
var witnessSources = []source{
	{
		inline: "witness.ca", file: "witness.ca_file",
		required: "required with a witness: the CA certificates that sign the etcd servers' certificates, inline PEM, or ca_file, the path of a file holding them",
		check:    certsProblem,
		holding:  "the CA certificates", itself: "the PEM itself",
		why: witnessWhy, example: "/oem/twonode/witness-ca.pem",
	},
	{
		inline: "witness.cert", file: "witness.cert_file",
		required: "required with a witness: this node's client certificate for etcd, inline PEM, or cert_file, the path of a file holding it",
		check:    certsProblem,
		holding:  "the client certificate", itself: "the PEM itself",
		why: witnessWhy, example: "/oem/twonode/witness.crt",
	},
	{
		inline: "witness.key", file: "witness.key_file",
		required: "required with a witness: the client certificate's private key, inline PEM, or key_file, the path of a file holding it",
		check:    keyProblem,
		holding:  "the client key", itself: "the key itself",
		why: witnessWhy, example: "/oem/twonode/witness.key",
	},
}

// witness checks the witness: section with the block's own rules: the
// endpoints that the other keys need, its three TLS sources, and the
// inline key against the inline certificate. config.Validate checks the
// rest (the endpoints' form, the prefix, the timers, the watchdog).
func (f *findings) witness(w Witness) {
	if !w.On() {
		var set []string
		for _, fl := range witnessFields {
			if _, ok := f.set["witness."+fl.Key]; ok && fl.Key != "endpoints" {
				set = append(set, fl.Key)
			}
		}
		if len(set) > 0 {
			f.add("witness.endpoints", "required with the witness's other keys (%s): the https:// URLs of the witness's etcd cluster; remove the witness section for a pair that decides alone",
				strings.Join(set, ", "))
			// The agent's "is set but witness.endpoints is empty": the same.
			for _, k := range []string{"ca_file", "cert_file", "key_file", "prefix"} {
				f.covered["witness."+k] = true
			}
		}
	}
	for _, s := range witnessSources {
		f.source(s, w.On())
	}
	if w.Cert != "" && w.Key != "" && !f.covered["witness.cert_file"] && !f.covered["witness.key_file"] {
		if _, err := tls.X509KeyPair([]byte(w.Cert), w.Key.Reveal()); err != nil {
			f.add("witness.key", "does not belong to witness.cert: the certificate is for another key")
		}
	}
}

// maxPEM bounds an inline PEM: a certificate chain is a few kilobytes.
const maxPEM = 64 << 10

// pemBlocks decodes s as PEM blocks with nothing but whitespace around
// them, or reports it is not that.
func pemBlocks(s string) ([]*pem.Block, bool) {
	begin := []byte("-----BEGIN ")
	var blocks []*pem.Block
	rest := []byte(s)
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			return blocks, len(blocks) > 0
		}
		b, after := pem.Decode(rest)
		// Decode skips text before a block, and a broken block for the
		// next one: neither is PEM here.
		if b == nil || !bytes.HasPrefix(rest, begin) || bytes.Count(rest[:len(rest)-len(after)], begin) != 1 {
			return nil, false
		}
		blocks = append(blocks, b)
		rest = after
	}
}

// certsProblem checks inline certificates (PEM): what the agent reads as a
// CA bundle or as its client certificate with its chain. Expiry is not
// checked: the clock of a machine's first boot may be anything.
func certsProblem(s string) string {
	if len(s) > maxPEM {
		return fmt.Sprintf("too long for certificates: at most %d bytes (got %d)", maxPEM, len(s))
	}
	blocks, ok := pemBlocks(s)
	if !ok {
		return "must be PEM: one or more blocks from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----, and nothing else"
	}
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return fmt.Sprintf("must hold certificates only: PEM block %d is %s, not CERTIFICATE", i+1, pemType(b))
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Sprintf("PEM block %d is not a certificate that can be read (X.509, DER inside the PEM)", i+1)
		}
	}
	return ""
}

// keyProblem checks an inline private key (PEM) as tls.X509KeyPair reads
// it: one unencrypted PKCS #8, PKCS #1 or SEC 1 key.
func keyProblem(s string) string {
	if len(s) > maxPEM {
		return fmt.Sprintf("too long for a private key: at most %d bytes (got %d)", maxPEM, len(s))
	}
	blocks, ok := pemBlocks(s)
	switch {
	case !ok:
		return "must be PEM: one block from -----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY----- (or EC PRIVATE KEY, RSA PRIVATE KEY), and nothing else"
	case len(blocks) != 1:
		return fmt.Sprintf("must be one private key (got %d PEM blocks)", len(blocks))
	}
	b := blocks[0]
	switch {
	case b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"):
		return "is encrypted: the agent has no passphrase for it; decrypt it first (openssl pkey -in key.pem -out plain.pem)"
	case b.Type != "PRIVATE KEY" && !strings.HasSuffix(b.Type, " PRIVATE KEY"):
		return fmt.Sprintf("must be a private key: the PEM block is %s, not PRIVATE KEY", pemType(b))
	}
	if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		return ""
	}
	if _, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return ""
	}
	if _, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return ""
	}
	return "is not a private key that can be read (PKCS #8, PKCS #1 or SEC 1, DER inside the PEM)"
}

// pemType names a block's type, cut short: it is the one part of a PEM a
// message may show.
func pemType(b *pem.Block) string {
	t := b.Type
	if len(t) > 40 {
		t = t[:40] + "..."
	}
	return fmt.Sprintf("%q", t)
}
