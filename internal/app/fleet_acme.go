package app

import (
	"fronttier/internal/acme"
	"fronttier/internal/config"
)

// fleetACME is the ACME manager's share of the fleet this node is in: its
// account, certificates and keys in etcd under the fleet's prefix, one
// order per domain for the whole fleet, and challenge answers every node
// serves. nil when the node is alone (its cache directory is then its
// store). The fleet is joined before buildTLS runs.
func (a *App) fleetACME(cfg *config.Config) *acme.Fleet {
	if a.fleet == nil {
		return nil
	}
	return &acme.Fleet{
		Client:  a.fleet.client,
		Prefix:  a.fleet.store.Prefix(),
		Node:    nodeName(cfg),
		Timeout: secs(cfg.Cluster.EtcdDialTimeoutSecs),
	}
}
