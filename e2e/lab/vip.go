package lab

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/twonode-edge/twonode/e2e/cluster"
)

// vipWriter updates one ConfigMap through the pair's address every 50 ms,
// as a kubeconfig that names it would, and keeps when each update was
// acknowledged.
type vipWriter struct {
	cs    *kubernetes.Clientset
	mu    sync.Mutex
	acked []time.Time
}

func newVIPWriter(c *rest.Config) (*vipWriter, error) {
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, err
	}
	return &vipWriter{cs: cs}, nil
}

const vipConfigMap = "lab-through-the-pairs-address"

func (v *vipWriter) run(ctx context.Context) {
	cms := v.cs.CoreV1().ConfigMaps("default")
	for i := 0; ctx.Err() == nil; i++ {
		data := map[string]string{"n": time.Now().Format(time.RFC3339Nano)}
		_, err := cms.Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: vipConfigMap}, Data: data}, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: vipConfigMap}, Data: data}, metav1.CreateOptions{})
		}
		if err == nil {
			v.mu.Lock()
			v.acked = append(v.acked, time.Now())
			v.mu.Unlock()
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// firstAfter is the first acknowledgement after t.
func (v *vipWriter) firstAfter(t time.Time) (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, a := range v.acked {
		if a.After(t) {
			return a, true
		}
	}
	return time.Time{}, false
}

// watchVIP samples, every 20 ms for up to 30 s, where the address is; the
// returned function says when node first held it, and when it first held
// it alone.
func watchVIP(ctx context.Context, r *cluster.VIPReader, node string) func() (taken, alone time.Time) {
	var (
		mu           sync.Mutex
		taken, alone time.Time
	)
	other := "a"
	if node == "a" {
		other = "b"
	}
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			on, err1 := r.Held(node)
			off, err2 := r.Held(other)
			now := time.Now()
			mu.Lock()
			if err1 == nil && on && taken.IsZero() {
				taken = now
			}
			if err1 == nil && err2 == nil && on && !off {
				alone = now
			}
			done := !alone.IsZero()
			mu.Unlock()
			if done {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() (time.Time, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		return taken, alone
	}
}
