// Package archive seals split-brain archives at rest. An archive holds the
// Kine rows a losing node had and the winner did not (postgres.Manager.Archive
// writes them as JSON lines): Kubernetes objects, Secrets among them, kept
// on the node's persistent partition. They are encrypted with age
// (filippo.io/age: authenticated, streamed, a format other tools read), with
// a passphrase derived from the cluster secret, so that a disk taken from
// the node gives nothing away, while `twonode archive show` on either node
// reads them.
//
// The passphrase is an HMAC of the secret, 256 bits of entropy: scrypt's
// work factor adds nothing against guessing it, so the lowest is used (an
// archive is written while a node rejoins, and the simulation reads its
// archives after every round: at 2^10 that doubled its run time).
// Anyone holding the secret can derive it; they can act as either node
// anyway (docs/security.md).
package archive

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
)

// Ext ends the name of a sealed archive; LegacyExt the plain JSON lines of
// agents before December 2026, still listed and read.
const (
	Ext       = ".jsonl.age"
	LegacyExt = ".jsonl"
)

// workFactor: scrypt's lowest, 2^1 (see the package comment).
const workFactor = 1

// magic begins every age file.
var magic = []byte("age-encryption.org/v1\n")

// passphrase derives the archives' passphrase from the cluster secret.
func passphrase(secret []byte) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("archive: no cluster secret to seal it with")
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("twonode/archive"))
	return hex.EncodeToString(m.Sum(nil)), nil
}

// File is an archive being written: what is written to it is encrypted
// into path; Close seals it and syncs it to disk.
type File struct {
	f   *os.File
	enc io.WriteCloser
}

// Create makes a new archive at path (mode 0600; an existing file is an
// error, never overwritten).
func Create(path string, secret []byte) (*File, error) {
	pw, err := passphrase(secret)
	if err != nil {
		return nil, err
	}
	r, err := age.NewScryptRecipient(pw)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	r.SetWorkFactor(workFactor)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	enc, err := age.Encrypt(f, r)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("archive: %w", err)
	}
	return &File{f: f, enc: enc}, nil
}

func (a *File) Write(p []byte) (int, error) { return a.enc.Write(p) }

// Close finishes the encryption (its last chunk authenticates the end: a
// truncated archive does not decrypt), syncs and closes the file.
func (a *File) Close() error {
	err := a.enc.Close()
	if err == nil {
		err = a.f.Sync()
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Open returns the JSON lines of the archive at path: decrypted (and
// authenticated as it is read) when sealed, as they are when it is a plain
// archive of an older agent.
func Open(path string, secret []byte) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(f)
	head, _ := br.Peek(len(magic))
	if !bytes.Equal(head, magic) {
		if strings.HasSuffix(path, Ext) {
			f.Close()
			return nil, fmt.Errorf("archive %s: not an age file", path)
		}
		return readCloser{br, f}, nil // a plain archive of an older agent
	}
	pw, err := passphrase(secret)
	if err != nil {
		f.Close()
		return nil, err
	}
	id, err := age.NewScryptIdentity(pw)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("archive: %w", err)
	}
	id.SetMaxWorkFactor(workFactor)
	r, err := age.Decrypt(br, id)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("archive %s: %w (is this the pair's cluster secret?)", path, err)
	}
	return readCloser{r, f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Files lists the archives in dir, sealed and plain, oldest name first (a
// name holds the term and the time: split-term<N>-<unix>). A missing dir
// holds none.
func Files(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && (strings.HasSuffix(n, Ext) || strings.HasSuffix(n, LegacyExt)) {
			out = append(out, filepath.Join(dir, n))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Prune deletes the archives in dir beyond the newest keep, and those
// modified more than maxAge before now (maxAge 0: none for age). Age and
// order are the files' modification times, the kernel's (a name's term
// sorts 10 before 9). It returns the paths it deleted; a file it could not
// delete is an error, and the others are still pruned.
func Prune(dir string, keep int, maxAge time.Duration, now time.Time) ([]string, error) {
	files, err := Files(dir)
	if err != nil {
		return nil, err
	}
	type aged struct {
		path string
		mod  time.Time
	}
	var all []aged
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue // gone meanwhile
		}
		all = append(all, aged{f, fi.ModTime()})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].mod.After(all[j].mod) }) // newest first
	var removed []string
	var errs []error
	for i, a := range all {
		if i < keep && (maxAge == 0 || now.Sub(a.mod) <= maxAge) {
			continue
		}
		if err := os.Remove(a.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, a.path)
	}
	return removed, errors.Join(errs...)
}
