package app

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// opError is the error net.Listen returns when bind(2) fails with errno.
func opError(addr string, errno syscall.Errno) error {
	tcp, _ := net.ResolveTCPAddr("tcp", addr)
	return &net.OpError{Op: "listen", Net: "tcp", Addr: tcp, Err: os.NewSyscallError("bind", errno)}
}

// TestBindError: a listener that cannot be bound is named with its key and
// address, the reason is given, and the operator is told what to do about
// it; the system error stays matchable.
func TestBindError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		listener string
		addr     string
		errno    syscall.Errno
		want     []string
		wantNot  []string
	}{
		{
			name: "privileged port", listener: "https", addr: "0.0.0.0:443", errno: syscall.EACCES,
			want: []string{"https listener", "proxy.listen_addr", "0.0.0.0:443", "permission denied",
				"CAP_NET_BIND_SERVICE", "setcap cap_net_bind_service=+ep $(which fronttier)",
				"AmbientCapabilities=CAP_NET_BIND_SERVICE", "1024"},
		},
		{
			name: "privileged http port", listener: "http", addr: "0.0.0.0:80", errno: syscall.EACCES,
			want: []string{"http listener", "proxy.listen_addr_http", "0.0.0.0:80", "CAP_NET_BIND_SERVICE"},
		},
		{
			name: "permission denied above 1024", listener: "api", addr: "127.0.0.1:9090", errno: syscall.EACCES,
			want:    []string{"api listener", "proxy.management_api_addr", "127.0.0.1:9090", "permission denied"},
			wantNot: []string{"CAP_NET_BIND_SERVICE"},
		},
		{
			name: "in use", listener: "http", addr: "127.0.0.1:8080", errno: syscall.EADDRINUSE,
			want:    []string{"http listener", "proxy.listen_addr_http", "127.0.0.1:8080", "address already in use", "another process"},
			wantNot: []string{"CAP_NET_BIND_SERVICE"},
		},
		{
			name: "not this machine's address", listener: "metrics", addr: "192.0.2.1:9091", errno: syscall.EADDRNOTAVAIL,
			want: []string{"metrics listener", "metrics.listen_addr", "192.0.2.1:9091", "not an address of this machine"},
		},
		{
			name: "pprof", listener: "pprof", addr: "127.0.0.1:6060", errno: syscall.EADDRINUSE,
			want: []string{"pprof listener", "debug.pprof_addr", "127.0.0.1:6060"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cause := opError(tc.addr, tc.errno)
			err := bindError(tc.listener, tc.addr, cause)
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(msg, w) {
					t.Errorf("%q says %q", msg, w)
				}
			}
			if strings.Count(msg, tc.addr) != 1 {
				t.Errorf("%q names %s more than once", msg, tc.addr)
			}
			if !errors.Is(err, tc.errno) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.errno)
			}
			var op *net.OpError
			if !errors.As(err, &op) || op != cause {
				t.Errorf("the net.OpError is not wrapped")
			}
		})
	}
}

// TestListenReportsBusyPort: listen on a port another socket holds fails
// with the listener's name, its address and the reason.
func TestListenReportsBusyPort(t *testing.T) {
	t.Parallel()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	_, err = bindListener("api", addr)
	if err == nil {
		t.Fatalf("listening on %s, which is held, succeeded", addr)
	}
	if msg := err.Error(); !strings.Contains(msg, "api listener") || !strings.Contains(msg, addr) || !strings.Contains(msg, "another process") {
		t.Errorf("error %q does not name the listener, the address and the reason", msg)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("errors.Is(%v, EADDRINUSE) = false", err)
	}
}
