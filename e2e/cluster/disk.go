package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// A node's data directory on a small filesystem of its own, and a filler
// that takes every free block of it: the disk-full faults. tmpfs stands
// for the disk: it has a hard size, ENOSPC like any filesystem, and needs
// no loop device.

func mountData(dir, size string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	_ = unmountData(dir) // a leftover of an interrupted run
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0711", "tmpfs", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cluster: mounting a %s filesystem on %s: %w: %s", size, dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func unmountData(dir string) error {
	if !isMountPoint(dir) {
		return nil
	}
	if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("cluster: umount %s: %w: %s", dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func isMountPoint(dir string) bool {
	var a, b syscall.Stat_t
	if syscall.Stat(dir, &a) != nil || syscall.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// fillerName is the file that fills a node's disk.
const fillerName = "disk-filler"

// FillDisk writes a file into the node's data filesystem until it is full
// (ENOSPC) and returns how many bytes it took. The pair was made with
// Options.DataSize.
func (c *Cluster) FillDisk(name string) (int64, error) {
	dir := c.Nodes[name].DataDir()
	if !isMountPoint(dir) {
		return 0, errors.New("cluster: FillDisk needs Options.DataSize (the data directory is not a filesystem of its own)")
	}
	f, err := os.OpenFile(filepath.Join(dir, fillerName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// FreeDisk removes the filler: the operator cleared space.
func (c *Cluster) FreeDisk(name string) error {
	err := os.Remove(filepath.Join(c.Nodes[name].DataDir(), fillerName))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}
