package apiserver

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestPasses(t *testing.T) {
	got := Passes([]Exclusion{{Test: "TestA"}, {Test: "TestW/Sub.1"}, {Test: "TestB"}, {Test: "TestW/Two"}})
	want := []Pass{
		{Skip: `^(TestA|TestB|TestW)$`},
		{Run: `^TestW$`, Skip: `^TestW$/^(Sub\.1|Two)$`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Passes = %#v, want %#v", got, want)
	}
	if got := Passes(nil); !reflect.DeepEqual(got, []Pass{{}}) {
		t.Fatalf("Passes(nil) = %#v, want one pass of everything", got)
	}
}

func TestOnlyPasses(t *testing.T) {
	got := OnlyPasses([]Exclusion{{Test: "TestA"}, {Test: "TestW/Sub.1"}, {Test: "TestB"}, {Test: "TestW/Two"}})
	want := []Pass{
		{Run: `^(TestA|TestB)$`},
		{Run: `^TestW$/^(Sub\.1|Two)$`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("OnlyPasses = %#v, want %#v", got, want)
	}
	if got := OnlyPasses(nil); len(got) != 0 {
		t.Fatalf("OnlyPasses(nil) = %#v, want none", got)
	}
}

func TestParseTestOutput(t *testing.T) {
	out := `=== RUN   TestA
--- PASS: TestA (0.00s)
=== RUN   TestB
=== RUN   TestB/x
=== RUN   TestB/x/deep
=== RUN   TestB/y
--- FAIL: TestB (0.10s)
    --- PASS: TestB/x (0.00s)
        --- PASS: TestB/x/deep (0.00s)
    --- FAIL: TestB/y (0.10s)
--- SKIP: TestC (0.00s)
    --- PASS: TestB-z (0.00s)
FAIL
`
	p := filepath.Join(t.TempDir(), "out.log")
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := ParseTestOutput(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed != 3 || r.Failed != 1 || r.Skipped != 1 || r.TopPassed != 2 || r.TopFailed != 1 || r.TopSkipped != 1 {
		t.Fatalf("counts %+v", r)
	}
	if !reflect.DeepEqual(r.FailedTests, []string{"TestB/y"}) {
		t.Fatalf("failed %v", r.FailedTests)
	}
}
