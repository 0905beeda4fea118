package userdata

import (
	"fmt"
	"io"
)

// This file keeps the block's secrets out of every printout: the Secret
// type, which prints as [redacted], and the documented example secret,
// which is warned about. Their checks are in sources.go.

// Secret is a value of the block that must never be printed: the inline
// cluster secret, the witness's inline client key. It prints as [redacted]
// with every fmt verb and in JSON, YAML or text encodings, so that no log
// line can carry it by accident; Reveal is the one way to read it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's bytes.
func (s Secret) Reveal() []byte { return []byte(s) }

// Format implements fmt.Formatter.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalText implements encoding.TextMarshaler (JSON and friends).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalYAML implements yaml.Marshaler.
func (Secret) MarshalYAML() (any, error) { return redacted, nil }

// ExampleSecret is the secret in docs/user-data: accepted, so that the
// documented files work as they are, but warned about at every boot.
const ExampleSecret = "example-only-replace-with-output-of-openssl-rand-hex-32"
