package compare

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/twonode-edge/twonode/e2e/fleet"
)

// The namespaces of the load, the same on every API server: creates add
// objects to one that is never listed; updates rewrite one object per
// client; lists read one that holds a fixed number of objects, so that a
// list costs the same at the end of the run as at its start.
const (
	nsCreate = "cmp-create"
	nsUpdate = "cmp-update"
	nsList   = "cmp-list"
)

// opTimeout bounds one request (client-go sends it as the request's
// timeout too); a request that takes longer is an error. Shorter than
// client-go's usual 30 s so that a stalled cell ends soon after its window.
const opTimeout = 10 * time.Second

// api is one backend's kube-apiserver as the load sees it: a clientset
// per concurrent client (each its own connection: a config that dials in
// a namespace is never shared by client-go's transport cache), and the
// resourceVersion of each client's object in nsUpdate.
type api struct {
	name    string
	clients []kubernetes.Interface
	rv      []string
	o       Options
}

// newAPI makes the clients for cfg: protobuf, as controllers talk, and
// no client-side rate limit (QPS -1 in the harness's config).
func newAPI(name string, cfg *rest.Config, o Options) (*api, error) {
	a := &api{name: name, o: o}
	for range maxClients(o) {
		c := rest.CopyConfig(cfg)
		c.Timeout = opTimeout
		c.ContentType = "application/vnd.kubernetes.protobuf"
		c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		cs, err := kubernetes.NewForConfig(c)
		if err != nil {
			return nil, err
		}
		a.clients = append(a.clients, cs)
	}
	a.rv = make([]string, len(a.clients))
	return a, nil
}

func maxClients(o Options) int {
	n := 1
	for _, c := range o.Clients {
		n = max(n, c)
	}
	return n
}

// prepare creates the namespaces, the listed objects and each client's
// object to update.
func (a *api) prepare(ctx context.Context) error {
	cs := a.clients[0]
	for _, ns := range []string{nsCreate, nsUpdate, nsList} {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("%s: namespace %s: %w", a.name, ns, err)
		}
	}
	for i := range a.o.ListObjects {
		if _, err := cs.CoreV1().ConfigMaps(nsList).Create(ctx, a.object(nsList, fmt.Sprintf("l-%d", i), i), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("%s: listed object %d: %w", a.name, i, err)
		}
	}
	for i := range a.clients {
		got, err := cs.CoreV1().ConfigMaps(nsUpdate).Create(ctx, a.object(nsUpdate, fmt.Sprintf("u-%d", i), 0), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("%s: updated object %d: %w", a.name, i, err)
		}
		a.rv[i] = got.ResourceVersion
	}
	return nil
}

// object is a ConfigMap of ValueSize bytes whose value says n (a new n is
// a real change: an update that changes nothing is not written).
func (a *api) object(ns, name string, n int) *corev1.ConfigMap {
	v := fmt.Sprintf("%d:", n)
	v += strings.Repeat("x", max(a.o.ValueSize-len(v), 0))
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string]string{"v": v}}
}

// op performs operation kind as client i (its n-th operation of the cell
// tagged tag).
func (a *api) op(ctx context.Context, kind string, i, n int, tag string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	cms := a.clients[i].CoreV1().ConfigMaps
	switch kind {
	case OpCreate:
		_, err := cms(nsCreate).Create(ctx, a.object(nsCreate, fmt.Sprintf("%s-%d-%d", tag, i, n), n), metav1.CreateOptions{})
		return err
	case OpUpdate:
		// Conditional on the last version this client wrote: nobody else
		// writes the object, so a conflict would be a fault of the store.
		obj := a.object(nsUpdate, fmt.Sprintf("u-%d", i), n)
		obj.ResourceVersion = a.rv[i]
		got, err := cms(nsUpdate).Update(ctx, obj, metav1.UpdateOptions{})
		if err != nil {
			if cur, gerr := cms(nsUpdate).Get(ctx, obj.Name, metav1.GetOptions{}); gerr == nil {
				a.rv[i] = cur.ResourceVersion // go on from what is stored
			}
			return err
		}
		a.rv[i] = got.ResourceVersion
		return nil
	case OpList:
		// resourceVersion "": a consistent read, what a client sees by default.
		l, err := cms(nsList).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) != a.o.ListObjects {
			err = fmt.Errorf("list returned %d objects, %d stored", len(l.Items), a.o.ListObjects)
		}
		return err
	}
	return fmt.Errorf("unknown operation %q", kind)
}

// measure runs clients goroutines, each doing kind back to back, for the
// warm-up and then the window; what starts in the window is measured.
func (a *api) measure(ctx context.Context, kind string, clients int) Cell {
	cell := Cell{Backend: a.name, Op: kind, Clients: clients, Window: a.o.Window}
	tag := fmt.Sprintf("%s-c%d", a.name, clients)
	start := time.Now()
	from, until := start.Add(a.o.Warmup), start.Add(a.o.Warmup+a.o.Window)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var own fleet.Latencies
			var errs int
			var first string
			for n := 0; ctx.Err() == nil; n++ {
				t0 := time.Now()
				if !t0.Before(until) {
					break
				}
				err := a.op(ctx, kind, i, n, tag)
				d := time.Since(t0)
				if err != nil { // counted in the warm-up too: a stall there is one
					errs++
					if first == "" {
						first = err.Error()
					}
					time.Sleep(50 * time.Millisecond) // no hot loop against a failing server
					continue
				}
				if !t0.Before(from) {
					own = append(own, d)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			cell.Latencies = append(cell.Latencies, own...)
			cell.Errors += errs
			if cell.FirstError == "" {
				cell.FirstError = first
			}
		}()
	}
	wg.Wait()
	return cell
}
