package acme

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the package's collectors.
type metrics struct {
	// operations counts finished issuance and renewal attempts.
	operations *prometheus.CounterVec
	// lockBusy counts the checks that found a certificate to order while
	// another node of the fleet held its order lock.
	lockBusy prometheus.Counter
}

// newMetrics creates the collectors, with every label combination present
// from the start, and registers them on reg unless reg is nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	ops := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acme_certificate_operations_total",
		Help: "ACME certificate orders by operation (issue, renew) and result (success, failure).",
	}, []string{"operation", "result"})
	for _, op := range []string{opIssue, opRenew} {
		for _, result := range []string{"success", "failure"} {
			ops.WithLabelValues(op, result)
		}
	}
	busy := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "acme_fleet_order_lock_busy_total",
		Help: "Certificates this node found to order while another node of the fleet was ordering them (it installs theirs).",
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{ops, busy} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return &metrics{operations: ops, lockBusy: busy}, nil
}

// observe counts one finished attempt of op.
func (m *metrics) observe(op string, ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.operations.WithLabelValues(op, result).Inc()
}
