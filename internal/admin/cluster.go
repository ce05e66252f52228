package admin

import (
	"context"
	"net/http"
)

// Cluster describes the fleet this node belongs to: GET /api/v1/cluster.
type Cluster interface {
	// Info returns {"store", "revision", "nodes", "rollout_leader"},
	// JSON-encodable.
	Info(ctx context.Context) (any, error)
}

// cluster answers GET /api/v1/cluster: the store, this node's applied
// revision, every node of the fleet and the one that drives the rollouts. 503 when the fleet's store cannot
// be reached to list them.
func (a *API) cluster(w http.ResponseWriter, r *http.Request) error {
	if a.o.Cluster == nil {
		return notFound("this node has no cluster information")
	}
	info, err := a.o.Cluster.Info(r.Context())
	if err != nil {
		return &Error{Code: http.StatusServiceUnavailable, Msg: err.Error()}
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}
