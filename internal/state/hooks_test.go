package state

import (
	"errors"
	"testing"

	"fronttier/internal/backend"
	"fronttier/internal/config"
	"fronttier/internal/logging"
	"fronttier/internal/store"
)

func TestHooks(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Proxy.ListenAddrHTTP = "127.0.0.1:0"
	s, err := New(cfg, backend.NewRegistry(nil, nil), store.NewFile(t.TempDir()+"/c.toml"), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	var published []int
	refuse := errors.New("certificate does not load")
	s.SetHooks(Hooks{
		Check: func(old, next *config.Config) error {
			if next.Host("bad.example.com") != nil {
				return refuse
			}
			return nil
		},
		Published: func(_, c *config.Config, _ string) { published = append(published, len(c.VirtualHosts)) },
	})
	if len(published) != 1 || published[0] != 0 {
		t.Fatalf("SetHooks published %v, want the configuration in force once", published)
	}
	if _, err := s.AddDomain(config.VirtualHost{Domain: "good.example.com", EnabledBackendsTag: "a"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.AddDomain(config.VirtualHost{Domain: "bad.example.com", EnabledBackendsTag: "a"})
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, refuse) {
		t.Fatalf("refused change: %v, want ErrInvalid wrapping the hook's error", err)
	}
	if s.Config().Host("bad.example.com") != nil || len(published) != 2 {
		t.Errorf("a refused change took effect (published %v)", published)
	}
	next := s.Config().Clone()
	next.VirtualHosts = append(next.VirtualHosts, config.VirtualHost{Domain: "bad.example.com", EnabledBackendsTag: "a"})
	if err := replace(s, next); !errors.Is(err, refuse) {
		t.Errorf("Replace skipped the Check hook: %v", err)
	}
}
