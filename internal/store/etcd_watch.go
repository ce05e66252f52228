package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"fronttier/internal/config"
)

// Timing of Etcd.Watch.
const (
	// watchReadTimeout bounds one read of the whole document.
	watchReadTimeout = 10 * time.Second
	// watchBackoffMin and watchBackoffMax bound the pause before a failed
	// read or an ended watch is tried again.
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = 2 * time.Second
)

// Watch implements Store. It keeps its own copy of the document: read at
// from (or, when from is 0 or compacted away, the latest, reported as a
// Full update), then kept current by an etcd watch of the prefix from the
// next revision. Each write transaction (each revision that wrote meta) is
// one Update naming the domains and backends it changed, and Settings when
// [health_check] changed; a new document (seeded, or seeded again after a
// deletion) and a reload are Full. An item that cannot be used, or a
// deleted document, is an Update with Err (wrapping ErrInvalid), and the
// next good state is Full.
//
// When etcd cannot be reached the watch waits and tries again (the client
// reconnects by itself; a watch the server cancels, one that finds no
// leader, is restarted from the last revision seen), and resumes where it
// stopped or, when that history was compacted, with a reload. The channel
// closes when ctx ends; nothing of the watch outlives it.
func (e *Etcd) Watch(ctx context.Context, from Revision) <-chan Update {
	out := make(chan Update)
	w := &etcdWatcher{e: e, out: out, sent: from}
	go func() {
		defer close(out)
		w.run(ctx, from)
	}()
	return out
}

// etcdWatcher is the state of one Watch, owned by its goroutine.
type etcdWatcher struct {
	e   *Etcd
	out chan<- Update

	// doc is the document as of the last report: its slices are shared
	// with the snapshot reported.
	doc etcdDoc
	// bad holds, by key, the items that cannot be used, with why.
	bad map[string]error
	// next is the etcd revision the watch resumes at: every event before
	// it has been applied.
	next int64
	// sent is the latest revision reported, or from.
	sent Revision

	// What changed since the last report: hosts and backends by name (nil
	// means removed), the settings, or anything (full).
	hosts    map[string]*config.VirtualHost
	backends map[string]*config.Backend
	settings bool
	full     bool
	// gone says the document's deletion was the last thing reported.
	gone bool
}

// run reads the document and follows it until ctx ends.
func (w *etcdWatcher) run(ctx context.Context, from Revision) {
	var b backoff
	for {
		err := w.start(ctx, from)
		if err == nil {
			break
		}
		if !b.wait(ctx) {
			return
		}
	}
	b.reset()
	for {
		compacted := w.follow(ctx, &b)
		if ctx.Err() != nil {
			return
		}
		if compacted {
			for w.resync(ctx) != nil {
				if !b.wait(ctx) {
					return
				}
			}
			continue
		}
		if !b.wait(ctx) {
			return
		}
	}
}

// start reads the document at from, the state the caller has, so that the
// events after it can be applied; when from is 0, or that revision is
// compacted away (or was never reached), it reads the latest and reports
// it.
func (w *etcdWatcher) start(ctx context.Context, from Revision) error {
	if from <= 0 {
		return w.resync(ctx)
	}
	rctx, cancel := context.WithTimeout(ctx, watchReadTimeout)
	defer cancel()
	resp, err := w.e.cli.Get(rctx, w.e.keys.doc, clientv3.WithPrefix(), clientv3.WithRev(int64(from)))
	if errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, rpctypes.ErrFutureRev) {
		return w.resync(ctx)
	}
	if err != nil {
		return err
	}
	w.load(resp.Kvs)
	w.next = int64(from) + 1
	return nil
}

// resync reads the latest document and reports it as a Full update if it
// is newer than the last one reported.
func (w *etcdWatcher) resync(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, watchReadTimeout)
	defer cancel()
	resp, err := w.e.cli.Get(rctx, w.e.keys.doc, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	w.load(resp.Kvs)
	w.next = resp.Header.Revision + 1
	switch {
	case w.doc.present && w.doc.rev > w.sent:
		w.full = true
		w.report(ctx, w.doc.rev)
	case !w.doc.present && w.sent > 0 && !w.gone:
		// The caller has a state, and the document was deleted since.
		w.report(ctx, Revision(resp.Header.Revision))
	}
	return ctx.Err()
}

// load makes kvs, the keys under doc/ at one revision, the document, and
// forgets the changes not yet reported (a Full update reports them).
func (w *etcdWatcher) load(kvs []*mvccpb.KeyValue) {
	w.doc, w.bad = w.e.decodeDoc(kvs, true)
	w.hosts, w.backends, w.settings = nil, nil, false
}

// follow watches the prefix from w.next and applies its events until the
// watch ends: ctx ended, the server cancelled it (no leader) or its history
// was compacted (then compacted is true and the document must be read
// again). Each response resets b.
func (w *etcdWatcher) follow(ctx context.Context, b *backoff) (compacted bool) {
	// A member cut off from the others' quorum cancels the watch instead of
	// leaving it silent; it is then restarted, maybe on another member.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := w.e.cli.Watch(wctx, w.e.keys.doc,
		clientv3.WithPrefix(), clientv3.WithRev(w.next), clientv3.WithProgressNotify())
	for wr := range wch {
		if wr.CompactRevision != 0 {
			return true
		}
		if wr.Err() != nil {
			return false
		}
		b.reset()
		if wr.IsProgressNotify() {
			// Every event up to the header's revision was delivered: a
			// restart need not go back further (nor into compacted history).
			w.next = max(w.next, wr.Header.Revision+1)
			continue
		}
		if !w.apply(ctx, wr.Events) {
			return false
		}
	}
	return false
}

// apply applies events, revision by revision (etcd never splits one
// revision's events between two responses), and reports each revision
// that wrote meta. It returns false when ctx ended.
func (w *etcdWatcher) apply(ctx context.Context, events []*clientv3.Event) bool {
	for i := 0; i < len(events); {
		rev := events[i].Kv.ModRevision
		meta := false
		for ; i < len(events) && events[i].Kv.ModRevision == rev; i++ {
			meta = w.applyEvent(events[i]) || meta
		}
		w.next = rev + 1
		if meta && !w.report(ctx, Revision(rev)) {
			return false
		}
	}
	return true
}

// applyEvent records one event; it reports whether it wrote meta.
func (w *etcdWatcher) applyEvent(ev *clientv3.Event) bool {
	key := string(ev.Kv.Key)
	put := ev.Type == clientv3.EventTypePut
	kind, name := w.e.keys.kindOf(key)
	if kind != itemOther {
		delete(w.bad, key)
	}
	problem := func(err error) {
		if w.bad == nil {
			w.bad = make(map[string]error)
		}
		w.bad[key] = err
	}
	switch kind {
	case itemMeta:
		w.doc.present, w.doc.rev = put, Revision(ev.Kv.ModRevision)
		if put && ev.Kv.CreateRevision == ev.Kv.ModRevision {
			w.full = true // a new document
		}
		if put {
			written, err := decodeMeta(ev.Kv.Value)
			if err != nil {
				problem(err)
			}
			w.doc.written = written
		}
		return true
	case itemHealth:
		w.settings = true
		w.doc.health = config.Default().HealthCheck
		if put {
			h, err := decodeHealth(ev.Kv.Value)
			if err != nil {
				problem(err)
			}
			w.doc.health = h
		}
	case itemDomain:
		if w.hosts == nil {
			w.hosts = make(map[string]*config.VirtualHost)
		}
		w.hosts[name] = nil
		if put {
			h, err := decodeHost(name, ev.Kv.Value, true, w.e.local.Load())
			if err != nil {
				problem(err)
			} else {
				w.hosts[name] = &h
			}
		}
	case itemBackend:
		if w.backends == nil {
			w.backends = make(map[string]*config.Backend)
		}
		w.backends[name] = nil
		if put {
			b, err := decodeBackend(name, ev.Kv.Value, true)
			if err != nil {
				problem(err)
			} else {
				w.backends[name] = &b
			}
		}
	}
	return false
}

// report applies the changes recorded to the document and sends the state
// at rev: an Update with what changed, or with Err when the document cannot
// be used (or was deleted). It returns false when ctx ended first.
func (w *etcdWatcher) report(ctx context.Context, rev Revision) bool {
	var u Update
	if w.hosts != nil {
		w.doc.hosts = applySorted(w.doc.hosts, w.hosts, hostKey)
		u.Domains = slices.Sorted(maps.Keys(w.hosts))
	}
	if w.backends != nil {
		w.doc.backends = applySorted(w.doc.backends, w.backends, backendKey)
		u.Backends = slices.Sorted(maps.Keys(w.backends))
	}
	u.Settings = w.settings
	w.hosts, w.backends, w.settings = nil, nil, false
	if rev <= w.sent {
		return true
	}
	w.sent = rev
	w.gone = !w.doc.present

	c := merge(w.e.local.Load(), &w.doc)
	var err error
	switch {
	case !w.doc.present:
		err = fmt.Errorf("the document was deleted: %w", ErrEmpty)
	case len(w.bad) > 0:
		err = joinProblems(w.bad)
	default:
		err = c.ValidateShared()
	}
	if err != nil {
		u = Update{Err: fmt.Errorf("%w: etcd store %s at revision %d: %w", ErrInvalid, w.e.keys.prefix, rev, err)}
		w.full = true // the states skipped meanwhile are not reported
	} else {
		u.Snapshot = Snapshot{Config: c, Rev: rev}
		u.Written = w.doc.written
		if w.full {
			u.Full, u.Domains, u.Backends, u.Settings = true, nil, nil, false
		}
		w.full = false
	}
	select {
	case w.out <- u:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff is a capped, doubling pause between tries.
type backoff struct{ d time.Duration }

func (b *backoff) reset() { b.d = 0 }

// wait pauses for the next delay; it returns false when ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	b.d = min(max(2*b.d, watchBackoffMin), watchBackoffMax)
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
