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
