package userdata

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/twonode-edge/twonode/bootstrap/config"
)

// Limits of the inline secret. The agent needs config.MinSecretLen bytes.
const maxSecretLen = 1024

// plainPathRE keeps a *_file path usable in the boot stages' commands
// without any quoting question.
var plainPathRE = regexp.MustCompile(`^/[A-Za-z0-9._@+:/-]+$`)

// source is a setting given inline or as the path of a file that the site
// provisions by other means: secret or secret_file, witness.key or
// witness.key_file, ...
type source struct {
	inline, file string // the block's fields
	// required is the problem when neither is given and one is needed.
	required string
	// check returns the problem with an inline value, or "". The value is
	// never part of it.
	check func(string) string
	// holding and itself describe the file and what a relative value may
	// be instead of its path; why says why it may not be under AgentDir,
	// example is a persistent path.
	holding, itself, why, example string
}

var secretSource = source{
	inline: "secret", file: "secret_file",
	required: "required: the cluster secret, the same on both nodes (generate one with `openssl rand -hex 32`), or secret_file, the path of a file holding it",
	check:    secretProblem,
	holding:  "the secret", itself: "the secret itself",
	why: "the boot stages copy the secret there from this file", example: "/oem/twonode/secret",
}

// sourceOf finds a source by either of its fields.
var sourceOf = func() map[string]source {
	m := map[string]source{}
	for _, s := range append([]source{secretSource}, witnessSources...) {
		m[s.inline], m[s.file] = s, s
	}
	return m
}()

// source checks one inline-or-file setting: not both, one when required,
// the inline value by its check and the file's path as a plain absolute
// path off AgentDir.
func (f *findings) source(s source, required bool) {
	l, inline := f.set[s.inline]
	p, file := f.set[s.file]
	short := func(field string) string { return field[strings.LastIndex(field, ".")+1:] }
	switch {
	case inline && file:
		f.add(s.file, "give either %s or %s, not both", short(s.inline), short(s.file))
	case inline:
		if problem := s.check(l.Text); problem != "" {
			f.add(s.inline, "%s", problem)
		}
	case file && !filepath.IsAbs(p.Text):
		// Not echoed: what was written here may be the secret itself.
		f.add(s.file, "must be the absolute path of a file holding %s, not %s (got a relative value of %d characters)", s.holding, s.itself, len(p.Text))
	case file && (!plainPathRE.MatchString(p.Text) || filepath.Clean(p.Text) != p.Text):
		f.add(s.file, "must be a plain absolute path (letters, digits and . _ @ + : - /, no .. or //) (got %q)", p.Text)
	case file && strings.HasPrefix(p.Text+"/", AgentDir+"/"):
		f.add(s.file, "must not be under %s: %s; keep it on a persistent path such as %s (got %q)", AgentDir, s.why, s.example, p.Text)
	case !inline && !file && required:
		f.add(s.inline, "%s", s.required)
	}
}

// secretProblem checks an inline cluster secret.
func secretProblem(s string) string {
	trimmed := strings.TrimSpace(s)
	switch {
	case strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return "must be printable text on one line, without control characters (generate one with `openssl rand -hex 32`)"
	case len(trimmed) < config.MinSecretLen:
		return fmt.Sprintf("too short: at least %d bytes, not counting surrounding spaces (got %d); generate one with `openssl rand -hex 32`", config.MinSecretLen, len(trimmed))
	case len(s) > maxSecretLen:
		return fmt.Sprintf("too long: at most %d bytes (got %d)", maxSecretLen, len(s))
	}
	return ""
}
