// Package peer is the agent-to-agent API: plain HTTP on the node address
// (port 8760), authenticated with the shared cluster secret.
//
// Replay protection must not depend on the two wall clocks agreeing (a fault
// test runs one node ten minutes ahead), so it is challenge/response, not
// timestamps:
//
//  1. GET /v1/challenge (unauthenticated) returns a fresh 32-byte random
//     challenge. The server remembers it for 30 s of its own monotonic clock;
//     each challenge is good for one request.
//  2. The request carries X-Twonode-Challenge and X-Twonode-Signature =
//     hex(HMAC-SHA256(secret, "req2\n"+from+"\n"+to+"\n"+method+"\n"+path+"\n"+challenge+"\n"+hex(sha256(body)))),
//     from and to the two nodes' names: both hold the one secret, so
//     without them a request a node signed for its peer could be
//     reflected back to it.
//  3. Every answer to an authenticated request carries
//     X-Twonode-Response-Signature = hex(HMAC-SHA256(secret, "resp2\n"+from+"\n"+to+"\n"+challenge+"\n"+hex(sha256(body))))
//     so the client knows the peer, not an impostor nor itself, answered
//     this very request, and X-Twonode-Next-Challenge, which the client
//     keeps for its next call so a probe costs one round trip, not two.
//     Agents of before December 2026 signed both without the names (see
//     legacyRequestMAC): still served and believed, for rolling upgrades.
//
// The response signature covers the body, not the status code, so every body
// is self-describing: refusals are {"error":"..."}, successes never carry an
// "error" member, and the client believes neither a success without a
// signature nor a status code that contradicts the signed body.
//
// Answers rejected before authentication (401, 404, 405, 413) are unsigned:
// signing them would hand anyone an HMAC over a challenge of their choosing.
package peer
