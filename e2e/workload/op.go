package workload

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// Kind is what an operation does.
type Kind string

// The operation kinds.
const (
	KindCreate Kind = "create" // POST: fails with AlreadyExists if the key exists
	KindUpdate Kind = "update" // PUT with metadata.resourceVersion = IfRV
	KindDelete Kind = "delete" // DELETE with preconditions.resourceVersion = IfRV
	KindGet    Kind = "get"    // GET with resourceVersion "" (a consistent read)
)

// Outcome is how an operation ended.
type Outcome string

// The outcomes.
const (
	OK      Outcome = "ok"      // acknowledged by the API server
	Failed  Outcome = "failed"  // certainly did not take effect
	Unknown Outcome = "unknown" // may or may not have taken effect
)

// Reasons of definite failures that the linearizability model interprets
// (they say something about the state). Other definite failures carry the
// API server's StatusReason and are treated as "no effect, no information".
const (
	ReasonAlreadyExists = string(metav1.StatusReasonAlreadyExists)
	ReasonConflict      = string(metav1.StatusReasonConflict)
	ReasonNotFound      = string(metav1.StatusReasonNotFound)
	// ReasonDiskFull: the datastore refused the write for want of space.
	ReasonDiskFull = "DiskFull"
)

// Op is one recorded operation.
type Op struct {
	ID       int64     `json:"id"`     // unique in a Recorder, in order of completion
	Client   int       `json:"client"` // client id
	Kind     Kind      `json:"kind"`
	Key      string    `json:"key"`             // ConfigMap name
	Value    string    `json:"value,omitempty"` // input value (create, update); unique per write
	IfRV     string    `json:"if_rv,omitempty"` // resourceVersion precondition (update, delete)
	Call     time.Time `json:"call"`            // invocation
	Return   time.Time `json:"return"`          // completion (for unknown: when the client gave up)
	Outcome  Outcome   `json:"outcome"`
	Reason   string    `json:"reason,omitempty"`    // failed: StatusReason; unknown: error class
	Err      string    `json:"err,omitempty"`       // error text
	OutValue string    `json:"out_value,omitempty"` // get ok: value read
	OutRV    string    `json:"out_rv,omitempty"`    // create/update/get ok: resourceVersion returned
	Endpoint int       `json:"endpoint"`            // index of the endpoint used
}

// IsWrite reports whether op is a create, update or delete.
func (o Op) IsWrite() bool {
	return o.Kind == KindCreate || o.Kind == KindUpdate || o.Kind == KindDelete
}

// Acked reports whether op is an acknowledged write.
func (o Op) Acked() bool { return o.IsWrite() && o.Outcome == OK }

// MayHaveHappened reports whether op is a write that took or may have taken
// effect (ok or unknown).
func (o Op) MayHaveHappened() bool {
	return o.IsWrite() && (o.Outcome == OK || o.Outcome == Unknown)
}

// Classify maps an error from client-go to an outcome and a reason. nil is
// OK. A definite failure is a status the API server decided on the request
// (it was not applied); everything else, including every transport error,
// a client-side timeout and every 5xx, is Unknown.
func Classify(err error) (Outcome, string) {
	if err == nil {
		return OK, ""
	}
	switch {
	case apierrors.IsAlreadyExists(err):
		return Failed, ReasonAlreadyExists
	case apierrors.IsConflict(err):
		return Failed, ReasonConflict
	case apierrors.IsNotFound(err):
		return Failed, ReasonNotFound
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsForbidden(err),
		apierrors.IsUnauthorized(err), apierrors.IsMethodNotSupported(err), apierrors.IsNotAcceptable(err),
		apierrors.IsUnsupportedMediaType(err), apierrors.IsRequestEntityTooLargeError(err),
		apierrors.IsTooManyRequests(err):
		return Failed, string(apierrors.ReasonForError(err))
	case apierrors.IsInternalError(err) && strings.Contains(err.Error(), "SQLSTATE 53100"):
		// PostgreSQL's disk_full as an error (not a crash) comes from the
		// statement that needed the space; its transaction never
		// committed. A commit whose WAL cannot be written crashes the
		// server instead, and the client sees the connection lost.
		return Failed, ReasonDiskFull
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return Unknown, "Timeout"
	case utilnet.IsConnectionRefused(err):
		return Unknown, "ConnectionRefused"
	case utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err), utilnet.IsHTTP2ConnectionLost(err):
		return Unknown, "ConnectionLost"
	case errors.As(err, &ne) && ne.Timeout(), utilnet.IsTimeout(err):
		return Unknown, "Timeout"
	}
	if r := apierrors.ReasonForError(err); r != metav1.StatusReasonUnknown {
		return Unknown, string(r) // InternalError, ServerTimeout, Timeout, ServiceUnavailable ...
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return Unknown, "Status"
	}
	return Unknown, "Error"
}

// Recorder collects operations from concurrent clients.
type Recorder struct {
	mu  sync.Mutex
	ops []Op
	seq int64
}

// Add records op (assigning its ID) and returns it.
func (r *Recorder) Add(op Op) Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	op.ID = r.seq
	r.ops = append(r.ops, op)
	return op
}

// Ops returns a copy of everything recorded, in order of invocation.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	out := append([]Op(nil), r.ops...)
	r.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call.Before(out[j].Call) })
	return out
}

// Acked returns the acknowledged writes among ops.
func Acked(ops []Op) []Op {
	var out []Op
	for _, op := range ops {
		if op.Acked() {
			out = append(out, op)
		}
	}
	return out
}

// Count returns how many ops have the given outcome (all kinds).
func Count(ops []Op, o Outcome) int {
	n := 0
	for _, op := range ops {
		if op.Outcome == o {
			n++
		}
	}
	return n
}

// FirstAckAfter returns the acknowledged write that was invoked at or after
// t and completed first. A write invoked before the fault and acknowledged
// after it proves nothing about recovery, hence "invoked at or after".
func FirstAckAfter(ops []Op, t time.Time) (Op, bool) {
	var best Op
	found := false
	for _, op := range ops {
		if op.Acked() && !op.Call.Before(t) && (!found || op.Return.Before(best.Return)) {
			best, found = op, true
		}
	}
	return best, found
}

// APIRTO is the api_rto_ms of a Result: milliseconds from fault to the
// completion of the first acknowledged write invoked at or after it; nil
// if there is none.
func APIRTO(ops []Op, fault time.Time) *int64 {
	op, ok := FirstAckAfter(ops, fault)
	if !ok {
		return nil
	}
	ms := op.Return.Sub(fault).Milliseconds()
	return &ms
}

// WriteHistory writes ops to path as JSON lines (one Op per line), for a
// human or a later tool to look at after a failed scenario.
func WriteHistory(path string, ops []Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
