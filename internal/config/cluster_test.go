package config

import (
	"strings"
	"testing"
)

func TestClusterSection(t *testing.T) {
	t.Parallel()
	base := "[proxy]\nlisten_addr_http = \"127.0.0.1:0\"\n"
	t.Run("absent: one node, the file is the store", func(t *testing.T) {
		c, err := Parse([]byte(base))
		if err != nil {
			t.Fatal(err)
		}
		if c.Cluster != nil || c.Fleet() {
			t.Errorf("Cluster %+v, Fleet %v; want none", c.Cluster, c.Fleet())
		}
		data, err := Marshal(c)
		if err != nil || strings.Contains(string(data), "[cluster]") {
			t.Errorf("an absent section is written back: %v\n%s", err, data)
		}
	})
	t.Run("etcd with defaults", func(t *testing.T) {
		c, err := Parse([]byte(base + "[cluster]\nstore = \"etcd\"\netcd_endpoints = [\"127.0.0.1:2379\"]\nnode_name = \"edge-1\"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if !c.Fleet() || c.Cluster.EtcdPrefix != "/fronttier" || c.Cluster.NodeName != "edge-1" || c.Cluster.EtcdDialTimeoutSecs != 5 {
			t.Errorf("Cluster %+v", c.Cluster)
		}
		clone := c.Clone()
		clone.Cluster.EtcdEndpoints[0] = "changed:1"
		if c.Cluster.EtcdEndpoints[0] != "127.0.0.1:2379" {
			t.Error("Clone shares the endpoint list")
		}
	})
	for _, tc := range []struct{ name, section, key string }{
		{"unknown store", "store = \"consul\"\n", "cluster.store"},
		{"no endpoints", "store = \"etcd\"\n", "cluster.etcd_endpoints"},
		{"bad endpoint", "store = \"etcd\"\netcd_endpoints = [\"nohost\"]\n", "cluster.etcd_endpoints[0]"},
		{"bad prefix", "store = \"etcd\"\netcd_endpoints = [\"127.0.0.1:2379\"]\netcd_prefix = \"fronttier/\"\n", "cluster.etcd_prefix"},
		{"bad node name", "store = \"etcd\"\netcd_endpoints = [\"127.0.0.1:2379\"]\nnode_name = \"edge 1\"\n", "cluster.node_name"},
		{"cert without key", "store = \"etcd\"\netcd_endpoints = [\"127.0.0.1:2379\"]\netcd_cert_file = \"c.pem\"\n", "cluster.etcd_key_file"},
		{"user without password", "store = \"etcd\"\netcd_endpoints = [\"127.0.0.1:2379\"]\netcd_username = \"u\"\n", "cluster.etcd_password_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base + "[cluster]\n" + tc.section))
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %v, want one naming %s", err, tc.key)
			}
		})
	}
}
