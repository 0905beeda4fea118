package workload

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// DataKey is the ConfigMap data key holding the workload's value.
const DataKey = "v"

// LabelKey labels every ConfigMap the workload creates with the workload's
// name, so that ReadFinal and the watch checker see only its objects.
const LabelKey = "twonode.io/workload"

// restClients builds one core/v1 REST client per endpoint. Client-side
// throttling is off (the workload bounds its own rate); everything else
// (TLS, auth, content type) comes from the given configs.
func restClients(endpoints []*rest.Config) ([]rest.Interface, error) {
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("workload: no endpoints")
	}
	out := make([]rest.Interface, len(endpoints))
	for i, ep := range endpoints {
		if ep == nil {
			return nil, fmt.Errorf("workload: endpoint %d is nil", i)
		}
		cfg := rest.CopyConfig(ep)
		cfg.RateLimiter = flowcontrol.NewFakeAlwaysRateLimiter()
		c, err := corev1client.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("workload: endpoint %d: %w", i, err)
		}
		out[i] = c.RESTClient()
	}
	return out, nil
}

// Client issues recorded ConfigMap operations as one client id. It sends
// to its current endpoint and moves to the next one (in preference order,
// wrapping around) after an operation whose outcome is unknown: a
// connection error, a timeout or a 5xx, the signs of a node that is down or
// cut off. A pinned client never moves. A Client is safe for concurrent
// use, but a workload client is one goroutine (one outstanding operation,
// as a Jepsen process).
type Client struct {
	ID int

	rec       *Recorder
	eps       []rest.Interface
	namespace string
	labels    map[string]string
	timeout   time.Duration

	mu     sync.Mutex
	cur    int
	pinned bool
}

// NewClient makes a client that records into rec. labels are put on every
// created or updated object; timeout bounds each operation.
func NewClient(id int, rec *Recorder, endpoints []rest.Interface, namespace string, labels map[string]string, timeout time.Duration) *Client {
	return &Client{ID: id, rec: rec, eps: endpoints, namespace: namespace, labels: labels, timeout: timeout}
}

// Pin makes the client use only endpoint i (-1 unpins: rotate on unknown
// outcomes again).
func (c *Client) Pin(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 {
		c.pinned = false
		return
	}
	c.cur, c.pinned = i%len(c.eps), true
}

// Endpoint returns the index of the endpoint the next operation goes to.
func (c *Client) Endpoint() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

func (c *Client) object(key, value, rv string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: key, Namespace: c.namespace, Labels: c.labels, ResourceVersion: rv},
		Data:       map[string]string{DataKey: value},
	}
}

// Create creates ConfigMap key holding value (fails with AlreadyExists if
// it exists).
func (c *Client) Create(ctx context.Context, key, value string) Op {
	return c.do(ctx, Op{Kind: KindCreate, Key: key, Value: value}, func(ctx context.Context, rc rest.Interface) (*corev1.ConfigMap, error) {
		out := &corev1.ConfigMap{}
		err := rc.Post().Namespace(c.namespace).Resource("configmaps").
			Body(c.object(key, value, "")).MaxRetries(0).Do(ctx).Into(out)
		return out, err
	})
}

// Update sets key to value if its resourceVersion is still ifRV (409
// Conflict otherwise, 404 if it does not exist).
func (c *Client) Update(ctx context.Context, key, value, ifRV string) Op {
	return c.do(ctx, Op{Kind: KindUpdate, Key: key, Value: value, IfRV: ifRV}, func(ctx context.Context, rc rest.Interface) (*corev1.ConfigMap, error) {
		out := &corev1.ConfigMap{}
		err := rc.Put().Namespace(c.namespace).Resource("configmaps").Name(key).
			Body(c.object(key, value, ifRV)).MaxRetries(0).Do(ctx).Into(out)
		return out, err
	})
}

// Delete deletes key if its resourceVersion is still ifRV (409 Conflict
// otherwise, 404 if it does not exist).
func (c *Client) Delete(ctx context.Context, key, ifRV string) Op {
	return c.do(ctx, Op{Kind: KindDelete, Key: key, IfRV: ifRV}, func(ctx context.Context, rc rest.Interface) (*corev1.ConfigMap, error) {
		opts := &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &ifRV}}
		// The response is the deleted object or a Status: only the error matters.
		err := rc.Delete().Namespace(c.namespace).Resource("configmaps").Name(key).
			Body(opts).MaxRetries(0).Do(ctx).Error()
		return nil, err
	})
}

// Get reads key with a consistent read (resourceVersion ""); a missing key
// is a Failed op with reason NotFound.
func (c *Client) Get(ctx context.Context, key string) Op {
	return c.do(ctx, Op{Kind: KindGet, Key: key}, func(ctx context.Context, rc rest.Interface) (*corev1.ConfigMap, error) {
		out := &corev1.ConfigMap{}
		err := rc.Get().Namespace(c.namespace).Resource("configmaps").Name(key).
			MaxRetries(0).Do(ctx).Into(out)
		return out, err
	})
}

func (c *Client) do(ctx context.Context, op Op, fn func(context.Context, rest.Interface) (*corev1.ConfigMap, error)) Op {
	c.mu.Lock()
	ep := c.cur
	c.mu.Unlock()
	op.Client, op.Endpoint = c.ID, ep

	octx, cancel := context.WithTimeout(ctx, c.timeout)
	op.Call = time.Now()
	cm, err := fn(octx, c.eps[ep])
	op.Return = time.Now()
	cancel()

	op.Outcome, op.Reason = Classify(err)
	if err != nil {
		op.Err = err.Error()
	}
	if op.Outcome == OK && cm != nil {
		op.OutRV = cm.ResourceVersion
		if op.Kind == KindGet {
			op.OutValue = cm.Data[DataKey]
		}
	}
	if op.Outcome == Unknown {
		c.mu.Lock()
		if !c.pinned && c.cur == ep {
			c.cur = (ep + 1) % len(c.eps)
		}
		c.mu.Unlock()
	}
	return c.rec.Add(op)
}
