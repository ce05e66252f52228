package state

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"fronttier/internal/backend"
	"fronttier/internal/config"
	"fronttier/internal/logging"
	"fronttier/internal/store"
	"fronttier/internal/testutil"
)

// nopPersister accepts every change without writing it.
type nopPersister struct{ testutil.Persister }

// bigConfig has n domains and n backends, ten backends per tag, each
// domain on one of two tags so that switching has somewhere to go.
func bigConfig(n int) *config.Config {
	c := config.Default()
	c.Proxy.ListenAddrHTTP = "127.0.0.1:0"
	for i := range n {
		c.Backends = append(c.Backends, config.Backend{
			ID:      fmt.Sprintf("b%05d", i),
			Address: fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255),
			Tags:    []string{fmt.Sprintf("t%d", i/10)},
		})
		c.VirtualHosts = append(c.VirtualHosts, config.VirtualHost{
			Domain:             fmt.Sprintf("d%05d.example.com", i),
			EnabledBackendsTag: fmt.Sprintf("t%d", i/10),
		})
	}
	return c
}

func benchSwitch(b *testing.B, p store.Store) {
	s, err := New(bigConfig(10000), backend.NewRegistry(nil, nil), p, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		tag := fmt.Sprintf("t%d", (i+1)%1000)
		if _, err := s.Switch("d00000.example.com", tag, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSwitch10k measures the proxy's own time for a switch with
// 10,000 domains and backends loaded: validate, build and publish the new
// route table (no disk).
func BenchmarkSwitch10k(b *testing.B) { benchSwitch(b, &nopPersister{}) }

// BenchmarkSwitch10kDurable is the whole API write: the same switch plus
// the durable, atomic write-back of the 20,000-entry file.
func BenchmarkSwitch10kDurable(b *testing.B) {
	benchSwitch(b, store.NewFile(filepath.Join(b.TempDir(), "config.toml")))
}

// BenchmarkMemory10k reports the heap held per domain+backend pair once
// 10,000 of each are loaded and published.
func BenchmarkMemory10k(b *testing.B) {
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s, err := New(bigConfig(10000), backend.NewRegistry(nil, nil), &nopPersister{}, logging.Discard())
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/10000, "B/domain+backend")
		runtime.KeepAlive(s)
	}
}
