package harness

import (
	"os"
	"testing"
)

// GeneratedFile checks that the file at path, generated from a table, is
// want byte for byte; with update it first writes want there. regenerate
// is the command that rewrites it, for the failure message. The scenario
// lists in docs/ are checked this way, so a table and its list cannot part.
func GeneratedFile(t testing.TB, path, want string, update bool, regenerate string) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is stale: %s", path, regenerate)
	}
}
