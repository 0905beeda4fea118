package archive

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// The format of an archive's JSON lines (docs/design-contract.md): a
// Header, then one Row per line. postgres.Manager.Archive writes these
// types and Read reads them; nothing else parses the lines, so the two
// cannot drift apart (`twonode archive show` copies them as they are).

// Header is the first line of an archive. Its Count is the number of
// rows after it.
type Header struct {
	Kind    string    `json:"kind"` // always "header"
	Node    string    `json:"node"`
	Winner  string    `json:"winner"`
	Term    uint64    `json:"term"`
	ForkRev int64     `json:"fork_rev"`
	Count   int       `json:"count"`
	Created time.Time `json:"created"`
}

// HeaderKind is Header.Kind.
const HeaderKind = "header"

// Row is one Kine row as the archive holds it: Kine's columns, a NULL as
// JSON null (nil here), the values base64 (encoding/json's []byte).
type Row struct {
	ID             int64   `json:"id"`
	Name           *string `json:"name"`
	Created        *int64  `json:"created"`
	Deleted        *int64  `json:"deleted"`
	CreateRevision *int64  `json:"create_revision"`
	PrevRevision   *int64  `json:"prev_revision"`
	Lease          *int64  `json:"lease"`
	Value          []byte  `json:"value_b64"`
	OldValue       []byte  `json:"old_value_b64"`
}

// Key is the row's name ("" for NULL).
func (r Row) Key() string {
	if r.Name == nil {
		return ""
	}
	return *r.Name
}

// IsCreated and IsDeleted read Kine's 0/1 flags (NULL: false).
func (r Row) IsCreated() bool { return r.Created != nil && *r.Created != 0 }

// IsDeleted: the row records a deletion of Key (of revision PrevRev).
func (r Row) IsDeleted() bool { return r.Deleted != nil && *r.Deleted != 0 }

// PrevRev is the row's prev_revision (NULL: 0): for a deletion, the
// revision it removed.
func (r Row) PrevRev() int64 { return orZero(r.PrevRevision) }

// CreateRev is the row's create_revision (NULL: 0).
func (r Row) CreateRev() int64 { return orZero(r.CreateRevision) }

// LeaseID is the row's lease (NULL: 0).
func (r Row) LeaseID() int64 { return orZero(r.Lease) }

func orZero(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// Read reads one archive's lines from r (as Open returns them): the
// header, then the rows; fewer or more rows than the header counts is an
// error, returned with what was read. A row holds a whole object
// (Kubernetes objects reach megabytes): lines are not length-limited.
func Read(r io.Reader) (Header, []Row, error) {
	br := bufio.NewReader(r)
	var hdr Header
	var rows []Row
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if lineNo == 1 {
				if jerr := json.Unmarshal(line, &hdr); jerr != nil || hdr.Kind != HeaderKind {
					return hdr, nil, fmt.Errorf("archive: the first line is not a header (%v)", jerr)
				}
			} else {
				var row Row
				if jerr := json.Unmarshal(line, &row); jerr != nil {
					return hdr, rows, fmt.Errorf("archive: line %d: %w", lineNo, jerr)
				}
				rows = append(rows, row)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return hdr, rows, err
		}
	}
	if hdr.Kind != HeaderKind {
		return hdr, nil, errors.New("archive: empty")
	}
	if len(rows) != hdr.Count {
		return hdr, rows, fmt.Errorf("archive: the header counts %d rows, %d follow", hdr.Count, len(rows))
	}
	return hdr, rows, nil
}

// ReadFile opens (see Open) and reads (see Read) the archive at path.
func ReadFile(path string, secret []byte) (Header, []Row, error) {
	f, err := Open(path, secret)
	if err != nil {
		return Header{}, nil, err
	}
	defer f.Close()
	h, rows, err := Read(f)
	if err != nil {
		err = fmt.Errorf("%s: %w", path, err)
	}
	return h, rows, err
}
