package peer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// The decoders are what the server runs on an authenticated body; they are
// separate functions so that they can be fuzzed without HTTP.

func decodePause(b []byte) (PauseRequest, error) {
	var r PauseRequest
	if err := decodeStrict(b, &r); err != nil {
		return PauseRequest{}, err
	}
	switch {
	case r.For <= 0:
		return PauseRequest{}, errors.New("for_ns: must be a positive duration in nanoseconds")
	case r.For > int64(MaxPause):
		return PauseRequest{}, fmt.Errorf("for_ns: %s is longer than the %s maximum", time.Duration(r.For), MaxPause)
	}
	if err := validBy(r.By); err != nil {
		return PauseRequest{}, err
	}
	return r, nil
}

func decodeResume(b []byte) (ResumeRequest, error) {
	var r ResumeRequest
	if err := decodeStrict(b, &r); err != nil {
		return ResumeRequest{}, err
	}
	if err := validBy(r.By); err != nil {
		return ResumeRequest{}, err
	}
	return r, nil
}

func decodeHandover(b []byte) (HandoverRequest, error) {
	var r HandoverRequest
	if err := decodeStrict(b, &r); err != nil {
		return HandoverRequest{}, err
	}
	if err := validTerm(r.Term); err != nil {
		return HandoverRequest{}, err
	}
	if r.LSN == 0 {
		// The follower promotes only after replaying this far: without it
		// the wait for the leader's last WAL would be skipped.
		return HandoverRequest{}, errors.New("lsn: required (the leader's last WAL position)")
	}
	if err := validBy(r.By); err != nil {
		return HandoverRequest{}, err
	}
	return r, nil
}

func decodeFollow(b []byte) (FollowRequest, error) {
	var r FollowRequest
	if err := decodeStrict(b, &r); err != nil {
		return FollowRequest{}, err
	}
	if err := validTerm(r.Term); err != nil {
		return FollowRequest{}, err
	}
	if err := validBy(r.By); err != nil {
		return FollowRequest{}, err
	}
	return r, nil
}

// validTerm: a term the sender names is one of its own, within the bounds
// a status may carry.
func validTerm(t uint64) error {
	if t == 0 || t > MaxTerm {
		return fmt.Errorf("term: required, 1..%d (got %d)", uint64(MaxTerm), t)
	}
	return nil
}

// validBy: "by" ends up in log lines, so it is short printable ASCII (no
// newlines or escape sequences to forge or garble log entries).
func validBy(by string) error {
	if by == "" {
		return errors.New("by: required")
	}
	if len(by) > maxBy {
		return fmt.Errorf("by: %d bytes, more than %d", len(by), maxBy)
	}
	for i := 0; i < len(by); i++ {
		if c := by[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("by: byte %d (0x%02x) is not printable ASCII", i, c)
		}
	}
	return nil
}

// decodeStrict decodes exactly one JSON value into v: unknown fields and
// anything after the value are errors, because a body the peer did not mean
// (version skew, a truncated or concatenated write) must not half-apply.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// describeJSONError names the field or the problem, for the 400 answer.
func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("empty body: a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("truncated JSON: %w", err)
	case errors.As(err, &syn):
		return fmt.Errorf("malformed JSON at byte %d: %w", syn.Offset, err)
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Errorf("the body must be a JSON object, not %s", typ.Value)
	case errors.As(err, &typ):
		return fmt.Errorf("field %q: %s is not a valid %s", typ.Field, typ.Value, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for this one.
		return fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return fmt.Errorf("invalid JSON: %w", err)
}
