package postgres

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFaketimeEnv(t *testing.T) {
	env, err := FaketimeEnv(0)
	if err != nil || env != nil {
		t.Fatalf("no offset: got %v, %v; want no environment", env, err)
	}
	env, err = FaketimeEnv(-10 * time.Minute)
	if err != nil {
		t.Fatal(err) // scripts/deps.sh installs faketime
	}
	if !slices.Contains(env, "FAKETIME=-600s") || !slices.Contains(env, "FAKETIME_DONT_FAKE_MONOTONIC=1") {
		t.Errorf("env %v: want FAKETIME=-600s and monotonic clocks left alone", env)
	}
	if !strings.HasPrefix(env[0], "LD_PRELOAD=/") {
		t.Errorf("env %v: want LD_PRELOAD of the library first", env)
	}
	env, _ = FaketimeEnv(10 * time.Minute)
	if !slices.Contains(env, "FAKETIME=+600s") {
		t.Errorf("env %v: want FAKETIME=+600s", env)
	}
}

func TestWithSlowSync(t *testing.T) {
	env, err := WithSlowSync([]string{"LD_PRELOAD=/usr/lib/faketime.so", "FAKETIME=+5s"}, "/t/slow.so:/t/slow-ms")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(env, " ")
	if got != "TWONODE_SLOW_SYNC_FILE=/t/slow-ms FAKETIME=+5s LD_PRELOAD=/usr/lib/faketime.so:/t/slow.so" {
		t.Fatalf("env: %s", got)
	}
	for _, bad := range []string{"", "/t/slow.so", "slow.so:/t/ms", "/t/slow.so:ms"} {
		if _, err := WithSlowSync(nil, bad); err == nil || !strings.Contains(err.Error(), SlowSyncEnv) {
			t.Errorf("%q: %v, want an error naming %s", bad, err, SlowSyncEnv)
		}
	}
}
