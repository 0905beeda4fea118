package matrix

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/twonode-edge/twonode/e2e/harness"
)

// wire records the pair's link during a scenario (tcpdump on the LAN's
// switch, as anyone on the site's network could) and checks afterwards
// that no value Kine carried crossed it in clear. The values are a
// Secret's, written through the API servers before the fault and after it,
// so that each crosses the link in every way a row does: replicated to the
// follower in the WAL, written by a follower's Kine into the leader's
// database, copied by the rejoin.
type wire struct {
	cap     *harness.Capture
	secrets []string // the canary values written
	control string   // a value sent in clear (the capture's positive control)
}

const canaryName = "wire-canary"

// startWire starts the capture; call it before the first canary write.
func (r *rig) startWire() {
	r.t.Helper()
	cap, err := r.c.Net.StartCapture(filepath.Join(r.c.Opts.Dir, "link.pcap"), harness.PairLinkFilter+" or udp port 9")
	if err != nil {
		r.t.Fatal(err)
	}
	r.wire = &wire{cap: cap, control: "twonode-control-" + fmt.Sprint(time.Now().UnixNano())}
	r.t.Cleanup(cap.Stop)
	r.sendControl()
	r.writeCanary()
}

// sendControl sends the positive control's datagram to a; at the start
// and again at the end, as a node that was powered off has a new link the
// client namespace may not have resolved yet when the capture stops.
func (r *rig) sendControl() {
	r.t.Helper()
	payload := ""
	for _, e := range harness.Encodings(r.wire.control) {
		payload += e + " "
	}
	if err := r.c.Net.SendInClear(context.Background(), r.c.Nodes["a"].Addr, payload); err != nil {
		r.t.Fatal(err)
	}
}

// writeCanary writes a new random value into the canary Secret through
// whichever API server takes it.
func (r *rig) writeCanary() {
	r.t.Helper()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	v := "twonode-canary-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		for _, ep := range r.eps {
			cs, err := kubernetes.NewForConfig(ep)
			if err != nil {
				r.t.Fatal(err)
			}
			if last = putSecret(ctx, cs, v); last == nil {
				r.wire.secrets = append(r.wire.secrets, v)
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.t.Fatalf("writing the canary Secret: %v", last)
}

func putSecret(ctx context.Context, cs kubernetes.Interface, v string) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: canaryName}, Data: map[string][]byte{"token": []byte(v)}}
	_, err := cs.CoreV1().Secrets("default").Update(ctx, s, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cs.CoreV1().Secrets("default").Create(ctx, s, metav1.CreateOptions{})
	}
	return err
}

// checkWire writes the second canary, stops the capture and fails the
// scenario if any canary, in any encoding, or the peer API's own headers
// and fields, are in it. The positive control: a datagram sent in clear
// from the client namespace with the same encodings of a value of its own
// is found, so an empty result means encrypted, not unrecorded.
func (r *rig) checkWire() {
	t := r.t
	t.Helper()
	r.writeCanary()
	r.sendControl()
	time.Sleep(2 * time.Second) // the follower's copy crosses too
	r.wire.cap.Stop()

	pg, err := r.wire.cap.Packets("tcp port 5432")
	if err != nil {
		t.Fatal(err)
	}
	api, err := r.wire.cap.Packets("tcp port 8760")
	if err != nil {
		t.Fatal(err)
	}
	if found, err := r.wire.cap.Find(harness.Encodings(r.wire.control)...); err != nil || len(found) != 3 {
		t.Fatalf("the capture's positive control: found %d of 3 encodings of a value sent in clear (%v): the capture cannot judge", len(found), err)
	}
	var needles []string
	for _, v := range r.wire.secrets {
		needles = append(needles, harness.Encodings(v)...)
	}
	// What the peer API's messages would show in clear.
	needles = append(needles, "X-Twonode-Challenge", "X-Twonode-Signature", `"term":`)
	found, err := r.wire.cap.Find(needles...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wire: %d PostgreSQL and %d peer API packets captured on the LAN's switch; %d canary values written; in clear: %d of %d needles",
		pg, api, len(r.wire.secrets), len(found), len(needles))
	switch {
	case pg < 1000 || api < 100:
		t.Errorf("the capture saw too little of the link to judge (%d PostgreSQL, %d peer API packets)", pg, api)
	case len(found) > 0:
		t.Errorf("readable on the pair's link (%s): %q", r.wire.cap.Path, found)
	}
}
