// Package testserver is a drop-in replacement for
// k8s.io/apiserver/pkg/storage/etcd3/testserver (same package name, same
// exported API). scripts/build-apiserver.sh compiles the upstream etcd3
// storage tests with `go test -c`, swapping the upstream file for this
// one: instead of starting an embedded etcd, RunEtcd connects to the
// external endpoint named by $STORAGE_CONFORMANCE_ENDPOINT (a node's Kine).
//
// Kine's own CI does the same swap (its pkg/testserver), but gives every
// test a fresh database. Through a node's Kine all tests share one
// database, so each RunEtcd gets its own key namespace instead
// (/storage-conformance/<run>/<config>): keys, ranges and watches are
// isolated; revisions are the database's, shared and increasing, which is
// what a real apiserver sees too; compaction (CompactRevKey) is global.
// The few tests that need a database of their own run in the mode of
// own_kine.go instead, selected by $STORAGE_CONFORMANCE_KINE.
package testserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/client/v3/namespace"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
)

// EndpointEnv names the etcd endpoint the tests use, e.g. http://127.0.0.1:2379.
const EndpointEnv = "STORAGE_CONFORMANCE_ENDPOINT"

// KeyRoot is the root of every key the tests write.
const KeyRoot = "/storage-conformance/"

// runID keeps two runs against the same database apart.
var runID = func() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%d-%s", time.Now().Unix(), hex.EncodeToString(b))
}()

// NewTestConfig returns a config whose only meaningful field here is Dir:
// it identifies the "server", so two RunEtcd calls with the same config
// share a key namespace. Server-side settings (e.g.
// WatchProgressNotifyInterval) cannot be applied to an external server.
func NewTestConfig(t testing.TB) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	return cfg
}

// RunEtcd returns a client of the external endpoint, confined to a key
// namespace of its own. It fails the test when the endpoint is not set.
func RunEtcd(t testing.TB, cfg *embed.Config) *kubernetes.Client {
	t.Helper()
	if os.Getenv(KineEnv) != "" {
		return ownKine(t, cfg)
	}
	endpoint := os.Getenv(EndpointEnv)
	if endpoint == "" {
		t.Fatalf("%s is not set: these storage tests run against an external etcd endpoint (a Kine)", EndpointEnv)
	}
	if cfg == nil {
		cfg = NewTestConfig(t)
	}
	sum := sha256.Sum256([]byte(cfg.Dir))
	prefix := KeyRoot + runID + "/" + hex.EncodeToString(sum[:6])

	client, err := kubernetes.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 10 * time.Second,
		Logger:      zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)).Named("etcd-client"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Client.Get(ctx, "/storage-conformance-ready"); err != nil {
		t.Fatalf("etcd endpoint %s: %v", endpoint, err)
	}

	client.KV = NewPrefixKV(client.KV, prefix)
	client.Watcher = NewPrefixWatcher(client.Watcher, prefix)
	client.Lease = namespace.NewLease(client.Lease, prefix)

	kubernetesRecorder := storagetesting.NewKubernetesRecorder(client.Kubernetes)
	client.KV = storagetesting.NewKVRecorder(client.KV, kubernetesRecorder)
	client.Kubernetes = kubernetesRecorder
	return client
}
