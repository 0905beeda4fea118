package peer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

const (
	hdrChallenge     = "X-Twonode-Challenge"
	hdrSignature     = "X-Twonode-Signature"
	hdrNextChallenge = "X-Twonode-Next-Challenge"
	hdrRespSignature = "X-Twonode-Response-Signature"
)

const challengeBytes = 32

// newChallenge returns 32 random bytes as lower-case hex. crypto/rand does
// not fail on supported platforms (it aborts the process instead).
func newChallenge() string {
	b := make([]byte, challengeBytes)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// wellFormedChallenge rejects anything that cannot be one of ours before it
// reaches the map, so garbage headers cost nothing.
func wellFormedChallenge(s string) bool {
	if len(s) != 2*challengeBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func bodyHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func requestMAC(secret []byte, method, path, challenge string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("req\n" + method + "\n" + path + "\n" + challenge + "\n" + bodyHash(body)))
	return m.Sum(nil)
}

func responseMAC(secret []byte, challenge string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("resp\n" + challenge + "\n" + bodyHash(body)))
	return m.Sum(nil)
}

// macMatches compares a hex signature header with the expected MAC in
// constant time (hmac.Equal), so timing reveals nothing about the MAC.
func macMatches(header string, want []byte) bool {
	got, err := hex.DecodeString(header)
	if err != nil || len(got) != len(want) {
		return false
	}
	return hmac.Equal(got, want)
}
