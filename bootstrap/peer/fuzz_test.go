package peer

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/.

func FuzzDecodePause(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodePause(b)
		if err != nil {
			if err.Error() == "" || r != (PauseRequest{}) {
				t.Fatalf("error %q with value %+v", err, r)
			}
			return
		}
		if r.For <= 0 || r.For > int64(MaxPause) || validBy(r.By) != nil {
			t.Fatalf("accepted an invalid request %+v", r)
		}
		again, err := decodePause(mustJSON(t, r))
		if err != nil || again != r {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, r)
		}
	})
}

func FuzzDecodeHandover(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeHandover(b)
		if err != nil {
			if err.Error() == "" || r != (HandoverRequest{}) {
				t.Fatalf("error %q with value %+v", err, r)
			}
			return
		}
		if r.Term == 0 || validBy(r.By) != nil {
			t.Fatalf("accepted an invalid request %+v", r)
		}
		again, err := decodeHandover(mustJSON(t, r))
		if err != nil || again != r {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, r)
		}
	})
}

// FuzzServeRequest throws arbitrary requests at the server. useIssued puts
// a challenge the server really issued in the header (else the fuzzed
// one); sign replaces the fuzzed signature with the correct one, so that
// the fuzzer also explores what lies behind authentication.
func FuzzServeRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, method, path, challenge, sig string, body []byte, useIssued, sign bool) {
		h := &fakeHandler{status: Status{Name: "b", Now: 1}}
		srv := newServer(testSecret, serverNames, h, nil, newFakeClock().now)
		issued := srv.ch.issue()
		if useIssued {
			challenge = issued
		}
		if sign {
			sig = hex.EncodeToString(requestMAC(testSecret, clientNames.Self, clientNames.Peer, method, path, challenge, body))
		}
		serve := func() *httptest.ResponseRecorder {
			req := &http.Request{
				Method:        method,
				URL:           &url.URL{Path: path},
				Header:        http.Header{},
				Body:          io.NopCloser(bytes.NewReader(body)),
				ContentLength: int64(len(body)),
				RemoteAddr:    "192.0.2.1:1234",
			}
			req.Header.Set(hdrChallenge, challenge)
			req.Header.Set(hdrSignature, sig)
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			return rec
		}
		rec := serve()

		authentic := challenge == issued && len(body) <= MaxBodyBytes &&
			macMatches(sig, requestMAC(testSecret, clientNames.Self, clientNames.Peer, method, path, challenge, body))
		if h.count() > 0 && !authentic {
			t.Fatalf("handler called for an unauthenticated %q %q (code %d)", method, path, rec.Code)
		}
		if _, ok := routes[path]; ok && rec.Code == http.StatusOK && h.count() != 1 {
			t.Fatalf("%s %s answered 200 but the handler ran %d times", method, path, h.count())
		}
		switch rec.Code {
		case 200, 400, 401, 404, 405, 409, 413, 500:
		default:
			t.Fatalf("unexpected status %d", rec.Code)
		}
		var e errorReply
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatalf("answer is not JSON: %q", rec.Body.Bytes())
		}
		if (rec.Code == 200) == (e.Error != "") {
			t.Fatalf("status %d with error %q", rec.Code, e.Error)
		}
		if rs := rec.Header().Get(hdrRespSignature); rs != "" {
			if !authentic || !macMatches(rs, responseMAC(testSecret, serverNames.Self, serverNames.Peer, challenge, rec.Body.Bytes())) {
				t.Fatalf("bad or unearned response signature on %d", rec.Code)
			}
		} else if h.count() > 0 || rec.Header().Get(hdrNextChallenge) != "" {
			t.Fatalf("authenticated answer %d without a signature", rec.Code)
		}
		// Whatever happened, the same request again never reaches the handler.
		before := h.count()
		if rec := serve(); h.count() != before {
			t.Fatalf("replay reached the handler (code %d)", rec.Code)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
