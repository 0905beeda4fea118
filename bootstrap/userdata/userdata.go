// Package userdata is the twonode: block of a node's Kairos cloud-config
// (its user-data): the schema, the defaults (the agent's own, from
// config.Default), and the validation. Every problem is reported at once,
// each as a sentence naming its field: "twonode.peer.address: must be ...".
// The cluster secret never appears in an error, a warning or a printout.
//
// The block, with every key (docs/first-boot.md explains each):
//
//	twonode:
//	  enabled: true              # required; false keeps the block unused
//	  node: {name: edge-1, address: 10.99.0.1}
//	  peer: {name: edge-2, address: 10.99.0.2}
//	  secret: "..."              # or secret_file: /oem/twonode/secret (one of the two)
//	  preferred_leader: edge-1   # optional; the same on both nodes
//	  failover: auto             # or manual: only an operator's twonode promote takes over
//	  timers: {probe_interval: 500ms, failure_threshold: 3, boot_grace: 30s, pause_expiry: 2h, slow_commit: 1s, slow_for: 2s}
//	  postgres: {port: 5432, shared_buffers: ""}
//	  api: {peer_port: 8760, metrics: "127.0.0.1:9641"}
//	  log: {level: info, format: text}
//	  witness:                   # optional: the third vote, an etcd cluster (witness.go)
//	    endpoints: [https://10.0.0.21:2379, https://10.0.0.22:2379]  # or one string
//	    prefix: /twonode/site-0042/
//	    ca: |                    # inline PEM, or ca_file: /oem/twonode/witness-ca.pem
//	    cert: |                  # or cert_file
//	    key: |                   # or key_file; a secret, like the cluster secret
//	    dial_timeout: 2s
//	    request_timeout: 1s
//	    lease_ttl: 10s
//	    unreachable: wait        # or promote
//	    watchdog: /dev/watchdog  # "" for none
//	    watchdog_timeout: 3s
//	  vip:                       # optional: the pair's API address, on the leader only
//	    address: 10.99.0.100/24  # a free address of the nodes' subnet, with its prefix length
//	    interface: ""            # "" : the one holding node.address
//
// A key this version does not know is an error, not ignored: a setting that silently
// does nothing is worse than a node that refuses to start.
package userdata

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kairos-io/kairos-sdk/clusterplugin"
	"gopkg.in/yaml.v3"

	"github.com/twonode-edge/twonode/bootstrap/yamlwalk"
)

// This file reads the cloud-config: where the block is, whether it is
// enabled, and the order of the checks. What the block holds is in
// block.go, its rules in validate.go and sources.go, the cluster: block's
// in cluster.go.

// Key is the block's key in the cloud-config.
const Key = "twonode"

// State is what the cloud-config asks of twonode on this node.
type State int

const (
	// Absent: no twonode: key. The node is not half of a pair.
	Absent State = iota
	// Disabled: twonode.enabled is false. Nothing else is read.
	Disabled
	// Enabled: twonode.enabled is true and the block is valid.
	Enabled
)

func (s State) String() string {
	switch s {
	case Absent:
		return "absent"
	case Disabled:
		return "disabled"
	case Enabled:
		return "enabled"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Result is what a cloud-config says about twonode.
type Result struct {
	State State
	// Block is set when State is Enabled.
	Block *Block
	// Cluster is the cloud-config's cluster: block (provider-k3s's input)
	// when there is one and twonode is enabled.
	Cluster *clusterplugin.Cluster
	// Warnings are things worth an operator's attention that do not stop
	// the node: the example secret, no cluster: block to check.
	Warnings []string
}

// Parse reads the twonode: block of a cloud-config (the YAML Kairos hands
// to its plugins) and, when twonode is enabled, the cluster: block that
// configures k3s. It returns an error (every problem, joined) when the
// cloud-config is not YAML or the enabled block is invalid; no error ever
// contains the secret.
func Parse(cloudConfig []byte) (res Result, err error) {
	defer func() {
		// yaml.v3 reports its own failures as errors; anything else it
		// throws must not take the plugin down.
		if r := recover(); r != nil {
			res, err = Result{}, fmt.Errorf("the cloud-config could not be read: the YAML parser failed")
		}
	}()
	var root yaml.Node
	if err := yaml.Unmarshal(cloudConfig, &root); err != nil {
		return Result{}, fmt.Errorf("the cloud-config is not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	doc = yamlwalk.ResolveAlias(doc)
	if doc.Kind != yaml.MappingNode {
		return Result{State: Absent}, nil
	}
	block, clusterNode, err := topKeys(doc)
	if err != nil {
		return Result{}, err
	}
	if block == nil {
		return Result{State: Absent}, nil
	}

	v := yamlwalk.ResolveAlias(block.value)
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
		return Result{}, fmt.Errorf("%s (line %d): has no value: write its settings (enabled: true, node, peer, secret) or remove the key", Key, block.key.Line)
	}
	var w yamlwalk.Walker
	w.Walk(Key, v, blockFields)
	if enabled, ok := w.Values["enabled"]; ok && !enabled.Bool {
		// Disabled: nothing else is read, its mistakes included.
		return Result{State: Disabled}, nil
	}
	if _, ok := w.Values["enabled"]; !ok && !w.Failed[Key+".enabled"] && !w.Failed[Key] {
		w.Fail(Key+".enabled", block.key.Line, "required: true to make this node one of a two-node pair, false to keep the block unused")
	}
	if len(w.Errs) > 0 {
		return Result{}, errors.Join(w.Errs...)
	}

	set := leaves(w.Values)
	b := set.block()
	errs := validate(b, set)
	res = Result{State: Enabled, Block: b}
	if string(b.Secret) == ExampleSecret {
		res.Warnings = append(res.Warnings, Key+".secret: this is the example secret from docs/first-boot.md: anyone who read it can join or impersonate this pair; generate one with `openssl rand -hex 32` and put the same value on both nodes")
	}
	if clusterNode == nil {
		res.Warnings = append(res.Warnings, "cluster: absent: k3s's datastore is not checked; each k3s server must use "+K3sDatastoreEndpoint+" (its own Kine) as datastore-endpoint and the same token")
	} else {
		c, cerrs := checkCluster(clusterNode)
		res.Cluster = c
		errs = append(errs, cerrs...)
		if len(cerrs) == 0 {
			warn, err := checkControlPlaneHost(c.ControlPlaneHost, b)
			if err != nil {
				errs = append(errs, err)
			}
			if warn != "" {
				res.Warnings = append(res.Warnings, warn)
			}
		}
	}
	if len(errs) > 0 {
		return Result{}, errors.Join(errs...)
	}
	return res, nil
}

// keyValue is one key of a YAML mapping with its value.
type keyValue struct{ key, value *yaml.Node }

// topKeys finds the twonode: and cluster: keys of the cloud-config.
func topKeys(doc *yaml.Node) (block *keyValue, cluster *yaml.Node, err error) {
	var lines []string
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k := yamlwalk.ResolveAlias(doc.Content[i])
		if k.Kind != yaml.ScalarNode {
			continue
		}
		switch k.Value {
		case Key:
			if block == nil {
				block = &keyValue{k, doc.Content[i+1]}
			}
			lines = append(lines, fmt.Sprint(k.Line))
		case "cluster":
			cluster = yamlwalk.ResolveAlias(doc.Content[i+1])
		}
	}
	if len(lines) > 1 {
		return nil, nil, fmt.Errorf("%s: the key appears %d times (lines %s): keep one", Key, len(lines), strings.Join(lines, ", "))
	}
	return block, cluster, nil
}
