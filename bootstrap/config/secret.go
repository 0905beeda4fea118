package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

const (
	// MinSecretLen is the shortest cluster secret accepted, in bytes after
	// trimming surrounding whitespace.
	MinSecretLen = 32
	// maxSecretFile bounds the read: a secret is short, a mistake is not.
	maxSecretFile = 64 << 10
)

// ReadSecret reads the cluster secret from secret_file, refusing a file
// that group or others could read or write, a file not owned by root when
// the agent runs as root, and a secret shorter than MinSecretLen bytes
// after trimming whitespace. It returns the trimmed secret. No error it
// returns contains the secret or any part of it.
func (c *Config) ReadSecret() ([]byte, error) {
	if c.SecretFile == "" {
		return nil, errors.New("secret_file: required: the path of a file holding the cluster secret")
	}
	f, err := os.Open(c.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("secret_file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret_file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secret_file: must be a regular file (got %s, mode %s)", c.SecretFile, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secret_file: must not grant group or others any access, or other users could impersonate the peer: run chmod 600 %s (got mode %04o)", c.SecretFile, perm)
	}
	if os.Geteuid() == 0 {
		if uid, ok := fileOwner(fi); ok && uid != 0 {
			return nil, fmt.Errorf("secret_file: must be owned by root, as the agent runs as root: run chown root %s (got uid %d)", c.SecretFile, uid)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		clear(data)
		return nil, fmt.Errorf("secret_file: reading %s: %w", c.SecretFile, err)
	}
	if len(data) > maxSecretFile {
		clear(data)
		return nil, fmt.Errorf("secret_file: too large to be a secret (over %d bytes): %s", maxSecretFile, c.SecretFile)
	}
	secret := bytes.TrimSpace(data)
	if n := len(secret); n < MinSecretLen {
		clear(data)
		return nil, fmt.Errorf("secret_file: the secret is too short: it needs at least %d bytes after trimming whitespace (got %d); generate one with `openssl rand -hex 32 > %s`", MinSecretLen, n, c.SecretFile)
	}
	return secret, nil
}
