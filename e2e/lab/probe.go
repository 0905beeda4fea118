package lab

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// prober starts one write every interval, each in its own goroutine with
// its own deadline, and keeps when each was sent and acknowledged. Unlike
// a writer that waits for each answer, a write stuck on a dead server does
// not hide the moment the next one could have gone through: the first
// acknowledgement after a fault is as early as the service allowed, to
// within one interval.
type prober struct {
	every, timeout time.Duration
	write          func(ctx context.Context, n int) error

	mu   sync.Mutex
	acks []probeAck
}

type probeAck struct {
	n           int
	sent, acked time.Time // acked zero: failed
}

// maxInFlight bounds the writes waiting at once (a dead server holds each
// until its deadline), as a client with a few workers would: the survivor
// is not also flooded by hundreds of the benchmark's own retries (on 2
// cores those starved Kine once 200 were allowed).
const maxInFlight = 8

// run writes until ctx ends and waits for the writes in flight.
func (p *prober) run(ctx context.Context) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxInFlight)
	t := time.NewTicker(p.every)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			continue // all slots waiting on a dead server: skip this one
		}
		wg.Add(1)
		go func(n int) {
			defer func() { <-slots; wg.Done() }()
			c, cancel := context.WithTimeout(ctx, p.timeout)
			defer cancel()
			a := probeAck{n: n, sent: time.Now()}
			if p.write(c, n) == nil {
				a.acked = time.Now()
			}
			p.mu.Lock()
			p.acks = append(p.acks, a)
			p.mu.Unlock()
		}(n)
	}
}

// firstAckAfter is the earliest acknowledgement of a write sent at or
// after t.
func (p *prober) firstAckAfter(t time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first time.Time
	for _, a := range p.acks {
		if !a.acked.IsZero() && !a.sent.Before(t) && (first.IsZero() || a.acked.Before(first)) {
			first = a.acked
		}
	}
	return first, !first.IsZero()
}

// firstSentAfter is the number of the first write sent at or after t (-1:
// none yet).
func (p *prober) firstSentAfter(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := -1
	for _, a := range p.acks {
		if !a.sent.Before(t) && (n < 0 || a.n < n) {
			n = a.n
		}
	}
	return n
}

// watcher watches ConfigMaps through one API server as a controller's
// informer would: it resumes from the last resource version when the
// stream ends and relists when that version is gone, and keeps when it
// first learnt of each object, by an event or a relist.
type watcher struct {
	mu      sync.Mutex
	learned map[string]time.Time
	state   string // the last error, for describe
}

func watchConfigMaps(ctx context.Context, cms typedcorev1.ConfigMapInterface) *watcher {
	w := &watcher{learned: map[string]time.Time{}}
	go func() {
		rv := ""
		for ctx.Err() == nil {
			if rv == "" {
				c, cancel := context.WithTimeout(ctx, 2*time.Second)
				l, err := cms.List(c, metav1.ListOptions{})
				cancel()
				if err != nil {
					w.note(err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				for _, cm := range l.Items {
					w.learn(cm.Name)
				}
				rv = l.ResourceVersion
			}
			wi, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				w.note(err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				cm, ok := ev.Object.(*corev1.ConfigMap)
				if ev.Type == watch.Error || !ok {
					w.note(apierrors.FromObject(ev.Object))
					rv = "" // expired: relist
					break
				}
				if ev.Type != watch.Bookmark {
					w.learn(cm.Name)
				}
				rv = cm.ResourceVersion
			}
			wi.Stop()
		}
	}()
	return w
}

func (w *watcher) note(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state = err.Error()
}

func (w *watcher) learn(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.learned[key]; !ok {
		w.learned[key] = time.Now()
	}
}

// firstAfter is when the watch first learnt of a key p wrote with a write
// sent at or after t.
func (w *watcher) firstAfter(p *prober, key func(n int) string, t time.Time) (time.Time, bool) {
	n := p.firstSentAfter(t)
	if n < 0 {
		return time.Time{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var first time.Time
	for k := n; k < n+2000; k++ {
		if at, ok := w.learned[key(k)]; ok && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

// describe says what the watch learnt, for an error.
func (w *watcher) describe(t time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	after, last := 0, ""
	for k, at := range w.learned {
		if at.After(t) {
			after++
		}
		last = max(last, k)
	}
	return fmt.Sprintf("the watch learnt %d keys, %d after the crash, the last %q; %s", len(w.learned), after, last, w.state)
}
