package harness

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/archive"
)

// Verify reads every acked key through c and returns the acked writes that
// are missing or hold a different value (Err of each returned op says
// which: "lost: missing" or "lost: value ..."). Keys are read per scenario
// prefix in one range read each (one consistent snapshot per prefix), with
// up to 3 attempts of 5 s. err means the check itself could not be done.
func Verify(ctx context.Context, c *clientv3.Client, acked []Op) ([]Op, error) {
	groups := map[string][]Op{}
	for _, op := range acked {
		dir := path.Dir(op.Key) + "/"
		groups[dir] = append(groups[dir], op)
	}
	dirs := make([]string, 0, len(groups))
	for d := range groups {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	var lost []Op
	for _, dir := range dirs {
		got, err := readPrefix(ctx, c, dir)
		if err != nil {
			return nil, fmt.Errorf("harness: verify %s: %w", dir, err)
		}
		for _, op := range groups[dir] {
			v, ok := got[op.Key]
			switch {
			case !ok:
				op.Err = "lost: missing"
			case v != op.Value:
				op.Err = fmt.Sprintf("lost: value %q, want %q", v, op.Value)
			default:
				continue
			}
			lost = append(lost, op)
		}
	}
	return lost, nil
}

func readPrefix(ctx context.Context, c *clientv3.Client, prefix string) (map[string]string, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, errors.Join(err, ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var resp *clientv3.GetResponse
		resp, err = c.Get(rctx, prefix, clientv3.WithPrefix())
		cancel()
		if err == nil {
			m := make(map[string]string, len(resp.Kvs))
			for _, kv := range resp.Kvs {
				m[string(kv.Key)] = string(kv.Value)
			}
			return m, nil
		}
	}
	return nil, err
}

// ArchiveHeader is the first line of a split-brain archive file (the
// format is bootstrap/archive's, which reads it).
type ArchiveHeader = archive.Header

// ArchiveRow is one kine row saved from the losing side of a split brain,
// as bootstrap/archive reads it, with its NULLs read as zero.
type ArchiveRow struct {
	File           string // archive file it came from
	Header         ArchiveHeader
	ID             int64
	Name           string
	Created        bool
	Deleted        bool
	CreateRevision int64
	PrevRevision   int64
	Lease          int64
	Value          []byte
	OldValue       []byte
}

// ReadArchives reads every archive in dir (e.g. <data_dir>/archive of
// the losing node; sealed ones opened with the pair's secret) with
// bootstrap/archive's reader. A missing dir means no archives (nil, nil).
func ReadArchives(dir string, secret []byte) ([]ArchiveRow, error) {
	files, err := archive.Files(dir)
	if err != nil {
		return nil, err
	}
	var rows []ArchiveRow
	for _, f := range files {
		hdr, rs, err := archive.ReadFile(f, secret)
		for _, r := range rs {
			rows = append(rows, ArchiveRow{
				File: f, Header: hdr, ID: r.ID, Name: r.Key(), Created: r.IsCreated(), Deleted: r.IsDeleted(),
				CreateRevision: r.CreateRev(), PrevRevision: r.PrevRev(), Lease: r.LeaseID(), Value: r.Value, OldValue: r.OldValue,
			})
		}
		if err != nil {
			return rows, fmt.Errorf("harness: %w", err)
		}
	}
	return rows, nil
}

// MatchArchive splits lost writes into those found in the archive (same key
// and value: the data was not destroyed, it was set aside for an operator)
// and the unexplained ones.
func MatchArchive(lost []Op, rows []ArchiveRow) (archived, unexplained []Op) {
	have := map[[2]string]bool{}
	for _, r := range rows {
		have[[2]string{r.Name, string(r.Value)}] = true
	}
	for _, op := range lost {
		if have[[2]string{op.Key, op.Value}] {
			archived = append(archived, op)
		} else {
			unexplained = append(unexplained, op)
		}
	}
	return archived, unexplained
}
