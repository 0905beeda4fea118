// Package yiptest runs yip stages for tests the way Kairos does, with yip's
// own executor, against a test filesystem (go-vfs's vfst) and a console
// that touches nothing real: it records every command, answers the stages'
// if: conditions by looking at the test filesystem, and plays the few
// file commands the stages use (install, rm -f, mkdir -p, touch) on it.
package yiptest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mudler/yip/pkg/executor"
	"github.com/sirupsen/logrus"
	"github.com/twpayne/go-vfs/v5"
	"github.com/twpayne/go-vfs/v5/vfst"
)

// Machine is a test root filesystem with a recording console.
type Machine struct {
	FS vfs.FS
	// Root is the real directory behind FS, for reading results.
	Root    string
	Console *Console
	// Log is yip's log, shown when a test fails.
	Log bytes.Buffer
}

// NewMachine makes a test root holding files (path → content, mode 0644;
// a value ending in "/" is a directory).
func NewMachine(t *testing.T, files map[string]string) *Machine {
	t.Helper()
	tree := map[string]any{}
	for p, c := range files {
		if strings.HasSuffix(p, "/") {
			tree[strings.TrimSuffix(p, "/")] = &vfst.Dir{Perm: 0o755}
			continue
		}
		tree[p] = c
	}
	tfs, cleanup, err := vfst.NewTestFS(tree)
	if err != nil {
		t.Fatalf("test filesystem: %v", err)
	}
	t.Cleanup(cleanup)
	var fsys vfs.FS = tfs
	if os.Geteuid() != 0 {
		// yip chowns everything it writes to root: only root may.
		fsys = noChown{tfs}
	}
	m := &Machine{FS: fsys, Root: tfs.TempDir()}
	m.Console = &Console{fs: fsys}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("yip's log:\n%s", m.Log.String())
		}
	})
	return m
}

type noChown struct{ vfs.FS }

func (noChown) Chown(string, int, int) error { return nil }

// Run runs stage from the yip files under dirs, in Kairos's order (each
// directory in turn, its files in lexical order) and with its .before and
// .after, as `kairos-agent run-stage` does. It fails the test on any error
// yip reports.
func (m *Machine) Run(t *testing.T, stage string, dirs ...string) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(&m.Log)
	log.SetLevel(logrus.DebugLevel)
	e := executor.NewExecutor(executor.WithLogger(log))
	for _, d := range dirs {
		// kairos-agent makes its cloud-config directories first (yip would
		// read a missing path as a YAML document).
		if err := vfs.MkdirAll(m.FS, d, 0o755); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
	for _, s := range []string{stage + ".before", stage, stage + ".after"} {
		if err := e.Run(s, m.FS, m.Console, dirs...); err != nil {
			t.Fatalf("yip run %s: %v", s, err)
		}
	}
}

// Entry is one file or directory of the test root.
type Entry struct {
	Mode    fs.FileMode // permission bits, plus fs.ModeDir for a directory
	Content string      // of a file
}

func (e Entry) String() string {
	if e.Mode.IsDir() {
		return fmt.Sprintf("dir %04o", e.Mode.Perm())
	}
	return fmt.Sprintf("file %04o %q", e.Mode.Perm(), e.Content)
}

// Tree lists everything under the given paths of the test root.
func (m *Machine) Tree(t *testing.T, under ...string) map[string]Entry {
	t.Helper()
	out := map[string]Entry{}
	for _, root := range under {
		err := vfs.Walk(m.FS, root, func(path string, info fs.FileInfo, err error) error {
			if errors.Is(err, fs.ErrNotExist) && path == root {
				return fs.SkipDir
			}
			if err != nil {
				return err
			}
			e := Entry{Mode: info.Mode() & (fs.ModePerm | fs.ModeDir)}
			if !info.IsDir() {
				b, err := m.FS.ReadFile(path)
				if err != nil {
					return err
				}
				e.Content = string(b)
			}
			out[path] = e
			return nil
		})
		if err != nil {
			t.Fatalf("walking %s: %v", root, err)
		}
	}
	return out
}

// Console is yip's console for tests.
type Console struct {
	fs vfs.FS
	// Commands are the commands run, in order (if: conditions excluded).
	Commands []string
	// Conditions are the if: conditions evaluated, with their results.
	Conditions []string
}

// Run implements yip's plugins.Console: conditions are evaluated, commands
// recorded (and played when they are file commands).
func (c *Console) Run(cmd string, _ ...func(*exec.Cmd)) (string, error) {
	if ok, isCond := c.condition(cmd); isCond {
		c.Conditions = append(c.Conditions, fmt.Sprintf("%s => %t", cmd, ok))
		if !ok {
			return "", errors.New("exit status 1")
		}
		return "", nil
	}
	c.Commands = append(c.Commands, cmd)
	return "", c.play(cmd)
}

// Start implements plugins.Console.
func (c *Console) Start(cmd *exec.Cmd, _ ...func(*exec.Cmd)) error {
	_, err := c.Run(strings.Join(cmd.Args, " "))
	return err
}

// RunTemplate implements plugins.Console.
func (c *Console) RunTemplate(args []string, template string) error {
	for _, a := range args {
		if _, err := c.Run(fmt.Sprintf(template, a)); err != nil {
			return err
		}
	}
	return nil
}

// condition evaluates cmd when it is a condition the stages use: tests
// ([ -e P ], [ ! -f P ], [ -d P ]) and grep -Eqs 'RE' FILE, each possibly
// negated with !, joined by && and || (left to right, as sh does).
func (c *Console) condition(cmd string) (result, isCondition bool) {
	words, ok := split(cmd)
	if !ok || len(words) == 0 {
		return false, false
	}
	result, op := true, "&&"
	for len(words) > 0 {
		var ok bool
		var v bool
		v, words, ok = c.test(words)
		if !ok {
			return false, false
		}
		if op == "&&" {
			result = result && v
		} else {
			result = result || v
		}
		if len(words) == 0 {
			break
		}
		if op = words[0]; op != "&&" && op != "||" {
			return false, false
		}
		words = words[1:]
	}
	return result, true
}

// test evaluates one (possibly negated) test at the start of words.
func (c *Console) test(words []string) (bool, []string, bool) {
	if len(words) > 0 && words[0] == "!" {
		v, rest, ok := c.test(words[1:])
		return !v, rest, ok
	}
	switch {
	case len(words) >= 4 && words[0] == "[" && words[3] == "]":
		info, err := c.fs.Stat(words[2])
		switch words[1] {
		case "-e":
			return err == nil, words[4:], true
		case "-f":
			return err == nil && info.Mode().IsRegular(), words[4:], true
		case "-d":
			return err == nil && info.IsDir(), words[4:], true
		}
	case len(words) >= 5 && words[0] == "[" && words[1] == "!" && words[4] == "]":
		v, _, ok := c.test([]string{"[", words[2], words[3], "]"})
		return !v, words[5:], ok
	case len(words) >= 4 && words[0] == "grep" && words[1] == "-Eqs":
		re, err := regexp.Compile(words[2])
		if err != nil {
			return false, nil, false
		}
		b, err := c.fs.ReadFile(words[3])
		return err == nil && re.Match(b), words[4:], true
	}
	return false, nil, false
}

// play applies the file commands the stages use to the test root.
func (c *Console) play(cmd string) error {
	w, ok := split(cmd)
	if !ok {
		return nil
	}
	switch {
	case len(w) == 9 && w[0] == "install" && w[1] == "-m" && w[3] == "-o" && w[5] == "-g":
		mode, err := strconv.ParseUint(w[2], 8, 32)
		if err != nil {
			return err
		}
		b, err := c.fs.ReadFile(w[7])
		if err != nil {
			return fmt.Errorf("install: %w", err)
		}
		if err := c.fs.WriteFile(w[8], b, fs.FileMode(mode)); err != nil {
			return err
		}
		return c.fs.Chmod(w[8], fs.FileMode(mode))
	case len(w) == 3 && w[0] == "rm" && w[1] == "-f":
		if err := c.fs.Remove(w[2]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// split splits a command into words the way sh would for the simple
// commands of the stages: blanks separate words, single quotes quote.
func split(s string) ([]string, bool) {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			cur.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.ContainsRune("\"\\$`;|&<>(){}\n", r) && !(r == '&' || r == '|'):
			return nil, false // more shell than this reads
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, false
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, true
}
