package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"fronttier/internal/config"
)

// Event is what the webhook receives for each transition.
type Event struct {
	Domain string `json:"domain"`
	// Event is what happened: "started", "step", "extended", "paused",
	// "running" (resumed), "completed", "rolled_back" or "aborted".
	Event   string          `json:"event"`
	Rollout *config.Rollout `json:"rollout"`
}

// record logs, counts and posts a transition of domain's rollout to r.
func (c *Controller) record(domain, event string, r *config.Rollout) {
	c.log.Info("Rollout "+event, "domain", domain, "state", r.State, "from_tag", r.FromTag, "to_tag", r.ToTag,
		"step", r.Step, "percent", r.Percent, "reason", r.Reason)
	if c.m != nil {
		c.m.transitions.WithLabelValues(domain, r.State).Inc()
	}
	c.notify(domain, event, r)
}

// hook is one post to the webhook: the URL in force when it was queued.
type hook struct {
	url  string
	body []byte
}

// SetWebhookURL makes url ("" for none) receive the transitions from now
// on ([rollouts] webhook_url, reloaded); posts already queued go to the
// URL of their time.
func (c *Controller) SetWebhookURL(url string) { c.url.Store(&url) }

// notify queues an event for the webhook; when the queue is full (the
// webhook is slow) the event is dropped and logged.
func (c *Controller) notify(domain, event string, r *config.Rollout) {
	url := *c.url.Load()
	if url == "" {
		return
	}
	body, err := json.Marshal(Event{Domain: domain, Event: event, Rollout: r})
	if err != nil {
		c.log.Error("Rollout webhook: encode event", "domain", domain, "error", err)
		return
	}
	select {
	case c.hooks <- hook{url: url, body: body}:
	default:
		c.log.Warn("Rollout webhook: queue full, event dropped", "domain", domain, "event", event)
	}
}

// Notify posts the queued events to the webhook, one at a time, until ctx
// ends.
func (c *Controller) Notify(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case h := <-c.hooks:
			c.post(ctx, h)
		}
	}
}

// post sends one event, bounded by WebhookTimeout; a failure is logged.
func (c *Controller) post(ctx context.Context, h hook) {
	ctx, cancel := context.WithTimeout(ctx, WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(h.body))
	if err != nil {
		c.log.Warn("Rollout webhook failed", "url", h.url, "error", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.o.Client.Do(req)
	if err != nil {
		c.log.Warn("Rollout webhook failed", "url", h.url, "error", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		c.log.Warn("Rollout webhook refused", "url", h.url, "status", resp.StatusCode)
	}
}

// collectors are the controller's metrics.
type collectors struct {
	transitions *prometheus.CounterVec
}

// newCollectors registers proxy_rollout_transitions_total{domain,to} and
// proxy_rollout_state{domain,state} on reg.
func newCollectors(reg prometheus.Registerer, st Store) *collectors {
	m := &collectors{transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "proxy_rollout_transitions_total",
		Help: "Rollout transitions made by this node, by domain and the state moved to (running counts starts, steps and resumes).",
	}, []string{"domain", "to"})}
	reg.MustRegister(m.transitions, stateCollector{st: st, desc: prometheus.NewDesc("proxy_rollout_state",
		"1 for the state of each domain's rollout (running, paused, completed, rolled_back, aborted), 0 for the others; domains without one are absent.",
		[]string{"domain", "state"}, nil)})
	return m
}

// stateCollector is proxy_rollout_state's collector, read from the
// configuration in force at each scrape.
type stateCollector struct {
	st   Store
	desc *prometheus.Desc
}

func (s stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range s.st.Config().VirtualHosts {
		if v.Rollout == nil {
			continue
		}
		for _, st := range config.RolloutStates {
			val := 0.0
			if v.Rollout.State == st {
				val = 1
			}
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, val, v.Domain, st)
		}
	}
}
