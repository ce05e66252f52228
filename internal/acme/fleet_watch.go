package acme

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Pauses of the certificate watch after a failure.
const (
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = 5 * time.Second
)

// watch calls install with every certificate written to the fleet's
// store after the first one this node read (every certificate, if it
// read none), in the order they were written, until ctx ends. When etcd
// cannot be reached it waits and tries again, and catches up with what
// was written meanwhile: it reads the certificates changed since the last
// one it saw (a read that compaction cannot break), then watches from
// there. Only the certificates of domains managed reports true for are
// kept in the local copy and installed; values it cannot use are logged
// and skipped.
func (s *etcdStore) watch(ctx context.Context, managed func(domain string) bool, install func(domain string, c *certificate)) {
	next := int64(0)
	if since := s.since.Load(); since > 0 {
		next = since + 1
	}
	wait := watchBackoffMin
	pause := time.NewTimer(wait)
	pause.Stop()
	defer pause.Stop()
	for {
		rev, err := s.catchUp(ctx, next, managed, install)
		if ctx.Err() != nil {
			return
		}
		s.reached(err)
		if err == nil {
			next = s.follow(ctx, rev+1, managed, install, func() {
				wait = watchBackoffMin
				s.reached(nil)
			})
		}
		if ctx.Err() != nil {
			return
		}
		pause.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-pause.C:
		}
		wait = min(2*wait, watchBackoffMax)
	}
}

// catchUp reads the certificates written at revision from or later (all
// of them when from is 0), hands them to install, and returns the
// revision it read at.
func (s *etcdStore) catchUp(ctx context.Context, from int64, managed func(string) bool, install func(string, *certificate)) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if from > 0 {
		opts = append(opts, clientv3.WithMinModRev(from))
	}
	resp, err := s.cli.Get(rctx, s.keys.certs, opts...)
	if err != nil {
		return 0, err
	}
	for _, kv := range resp.Kvs {
		s.deliver(string(kv.Key), kv.Value, managed, install)
	}
	return resp.Header.Revision, nil
}

// follow watches the certificates from revision next and hands each one
// written to install until the watch ends (ctx ended, etcd lost its
// leader or cannot be reached), and returns the revision to resume at.
// ok is called on each response.
func (s *etcdStore) follow(ctx context.Context, next int64, managed func(string) bool, install func(string, *certificate), ok func()) int64 {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, s.keys.certs, clientv3.WithPrefix(), clientv3.WithRev(next), clientv3.WithProgressNotify())
	for wr := range wch {
		if wr.Err() != nil || wr.CompactRevision != 0 {
			return next
		}
		ok()
		if wr.IsProgressNotify() {
			next = max(next, wr.Header.Revision+1)
			continue
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypePut {
				s.deliver(string(ev.Kv.Key), ev.Kv.Value, managed, install)
			}
			next = max(next, ev.Kv.ModRevision+1)
		}
	}
	return next
}

// deliver decodes the certificate at key, keeps a copy and hands it to
// install if its domain is managed. A
// certificate deleted from etcd is not a reason to stop serving one, so
// deletions are not delivered.
func (s *etcdStore) deliver(key string, value []byte, managed func(string) bool, install func(string, *certificate)) {
	domain := key[len(s.keys.certs):]
	if !managed(domain) {
		return
	}
	c, rec, err := decodeCertificate(domain, value)
	if err != nil {
		s.log.Warn("Ignoring the fleet's certificate", "domain", domain, "error", err)
		return
	}
	s.keepCopy(domain, c, rec)
	install(domain, c)
}
