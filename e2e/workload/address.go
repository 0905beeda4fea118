package workload

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// AddressWriter updates one ConfigMap through the pair's address every
// 50 ms, as a kubeconfig that names the address would (kubectl, a
// worker's kubelet), and keeps when each update was sent and
// acknowledged. It does not enter the checked history: through the
// address nobody can say which node answered.
type AddressWriter struct {
	cs     *kubernetes.Clientset
	name   string
	mu     sync.Mutex
	acks   []addressAck
	paused bool
}

// Pause stops the writes until Pause(false): for a scenario that must
// know which node was written to last (a split decided by the later
// write), since through the address nobody can say.
func (v *AddressWriter) Pause(on bool) {
	v.mu.Lock()
	v.paused = on
	v.mu.Unlock()
}

type addressAck struct{ sent, acked time.Time }

// NewAddressWriter writes ConfigMap name through c (whose Host is the
// pair's address; give it a timeout per request, or a request to a node
// that died waits for TCP).
func NewAddressWriter(c *rest.Config, name string) (*AddressWriter, error) {
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, err
	}
	return &AddressWriter{cs: cs, name: name}, nil
}

// Run writes until ctx ends.
func (v *AddressWriter) Run(ctx context.Context) {
	cms := v.cs.CoreV1().ConfigMaps("default")
	for ctx.Err() == nil {
		v.mu.Lock()
		paused := v.paused
		v.mu.Unlock()
		if paused {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		sent := time.Now()
		data := map[string]string{"n": sent.Format(time.RFC3339Nano)}
		_, err := cms.Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: v.name}, Data: data}, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: v.name}, Data: data}, metav1.CreateOptions{})
		}
		if err == nil {
			v.mu.Lock()
			v.acks = append(v.acks, addressAck{sent, time.Now()})
			v.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FirstAckAfter is the acknowledgement of the first write sent at or after
// t (as api_rto_ms counts).
func (v *AddressWriter) FirstAckAfter(t time.Time) (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, a := range v.acks {
		if !a.sent.Before(t) {
			return a.acked, true
		}
	}
	return time.Time{}, false
}

// Acked is how many writes were acknowledged.
func (v *AddressWriter) Acked() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.acks)
}
