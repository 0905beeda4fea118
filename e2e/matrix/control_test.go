package matrix

import (
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The control plane as k3s runs it: each node's controller manager and
// scheduler elect a leader through a Lease. A leader renews every
// apiserver.RetryPeriod (2 s); one that cannot for
// apiserver.RenewDeadline (10 s) gives up and exits, and on a real node k3s
// exits with it; if its node died instead, another takes the Lease once
// it expires (apiserver.LeaseDuration, 15 s). So the longest time between
// two renewals of each Lease is how long the component was without a
// working leader.

// renewGap is the longest time between two renewals of a Lease (by any
// instance, as each logged them), from the last renewal at or before the
// fault to end; nil if it was never renewed.
func renewGap(renewals []time.Time, fault, end time.Time) *int64 {
	if len(renewals) == 0 {
		return nil
	}
	slices.SortFunc(renewals, time.Time.Compare)
	start := 0
	for i, r := range renewals {
		if !r.After(fault) {
			start = i
		}
	}
	var gap time.Duration
	prev := renewals[start]
	for _, r := range append(renewals[start+1:], end) {
		gap = max(gap, r.Sub(prev))
		prev = r
	}
	ms := gap.Milliseconds()
	return &ms
}

// controllersProgress creates a Deployment after the fault and waits until
// the controllers have made its ReplicaSet and the ReplicaSet its Pod, and
// the scheduler has judged the Pod (the pair has no kubelet, so no node:
// the Pod is marked unschedulable, which only the scheduler writes).
// Returns how long that took, through whichever API server answers.
func controllersProgress(ctx context.Context, eps []*rest.Config, name string) (time.Duration, error) {
	var cs []*kubernetes.Clientset
	for _, ep := range eps {
		c := rest.CopyConfig(ep)
		c.Timeout = 2 * time.Second
		k, err := kubernetes.NewForConfig(c)
		if err != nil {
			return 0, err
		}
		cs = append(cs, k)
	}
	one := int32(1)
	labels := map[string]string{"twonode-progress": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/none:0"}}},
			},
		},
	}
	start := time.Now()
	step := func(what string, f func(*kubernetes.Clientset) (bool, error)) error {
		var last error
		for i := 0; ; i++ {
			done, err := f(cs[i%len(cs)])
			if done {
				return nil
			}
			last = err
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s: not within %s (last error: %v)", what, time.Since(start).Round(time.Second), last)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	err := step("create the Deployment", func(c *kubernetes.Clientset) (bool, error) {
		_, err := c.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) { // a create whose answer was lost
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return 0, err
	}
	sel := "twonode-progress=" + name
	if err = step("the ReplicaSet", func(c *kubernetes.Clientset) (bool, error) {
		l, err := c.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: sel})
		return err == nil && len(l.Items) > 0, err
	}); err != nil {
		return 0, err
	}
	err = step("the Pod, judged by the scheduler", func(c *kubernetes.Clientset) (bool, error) {
		l, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err
		}
		for _, p := range l.Items {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodScheduled {
					return true, nil
				}
			}
		}
		return false, fmt.Errorf("%d pods, none judged by the scheduler", len(l.Items))
	})
	return time.Since(start), err
}
