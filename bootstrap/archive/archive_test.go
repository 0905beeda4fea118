package archive

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

const lines = `{"kind":"header","node":"a","winner":"b","term":3,"count":1}
{"id":7,"name":"/registry/secrets/default/db","value_b64":"cGFzc3dvcmQ9aHVudGVyMg=="}
`

func seal(t *testing.T, path string, text string) {
	t.Helper()
	f, err := Create(path, secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func read(path string, key []byte) (string, error) {
	r, err := Open(path, key)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}

func TestSealedRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "split-term3-1"+Ext)
	seal(t, path, lines)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{"registry", "secrets", "cGFzc3dvcmQ9aHVudGVyMg", "header"} {
		if bytes.Contains(raw, []byte(clear)) {
			t.Errorf("the sealed file holds %q in clear", clear)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	got, err := read(path, secret)
	if err != nil || got != lines {
		t.Fatalf("read back %q, %v", got, err)
	}
	if _, err := Create(path, secret); err == nil {
		t.Error("Create over an existing archive succeeded")
	}
}

func TestSealedNeedsTheSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a"+Ext)
	seal(t, path, lines)
	if got, err := read(path, []byte("another secret")); err == nil {
		t.Fatalf("read with another secret: %q", got)
	}
	if _, err := read(path, nil); err == nil {
		t.Fatal("read without a secret")
	}
	if _, err := Create(filepath.Join(t.TempDir(), "b"+Ext), nil); err == nil {
		t.Fatal("sealed without a secret")
	}
}

func TestTamperedOrCutShortIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a"+Ext)
	seal(t, path, strings.Repeat(lines, 2000)) // over one 64 KiB chunk
	raw, _ := os.ReadFile(path)
	for name, b := range map[string][]byte{
		"cut short": raw[:len(raw)-100],
		"a byte changed": func() []byte {
			c := bytes.Clone(raw)
			c[len(c)/2] ^= 1
			return c
		}(),
	} {
		p := filepath.Join(t.TempDir(), "x"+Ext)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := read(p, secret); err == nil {
			t.Errorf("%s: read without an error", name)
		}
	}
}

func TestPlainArchivesOfOlderAgentsAreRead(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "split-term2-100"+LegacyExt)
	if err := os.WriteFile(plain, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := read(plain, secret); err != nil || got != lines {
		t.Fatalf("plain archive: %q, %v", got, err)
	}
	// A file named as sealed that is not: an error, not read as plain.
	fake := filepath.Join(dir, "split-term3-200"+Ext)
	if err := os.WriteFile(fake, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := read(fake, secret); err == nil {
		t.Error("a plain file named .jsonl.age was read")
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	files, err := Files(dir)
	if err != nil || len(files) != 2 || files[0] != plain || files[1] != fake {
		t.Fatalf("Files: %v, %v", files, err)
	}
	if files, err := Files(filepath.Join(dir, "none")); err != nil || files != nil {
		t.Fatalf("Files of a missing dir: %v, %v", files, err)
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	// Five archives a day apart, newest first: term 10 sorts before term 9
	// by name, so age must come from the files, not the names.
	var paths []string
	for i, term := range []int{10, 9, 8, 7, 6} {
		p := filepath.Join(dir, fmt.Sprintf("split-term%d-%d%s", term, 1000+i, Ext))
		seal(t, p, lines)
		mod := now.Add(-time.Duration(i) * 24 * time.Hour)
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	removed, err := Prune(dir, 4, 0, now)
	if err != nil || len(removed) != 1 || removed[0] != paths[4] {
		t.Fatalf("keep 4: removed %v, %v; want the oldest, %s", removed, err, paths[4])
	}
	removed, err = Prune(dir, 4, 36*time.Hour, now)
	if err != nil || len(removed) != 2 || !slices.Contains(removed, paths[2]) || !slices.Contains(removed, paths[3]) {
		t.Fatalf("max age 36h: removed %v, %v; want the two older than that", removed, err)
	}
	left, _ := Files(dir)
	if len(left) != 2 || !slices.Contains(left, paths[0]) || !slices.Contains(left, paths[1]) {
		t.Fatalf("left %v, want the two newest", left)
	}
	if removed, err := Prune(filepath.Join(dir, "none"), 1, 0, now); err != nil || removed != nil {
		t.Fatalf("a missing dir: %v, %v", removed, err)
	}
}
