package acme

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the package's collectors.
type metrics struct {
	// operations counts finished issuance and renewal attempts.
	operations *prometheus.CounterVec
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
	if reg != nil {
		if err := reg.Register(ops); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return &metrics{operations: ops}, nil
}

// observe counts one finished attempt of op.
func (m *metrics) observe(op string, ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.operations.WithLabelValues(op, result).Inc()
}
