package workload

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// fakeAPI is a tiny in-memory kube-apiserver for ConfigMaps, enough for
// the REST calls the workload and the reflector make: create, update and
// delete with resourceVersion preconditions, get, list and watch, with a
// global revision counter as etcd/Kine have. Several httptest servers can
// serve one fakeAPI (two API servers on one datastore). Test hooks inject
// faults.
type fakeAPI struct {
	mu        sync.Mutex
	rev       int64
	objs      map[string]*corev1.ConfigMap
	prev      map[string]*corev1.ConfigMap // previous version, for stale reads
	events    []fakeEvent
	compacted int64         // watches from a revision below this get 410
	changed   chan struct{} // closed on every change
	kill      chan struct{} // closed to end every open watch

	// fault, if set, is asked before each request is handled.
	fault func(kind Kind, name string) fault
	// staleReads makes GET return the previous version of an object.
	staleReads bool
	// watchesPaused: watch requests get 429 Too Many Requests.
	watchesPaused bool
}

type fault int

const (
	noFault       fault = iota
	hangNoApply         // never answer, do nothing: an unknown op that did not happen
	applyThenHang       // apply, never answer: an unknown op that did happen
	applyThenDrop       // apply, close the connection: an unknown op that did happen
	ackNoApply          // acknowledge, do nothing: a lost write (a create only)
)

type fakeEvent struct {
	typ watch.EventType
	obj *corev1.ConfigMap
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{
		rev:  100, // a store with a history, as a real one: never resourceVersion "0"
		objs: map[string]*corev1.ConfigMap{}, prev: map[string]*corev1.ConfigMap{},
		changed: make(chan struct{}), kill: make(chan struct{}),
	}
}

var configmaps = schema.GroupResource{Resource: "configmaps"}

// serve starts an httptest server on f; it is closed at the end of the test.
func (f *fakeAPI) serve(t *testing.T) (*httptest.Server, *rest.Config) {
	srv, cfg, _ := f.serveFreezable(t)
	return srv, cfg
}

// serveFreezable is serve with a switch that freezes this server (as a
// SIGSTOPped or powered-off node looks to a client): new requests are
// never answered and open watch streams go silent.
func (f *fakeAPI) serveFreezable(t *testing.T) (*httptest.Server, *rest.Config, *atomic.Bool) {
	t.Helper()
	frozen := &atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if frozen.Load() {
			// Read the body: net/http notices a client that hung up (and
			// cancels r.Context()) only once the body is consumed.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		f.handle(w, r, frozen)
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv, &rest.Config{Host: srv.URL}, frozen
}

// pauseWatches makes watch requests fail with 429 (which the reflector
// retries from the same resourceVersion, without relisting) until resumed.
func (f *fakeAPI) pauseWatches(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watchesPaused = on
}

// notifyLocked wakes the watches; f.mu held.
func (f *fakeAPI) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// dropWatches ends every open watch stream (an API server restart).
func (f *fakeAPI) dropWatches() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.kill)
	f.kill = make(chan struct{})
}

// compact forgets the history: watches from below the current revision get
// 410 Gone.
func (f *fakeAPI) compact() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.compacted = f.rev
}

// injectEvent appends an event to the log as is (e.g. with a resourceVersion
// lower than delivered before) and wakes the watches.
func (f *fakeAPI) injectEvent(typ watch.EventType, name string, rv int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: strconv.FormatInt(rv, 10)}}
	f.events = append(f.events, fakeEvent{typ, cm})
	f.notifyLocked()
}

func (f *fakeAPI) setFault(fn func(kind Kind, name string) fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fn
}

func (f *fakeAPI) setStaleReads(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.staleReads = on
}

func (f *fakeAPI) currentRev() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev
}

// state returns key -> value of what is stored.
func (f *fakeAPI) state() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for k, cm := range f.objs {
		out[k] = cm.Data[DataKey]
	}
	return out
}

func encode(obj runtime.Object) []byte {
	b, err := runtime.Encode(scheme.Codecs.LegacyCodec(corev1.SchemeGroupVersion), obj)
	if err != nil {
		panic(err)
	}
	return b
}

func writeObj(w http.ResponseWriter, code int, obj runtime.Object) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(encode(obj))
}

func writeErr(w http.ResponseWriter, err error) {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		st = apierrors.NewInternalError(err)
	}
	s := st.Status()
	writeObj(w, int(s.Code), &s)
}

func (f *fakeAPI) handle(w http.ResponseWriter, r *http.Request, frozen *atomic.Bool) {
	// /api/v1/namespaces/{ns}/configmaps[/{name}]
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 5 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" || parts[4] != "configmaps" {
		writeErr(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
		return
	}
	ns, name := parts[3], ""
	if len(parts) == 6 {
		name = parts[5]
	}
	var kind Kind
	switch {
	case r.Method == http.MethodPost && name == "":
		kind = KindCreate
	case r.Method == http.MethodPut && name != "":
		kind = KindUpdate
	case r.Method == http.MethodDelete && name != "":
		kind = KindDelete
	case r.Method == http.MethodGet && name != "":
		kind = KindGet
	case r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true":
		f.watch(w, r, frozen)
		return
	case r.Method == http.MethodGet:
		f.list(w)
		return
	default:
		writeErr(w, apierrors.NewMethodNotSupported(configmaps, r.Method))
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	faultFn := f.fault
	f.mu.Unlock()
	var flt fault
	if faultFn != nil {
		key := name
		if kind == KindCreate {
			var cm corev1.ConfigMap
			json.Unmarshal(body, &cm)
			key = cm.Name
		}
		flt = faultFn(kind, key)
	}
	if flt == hangNoApply {
		<-r.Context().Done()
		return
	}
	if flt == ackNoApply {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		if err != nil {
			writeErr(w, apierrors.NewBadRequest(err.Error()))
			return
		}
		f.mu.Lock()
		f.rev++
		obj.(*corev1.ConfigMap).ResourceVersion = strconv.FormatInt(f.rev, 10)
		f.mu.Unlock()
		writeObj(w, http.StatusCreated, obj)
		return
	}
	code, obj, err := f.apply(kind, ns, name, body)
	switch flt {
	case applyThenHang:
		<-r.Context().Done()
		return
	case applyThenDrop:
		conn, _, herr := w.(http.Hijacker).Hijack()
		if herr == nil {
			conn.Close()
		}
		return
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeObj(w, code, obj)
}

func (f *fakeAPI) apply(kind Kind, ns, name string, body []byte) (int, runtime.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch kind {
	case KindGet:
		cm, ok := f.objs[name]
		if !ok {
			return 0, nil, apierrors.NewNotFound(configmaps, name)
		}
		if p := f.prev[name]; f.staleReads && p != nil {
			cm = p
		}
		return http.StatusOK, cm.DeepCopy(), nil
	case KindCreate, KindUpdate:
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		if err != nil {
			return 0, nil, apierrors.NewBadRequest(err.Error())
		}
		cm := obj.(*corev1.ConfigMap).DeepCopy()
		if kind == KindCreate {
			name = cm.Name
		}
		old, exists := f.objs[name]
		switch {
		case kind == KindCreate && exists:
			return 0, nil, apierrors.NewAlreadyExists(configmaps, name)
		case kind == KindUpdate && !exists:
			return 0, nil, apierrors.NewNotFound(configmaps, name)
		case kind == KindUpdate && cm.ResourceVersion != "" && cm.ResourceVersion != old.ResourceVersion:
			return 0, nil, apierrors.NewConflict(configmaps, name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		f.rev++
		cm.Namespace, cm.ResourceVersion = ns, strconv.FormatInt(f.rev, 10)
		typ, code := watch.Added, http.StatusCreated
		if exists {
			typ, code = watch.Modified, http.StatusOK
			f.prev[name] = old
		}
		f.objs[name] = cm
		f.events = append(f.events, fakeEvent{typ, cm.DeepCopy()})
		f.notifyLocked()
		return code, cm.DeepCopy(), nil
	case KindDelete:
		var opts metav1.DeleteOptions
		if len(body) > 0 {
			if err := json.Unmarshal(body, &opts); err != nil {
				return 0, nil, apierrors.NewBadRequest(err.Error())
			}
		}
		old, exists := f.objs[name]
		if !exists {
			return 0, nil, apierrors.NewNotFound(configmaps, name)
		}
		if p := opts.Preconditions; p != nil && p.ResourceVersion != nil && *p.ResourceVersion != old.ResourceVersion {
			return 0, nil, apierrors.NewConflict(configmaps, name, errors.New("Precondition failed: ResourceVersion in precondition does not match"))
		}
		f.rev++
		gone := old.DeepCopy()
		gone.ResourceVersion = strconv.FormatInt(f.rev, 10)
		delete(f.objs, name)
		delete(f.prev, name)
		f.events = append(f.events, fakeEvent{watch.Deleted, gone})
		f.notifyLocked()
		return http.StatusOK, &metav1.Status{Status: metav1.StatusSuccess}, nil
	}
	return 0, nil, errors.New("unreachable")
}

func (f *fakeAPI) list(w http.ResponseWriter) {
	f.mu.Lock()
	list := &corev1.ConfigMapList{ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatInt(f.rev, 10)}}
	for _, cm := range f.objs {
		list.Items = append(list.Items, *cm.DeepCopy())
	}
	f.mu.Unlock()
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	writeObj(w, http.StatusOK, list)
}

func (f *fakeAPI) watch(w http.ResponseWriter, r *http.Request, frozen *atomic.Bool) {
	f.mu.Lock()
	paused := f.watchesPaused
	f.mu.Unlock()
	if paused {
		w.Header().Set("Retry-After", "1")
		writeErr(w, apierrors.NewTooManyRequests("watches paused", 1))
		return
	}
	q := r.URL.Query()
	from, _ := strconv.ParseInt(q.Get("resourceVersion"), 10, 64)
	var deadline <-chan time.Time
	if s, err := strconv.Atoi(q.Get("timeoutSeconds")); err == nil && s > 0 {
		deadline = time.After(time.Duration(s) * time.Second)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	send := func(typ watch.EventType, obj runtime.Object) bool {
		b, _ := json.Marshal(struct {
			Type   watch.EventType `json:"type"`
			Object json.RawMessage `json:"object"`
		}{typ, encode(obj.DeepCopyObject())})
		if _, err := w.Write(append(b, '\n')); err != nil {
			return false
		}
		fl.Flush()
		return true
	}

	f.mu.Lock()
	if from > 0 && from < f.compacted {
		f.mu.Unlock()
		st := apierrors.NewResourceExpired("too old resource version: " + strconv.FormatInt(from, 10) + " (" + strconv.FormatInt(f.compacted, 10) + ")").Status()
		send(watch.Error, &st)
		return
	}
	pos := len(f.events)
	for i, ev := range f.events {
		if rv, _ := strconv.ParseInt(ev.obj.ResourceVersion, 10, 64); rv > from {
			pos = i
			break
		}
	}
	f.mu.Unlock()
	for {
		f.mu.Lock()
		pending := append([]fakeEvent(nil), f.events[pos:]...)
		pos = len(f.events)
		changed, kill := f.changed, f.kill
		f.mu.Unlock()
		if frozen.Load() {
			<-r.Context().Done()
			return
		}
		for _, ev := range pending {
			if !send(ev.typ, ev.obj) {
				return
			}
		}
		select {
		case <-changed:
		case <-kill:
			return
		case <-deadline:
			return
		case <-r.Context().Done():
			return
		}
	}
}
