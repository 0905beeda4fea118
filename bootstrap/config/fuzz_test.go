package config

import (
	"os"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse: Parse never panics, rejects with a message, accepts only
// configs that validate, and what it accepts survives a YAML round trip.
// Seeds: testdata/fuzz/FuzzParse (a full valid config among them), plus
// example.yaml.
func FuzzParse(f *testing.F) {
	if example, err := os.ReadFile("example.yaml"); err == nil {
		f.Add(example)
	}
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("rejected with an empty error: %q", data)
			}
			if c != nil {
				t.Fatalf("a config returned with an error")
			}
			return
		}
		if c == nil {
			t.Fatalf("accepted without a config: %q", data)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v\n%q", err, data)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("the accepted config, written back, is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", back, c)
		}
	})
}
