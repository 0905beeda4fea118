//go:build !linux

package postgres

import (
	"io/fs"
	"os"
	"path/filepath"
)

// syncData fsyncs every file under dir (no syncfs(2) here).
func syncData(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
