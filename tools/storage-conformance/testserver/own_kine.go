package testserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
)

// The "own database" mode, Kine's own CI set-up: every RunEtcd starts a
// Kine of its own with compaction of the latest revisions allowed (min
// retain 0, no periodic compaction, progress notifications every 5 s) on
// a database of its own. Here the database is a schema of its own in the
// pair's Kine database on the leader's PostgreSQL, reached from the
// follower's namespace with the follower Kine's credentials (its passfile)
// and connection settings: the same path as the follower's Kine, with the
// few tests that need an empty database or a compaction of the newest
// revisions (see e2e/apiserver FollowerExclusions).
const (
	KineEnv     = "STORAGE_CONFORMANCE_KINE"     // the kine binary: selects this mode
	PostgresEnv = "STORAGE_CONFORMANCE_POSTGRES" // host:port of the leader's PostgreSQL
	PsqlEnv     = "STORAGE_CONFORMANCE_PSQL"     // psql, to create and drop the schema
)

func ownKine(t testing.TB, cfg *embed.Config) *kubernetes.Client {
	t.Helper()
	kine, pg, psql := os.Getenv(KineEnv), os.Getenv(PostgresEnv), os.Getenv(PsqlEnv)
	if pg == "" || psql == "" || os.Getenv("PGPASSFILE") == "" || os.Getenv("PGSSLROOTCERT") == "" {
		t.Fatalf("%s is set, so %s, %s, PGPASSFILE (the kine role's passfile) and PGSSLROOTCERT (the pair's CA) must be too", KineEnv, PostgresEnv, PsqlEnv)
	}
	if cfg == nil {
		cfg = NewTestConfig(t)
	}
	sum := sha256.Sum256([]byte(cfg.Dir))
	schema := "conformance_" + hex.EncodeToString(sum[:6])
	dsn := url.URL{Scheme: "postgres", User: url.User("kine"), Host: pg, Path: "/kine",
		RawQuery: "sslmode=verify-full&channel_binding=require&target_session_attrs=read-write&connect_timeout=2&search_path=" + schema}
	runSQL(t, psql, dsn, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { runSQL(t, psql, dsn, "DROP SCHEMA "+schema+" CASCADE") })

	notify := cfg.WatchProgressNotifyInterval
	if notify <= 0 {
		notify = 5 * time.Second
	}
	sock := filepath.Join(cfg.Dir, "kine.sock")
	logPath := filepath.Join(cfg.Dir, "kine.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kine)
	cmd.Env = append(os.Environ(), "KINE_LISTEN_ADDRESS=unix://"+sock, "KINE_ENDPOINT="+dsn.String(),
		"KINE_COMPACT_INTERVAL=0", "KINE_COMPACT_MIN_RETAIN=0", "KINE_METRICS_BIND_ADDRESS=0",
		"KINE_WATCH_PROGRESS_NOTIFY_INTERVAL="+notify.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kine: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
	})

	client, err := kubernetes.New(clientv3.Config{
		Endpoints:   []string{"unix://" + sock},
		DialTimeout: 10 * time.Second,
		Logger:      zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)).Named("etcd-client"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	// Kine has no ready signal: it answers once its table is set up.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Client.Get(ctx, "/storage-conformance-ready")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logPath)
			t.Fatalf("kine on schema %s did not answer in 20 s: %v\n%s", schema, err, tail(out))
		}
		time.Sleep(100 * time.Millisecond)
	}
	kubernetesRecorder := storagetesting.NewKubernetesRecorder(client.Kubernetes)
	client.KV = storagetesting.NewKVRecorder(client.KV, kubernetesRecorder)
	client.Kubernetes = kubernetesRecorder
	return client
}

// runSQL runs one statement as the kine role (password from PGPASSFILE).
func runSQL(t testing.TB, psql string, dsn url.URL, stmt string) {
	t.Helper()
	dsn.RawQuery = "sslmode=verify-full&channel_binding=require&connect_timeout=5"
	out, err := exec.Command(psql, "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-c", stmt, dsn.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", stmt, err, out)
	}
}

func tail(b []byte) []byte {
	const n = 3000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return bytes.TrimSpace(b)
}
