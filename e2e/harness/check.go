package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
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

// ArchiveHeader is the first line of a split-brain archive file.
type ArchiveHeader struct {
	Kind    string  `json:"kind"`
	Node    string  `json:"node"`
	Winner  string  `json:"winner"`
	Term    flexInt `json:"term"`
	ForkRev flexInt `json:"fork_rev"`
	Count   flexInt `json:"count"`
	Created string  `json:"created"`
}

// ArchiveRow is one kine row saved from the losing side of a split brain.
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

type rawRow struct {
	Kind           string   `json:"kind"`
	ID             flexInt  `json:"id"`
	Name           string   `json:"name"`
	Created        flexBool `json:"created"`
	Deleted        flexBool `json:"deleted"`
	CreateRevision flexInt  `json:"create_revision"`
	PrevRevision   flexInt  `json:"prev_revision"`
	Lease          flexInt  `json:"lease"`
	ValueB64       *string  `json:"value_b64"`
	OldValueB64    *string  `json:"old_value_b64"`
}

// ReadArchives parses every archive in dir (e.g. <data_dir>/archive of
// the losing node; sealed ones opened with the pair's secret, see
// bootstrap/archive). A missing dir means no archives (nil, nil).
func ReadArchives(dir string, secret []byte) ([]ArchiveRow, error) {
	files, err := archive.Files(dir)
	if err != nil {
		return nil, err
	}
	var rows []ArchiveRow
	for _, f := range files {
		rs, err := readArchive(f, secret)
		if err != nil {
			return rows, err
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}

func readArchive(file string, secret []byte) ([]ArchiveRow, error) {
	f, err := archive.Open(file, secret)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// bufio.Reader, not Scanner: a row holds a whole object (Kubernetes
	// objects reach megabytes), beyond Scanner's default line limit.
	r := bufio.NewReader(f)
	var hdr ArchiveHeader
	var rows []ArchiveRow
	for lineNo := 1; ; lineNo++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if lineNo == 1 {
				if jerr := json.Unmarshal(line, &hdr); jerr != nil || hdr.Kind != "header" {
					return nil, fmt.Errorf("harness: %s: first line is not a header (%v)", file, jerr)
				}
			} else {
				row, perr := parseRow(line)
				if perr != nil {
					return nil, fmt.Errorf("harness: %s:%d: %w", file, lineNo, perr)
				}
				row.File, row.Header = file, hdr
				rows = append(rows, row)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if hdr.Kind != "header" {
		return nil, fmt.Errorf("harness: %s: empty archive", file)
	}
	if hdr.Count != 0 && int64(len(rows)) != int64(hdr.Count) {
		return rows, fmt.Errorf("harness: %s: header count %d, %d rows", file, hdr.Count, len(rows))
	}
	return rows, nil
}

func parseRow(line []byte) (ArchiveRow, error) {
	var rr rawRow
	if err := json.Unmarshal(line, &rr); err != nil {
		return ArchiveRow{}, err
	}
	if rr.Kind != "" {
		return ArchiveRow{}, fmt.Errorf("unexpected kind %q", rr.Kind)
	}
	row := ArchiveRow{
		ID: int64(rr.ID), Name: rr.Name, Created: bool(rr.Created), Deleted: bool(rr.Deleted),
		CreateRevision: int64(rr.CreateRevision), PrevRevision: int64(rr.PrevRevision), Lease: int64(rr.Lease),
	}
	var err error
	if rr.ValueB64 != nil {
		if row.Value, err = base64.StdEncoding.DecodeString(*rr.ValueB64); err != nil {
			return row, fmt.Errorf("value_b64: %w", err)
		}
	}
	if rr.OldValueB64 != nil {
		if row.OldValue, err = base64.StdEncoding.DecodeString(*rr.OldValueB64); err != nil {
			return row, fmt.Errorf("old_value_b64: %w", err)
		}
	}
	return row, nil
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

// flexInt accepts a JSON number, a numeric string or null (database
// columns may be rendered either way).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "null" || s == "" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	*f = flexInt(v)
	return err
}

// flexBool accepts true/false, 0/1 (kine stores created/deleted as ints)
// or null.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch string(bytes.Trim(b, `"`)) {
	case "true", "1", "t":
		*f = true
	case "false", "0", "f", "null", "":
		*f = false
	default:
		return fmt.Errorf("not a boolean: %s", b)
	}
	return nil
}
