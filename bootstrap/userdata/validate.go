package userdata

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/yamlwalk"
)

// This file checks a built Block: the block's own rules (sources.go,
// witness.go) first, then the agent's (config.Validate) for what those do
// not cover, so that each problem is reported once, named after the
// block's field, with its line, in the block's order.

// validate checks b, built from set, and returns every problem.
func validate(b *Block, set leaves) []error {
	f := &findings{set: set, covered: map[string]bool{}}
	f.source(secretSource, true)
	f.witness(b.Witness)

	// The agent's own rules, for the rest.
	c := b.AgentConfig()
	if err := c.Validate(); err != nil {
		list := config.Unjoin(err)
		for _, e := range list {
			// The probe timeout follows the interval: its complaint is the
			// interval's.
			if strings.HasPrefix(e.Error(), "timers.probe_interval:") {
				f.covered["timers.probe_timeout"] = true
			}
		}
		for _, e := range list {
			if field, _, _ := strings.Cut(e.Error(), ": "); !f.covered[field] {
				f.push(e.Error())
			}
		}
	}
	slices.SortStableFunc(f.errs, func(a, b error) int { return cmp.Compare(rank(a), rank(b)) })
	return f.errs
}

// findings are the block's problems and the agent's fields (by the names
// config.Validate gives them) whose problems they already cover.
type findings struct {
	set     leaves
	errs    []error
	covered map[string]bool
}

// add reports a problem of one of the block's fields.
func (f *findings) add(field, format string, args ...any) {
	covered := field
	if s, ok := sourceOf[field]; ok {
		covered = s.file // the agent knows the file, whatever the block gave
	}
	f.covered[covered] = true
	f.push(field + ": " + fmt.Sprintf(format, args...))
}

// push adds a "field: problem" message, with the field's line.
func (f *findings) push(msg string) {
	f.errs = append(f.errs, fmt.Errorf("%s.%s", Key, f.set.withLine(msg)))
}

// withLine adds the line of the field a message names ("peer.address:
// ..."), when the block set that field.
func (set leaves) withLine(msg string) string {
	field, rest, ok := strings.Cut(msg, ": ")
	if l, set := set[field]; ok && set {
		return fmt.Sprintf("%s (line %d): %s", field, l.Line, rest)
	}
	return msg
}

// fieldOrder ranks the block's fields as blockFields lists them.
var fieldOrder = func() map[string]int {
	m := map[string]int{}
	var walk func(prefix string, fields []yamlwalk.Field)
	walk = func(prefix string, fields []yamlwalk.Field) {
		for _, f := range fields {
			m[prefix+f.Key] = len(m)
			walk(prefix+f.Key+".", f.Fields)
		}
	}
	walk("", blockFields)
	return m
}()

// rank is the place of the field an error names in the block.
func rank(err error) int {
	field := strings.TrimPrefix(err.Error(), Key+".")
	if i := strings.IndexAny(field, " :"); i >= 0 {
		field = field[:i]
	}
	if r, ok := fieldOrder[field]; ok {
		return r
	}
	return len(fieldOrder)
}
