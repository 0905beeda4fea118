package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
)

// Config describes a workload run.
type Config struct {
	// Name identifies the run: keys are "<Name>-<i>" and every object is
	// labelled LabelKey=Name. Use a fresh name per run: the linearizability
	// model assumes every key is absent at the start.
	Name string
	// Namespace of the ConfigMaps; default "default" (exists on every API
	// server).
	Namespace string
	// Endpoints: one rest.Config per node's API server, in preference
	// order.
	Endpoints []*rest.Config
	// Clients is the number of concurrent clients (goroutines); default 4.
	Clients int
	// Keys is the number of distinct keys the clients share; default 8.
	// Few keys per client means contention (conflicts, AlreadyExists).
	Keys int
	// Rate bounds the operations per second of all clients together;
	// default 50.
	Rate float64
	// Duration after which Run stops by itself; default 30 s.
	Duration time.Duration
	// MaxOps, if > 0, also stops Run after that many operations.
	MaxOps int
	// OpTimeout bounds each operation; default 2 s. A timed-out operation
	// is Unknown.
	OpTimeout time.Duration
	// ReadRatio and DeleteRatio are the shares of reads and of deletes
	// among operations on a key the client believes exists (the rest are
	// updates); defaults 0.2 and 0.1. On a key it believes absent the
	// client creates (reading with ReadRatio).
	ReadRatio, DeleteRatio float64
	// PinClients pins client i to endpoint i % len(Endpoints) (no
	// failover), e.g. to have writers on both sides of a split.
	PinClients bool
	// Seed of the operation mix; 0 means time-based.
	Seed int64
}

func (c *Config) defaults() error {
	if c.Name == "" {
		return errors.New("workload: Config.Name is required")
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.Clients <= 0 {
		c.Clients = 4
	}
	if c.Keys <= 0 {
		c.Keys = 8
	}
	if c.Rate <= 0 {
		c.Rate = 50
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = 2 * time.Second
	}
	if c.ReadRatio == 0 {
		c.ReadRatio = 0.2
	}
	if c.DeleteRatio == 0 {
		c.DeleteRatio = 0.1
	}
	if c.ReadRatio < 0 || c.DeleteRatio < 0 || c.ReadRatio+c.DeleteRatio > 1 {
		return fmt.Errorf("workload: ReadRatio %v + DeleteRatio %v must be in [0,1]", c.ReadRatio, c.DeleteRatio)
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	if errs := validation.IsDNS1123Subdomain(fmt.Sprintf("%s-%d", c.Name, c.Keys)); len(errs) > 0 {
		return fmt.Errorf("workload: name %q does not make valid object names: %v", c.Name, errs)
	}
	if errs := validation.IsValidLabelValue(c.Name); len(errs) > 0 {
		return fmt.Errorf("workload: name %q is not a valid label value: %v", c.Name, errs)
	}
	return nil
}

// Workload runs concurrent recorded clients against the endpoints.
type Workload struct {
	cfg  Config
	eps  []rest.Interface
	rec  Recorder
	keys []string
	vals atomic.Int64

	mu      sync.Mutex
	started bool
	done    chan struct{}
}

// New validates cfg (filling defaults) and builds the REST clients; it
// sends nothing.
func New(cfg Config) (*Workload, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	eps, err := restClients(cfg.Endpoints)
	if err != nil {
		return nil, err
	}
	w := &Workload{cfg: cfg, eps: eps, done: make(chan struct{})}
	for i := 0; i < cfg.Keys; i++ {
		w.keys = append(w.keys, fmt.Sprintf("%s-%d", cfg.Name, i))
	}
	return w, nil
}

// Config returns the configuration in use (with defaults filled).
func (w *Workload) Config() Config { return w.cfg }

// Keys returns the keys (ConfigMap names) the workload uses.
func (w *Workload) Keys() []string { return append([]string(nil), w.keys...) }

// LabelSelector selects the workload's objects (for the watch checker).
func (w *Workload) LabelSelector() string { return LabelKey + "=" + w.cfg.Name }

// Recorder returns the recorder (to add operations of clients made with
// NewClient, e.g. a scenario's own writes).
func (w *Workload) Recorder() *Recorder { return &w.rec }

// NewClient returns a recorded client with the given id on the workload's
// endpoints, namespace and labels. Ids 0..Clients-1 are Run's.
func (w *Workload) NewClient(id int) *Client {
	return NewClient(id, &w.rec, w.eps, w.cfg.Namespace, map[string]string{LabelKey: w.cfg.Name}, w.cfg.OpTimeout)
}

// NextValue returns a value no other write of this workload uses.
func (w *Workload) NextValue(client int) string {
	return fmt.Sprintf("c%d-%d", client, w.vals.Add(1))
}

// Ops returns every operation recorded so far (safe while running).
func (w *Workload) Ops() []Op { return w.rec.Ops() }

// Run runs the clients until Duration has passed, MaxOps operations were
// issued or ctx is done, whichever is first, and returns the history
// (operations still in flight at the end complete first, within
// OpTimeout). It runs once; a second call waits for the first.
func (w *Workload) Run(ctx context.Context) []Op {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		<-w.done
		return w.Ops()
	}
	w.started = true
	w.mu.Unlock()
	defer close(w.done)

	// loop bounds the issuing of operations; an operation in flight when
	// Duration ends runs to its completion or OpTimeout (ctx still cancels
	// it), so that the end of a run does not itself make unknown outcomes.
	loop, cancel := context.WithTimeout(ctx, w.cfg.Duration)
	defer cancel()
	lim := rate.NewLimiter(rate.Limit(w.cfg.Rate), 1)
	var issued atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Clients; i++ {
		c := w.NewClient(i)
		if w.cfg.PinClients {
			c.Pin(i % len(w.eps))
		}
		rng := rand.New(rand.NewSource(w.cfg.Seed + int64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.runClient(loop, ctx, c, rng, lim, &issued)
		}()
	}
	wg.Wait()
	return w.Ops()
}

// Wait blocks until Run has returned and returns the history.
func (w *Workload) Wait() []Op {
	<-w.done
	return w.Ops()
}

// knowledge is what a client believes about a key.
type knowledge struct {
	exists bool
	rv     string
}

func (w *Workload) runClient(loop, ctx context.Context, c *Client, rng *rand.Rand, lim *rate.Limiter, issued *atomic.Int64) {
	know := map[string]knowledge{}
	for {
		if err := lim.Wait(loop); err != nil {
			return
		}
		if w.cfg.MaxOps > 0 && issued.Add(1) > int64(w.cfg.MaxOps) {
			return
		}
		key := w.keys[rng.Intn(len(w.keys))]
		k, known := know[key]
		r := rng.Float64()
		var op Op
		switch {
		case !known || r < w.cfg.ReadRatio:
			op = c.Get(ctx, key)
		case !k.exists:
			op = c.Create(ctx, key, w.NextValue(c.ID))
		case r < w.cfg.ReadRatio+w.cfg.DeleteRatio:
			op = c.Delete(ctx, key, k.rv)
		default:
			op = c.Update(ctx, key, w.NextValue(c.ID), k.rv)
		}
		learn(know, op)
		if loop.Err() != nil {
			return
		}
	}
}

// learn updates a client's beliefs from an operation's result. Anything
// not certain is forgotten, so that the next operation on the key is a read.
func learn(know map[string]knowledge, op Op) {
	switch {
	case op.Outcome == OK && op.Kind == KindDelete:
		know[op.Key] = knowledge{exists: false}
	case op.Outcome == OK && op.OutRV != "":
		know[op.Key] = knowledge{exists: true, rv: op.OutRV}
	case op.Outcome == Failed && op.Reason == ReasonNotFound:
		know[op.Key] = knowledge{exists: false}
	default:
		delete(know, op.Key)
	}
}

// ReadFinal lists the workload's objects with one consistent LIST
// (resourceVersion ""), trying the endpoints in order, and returns key ->
// value. It also records the list as one read per key (all with the list's
// invocation and completion times, present or NotFound), so the final
// state takes part in the linearizability check; these reads have client
// id Clients.
func (w *Workload) ReadFinal(ctx context.Context) (map[string]string, error) {
	var errs []error
	for i, rc := range w.eps {
		octx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
		call := time.Now()
		list := &corev1.ConfigMapList{}
		err := rc.Get().Namespace(w.cfg.Namespace).Resource("configmaps").
			VersionedParams(&metav1.ListOptions{LabelSelector: w.LabelSelector()}, metav1.ParameterCodec).
			MaxRetries(0).Do(octx).Into(list)
		ret := time.Now()
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("endpoint %d: %w", i, err))
			continue
		}
		final := map[string]string{}
		rvs := map[string]string{}
		for _, cm := range list.Items {
			final[cm.Name] = cm.Data[DataKey]
			rvs[cm.Name] = cm.ResourceVersion
		}
		for _, key := range w.keys {
			op := Op{Client: w.cfg.Clients, Kind: KindGet, Key: key, Call: call, Return: ret, Endpoint: i}
			if v, ok := final[key]; ok {
				op.Outcome, op.OutValue, op.OutRV = OK, v, rvs[key]
			} else {
				op.Outcome, op.Reason = Failed, ReasonNotFound
			}
			w.rec.Add(op)
		}
		return final, nil
	}
	return nil, fmt.Errorf("workload: final read: %w", errors.Join(errs...))
}
