package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RefusedError is a connection to the peer that TLS refused, with why in
// an operator's words; the original error stays wrapped.
type RefusedError struct {
	Why string
	Err error
}

func (e *RefusedError) Error() string { return e.Why + ": " + e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// Refused says whether err is (or wraps) a RefusedError.
func Refused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// Explain says in an operator's words why a TLS connection to the peer
// failed, as a *RefusedError, when it failed over TLS; other errors are
// returned unchanged.
func Explain(err error) error {
	if err == nil || Refused(err) {
		return err
	}
	var (
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		record   tls.RecordHeaderError
		verify   *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknown):
		name := ""
		if unknown.Cert != nil {
			name = unknown.Cert.Issuer.CommonName
		}
		return refused(err, "the peer's TLS certificate is not from this pair's CA (its issuer: %q): the nodes' cluster secrets differ", name)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		end := "?"
		if invalid.Cert != nil {
			end = invalid.Cert.NotAfter.UTC().Format(time.RFC3339)
		}
		return refused(err, "the peer's TLS certificate expired at %s (this node's clock says %s): a node renews its certificate while it runs, so one of the two clocks is wrong, or the peer ran an old certificate",
			end, time.Now().UTC().Format(time.RFC3339))
	case errors.As(err, &hostname):
		return refused(err, "the peer's TLS certificate is for another address (%s), not for the one this node dials: is peer.address right on both nodes?",
			strings.Join(certAddrs(hostname.Certificate), ", "))
	case errors.As(err, &record), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return refused(err, "the peer does not speak TLS (a twonode older than TLS between the nodes?)")
	case errors.As(err, &verify):
		return refused(err, "the peer's TLS certificate was refused")
	}
	return err
}

func refused(err error, format string, a ...any) error {
	return &RefusedError{Why: fmt.Sprintf(format, a...), Err: err}
}

func certAddrs(c *x509.Certificate) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return append(out, c.DNSNames...)
}
