package postgres

import (
	"fmt"
	"os"
	"path/filepath"
)

// ensureDir creates dir (parents 0755 as root) and gives it to OSUser, 0700.
func (m *Manager) ensureDir(dir string) error {
	uid, gid, err := m.ids()
	if err != nil {
		return err
	}
	// Parents 0755: OSUser must traverse them.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("postgres: create %s: %w", filepath.Dir(dir), err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("postgres: create %s: %w", dir, err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return fmt.Errorf("postgres: chown %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("postgres: chmod %s: %w", dir, err)
	}
	return checkTraversable(filepath.Dir(dir), uid, gid)
}

// checkTraversable fails early, with the directory named, when OSUser could
// not reach a path below dir (a root-only 0700 parent): the tools would
// otherwise fail with a bare "permission denied".
func checkTraversable(dir string, uid, gid uint32) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("postgres: %s: %w", d, err)
		}
		if st, ok := statOwner(fi); ok {
			perm := fi.Mode().Perm()
			var x bool
			switch {
			case st.uid == uid:
				x = perm&0o100 != 0
			case st.gid == gid:
				x = perm&0o010 != 0
			default:
				x = perm&0o001 != 0
			}
			if !x {
				return fmt.Errorf("postgres: %s is not traversable by the PostgreSQL OS user (uid %d): give it o+x", d, uid)
			}
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// writeOwned writes a file atomically (temp file, fsync, rename), owned by
// OSUser with mode 0600: PostgreSQL and its tools rewrite these files.
func (m *Manager) writeOwned(path, content string) error {
	uid, gid, err := m.ids()
	if err != nil {
		return err
	}
	tmp := path + ".twonode-tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Chown(int(uid), int(gid))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// ensureLogFile creates the server log (OSUser's, 0600): pg_ctl -l opens it
// as that user, and its directory is usually root's.
func (m *Manager) ensureLogFile() error {
	uid, gid, err := m.ids()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(m.s.LogFile), 0o755); err != nil {
		return fmt.Errorf("postgres: log directory: %w", err)
	}
	f, err := os.OpenFile(m.s.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("postgres: log file: %w", err)
	}
	defer f.Close()
	if err := f.Chown(int(uid), int(gid)); err != nil {
		return fmt.Errorf("postgres: log file: %w", err)
	}
	return checkTraversable(filepath.Dir(m.s.LogFile), uid, gid)
}

// touchOwned creates an empty signal file owned by OSUser.
func (m *Manager) touchOwned(name string) error {
	if err := m.writeOwned(m.path(name), ""); err != nil {
		return fmt.Errorf("postgres: create %s: %w", name, err)
	}
	return nil
}

func (m *Manager) removeFile(name string) error {
	if err := os.Remove(m.path(name)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("postgres: remove %s: %w", name, err)
	}
	return nil
}

func (m *Manager) exists(name string) bool {
	_, err := os.Stat(m.path(name))
	return err == nil
}
