package app

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// bindListener binds the TCP address addr for the listener called name
// ("http", "https", "api", "metrics", "pprof"); its error is bindError's.
func bindListener(name, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, bindError(name, addr, err)
	}
	return ln, nil
}

// listenerKey is the configuration key that sets the listener called
// name, or "" for a name it does not know.
func listenerKey(name string) string {
	switch name {
	case "http":
		return "proxy.listen_addr_http"
	case "https":
		return "proxy.listen_addr"
	case "api":
		return "proxy.management_api_addr"
	case "metrics":
		return "metrics.listen_addr"
	case "pprof":
		return "debug.pprof_addr"
	}
	return ""
}

// listenError is a listener that could not be bound: the message names the
// listener, its key and address, the reason and what to do about it; err
// is net.Listen's error, kept for errors.Is and errors.As.
type listenError struct {
	msg string
	err error
}

func (e *listenError) Error() string { return e.msg }
func (e *listenError) Unwrap() error { return e.err }

// bindError explains why net.Listen could not bind addr for the listener
// called name, for an operator reading it at start: "https listener
// (proxy.listen_addr) cannot bind 0.0.0.0:443: permission denied; ...".
// A permission error on a port below 1024 says how to grant the right to
// bind it, an address in use that another process holds it.
func bindError(name, addr string, err error) error {
	what := name + " listener"
	if key := listenerKey(name); key != "" {
		what += " (" + key + ")"
	}
	reason, hint := err.Error(), ""
	var errno syscall.Errno
	if errors.As(err, &errno) {
		reason = errno.Error()
		hint = bindHint(addr, errno)
	}
	return &listenError{msg: fmt.Sprintf("%s cannot bind %s: %s%s", what, addr, reason, hint), err: err}
}

// bindHint is what an operator can do about errno when binding addr,
// starting with "; ", or "" when there is nothing useful to say.
func bindHint(addr string, errno syscall.Errno) string {
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	switch errno {
	case syscall.EACCES:
		if port > 0 && port < 1024 {
			return "; ports below 1024 need the CAP_NET_BIND_SERVICE capability (or root): " +
				"run `setcap cap_net_bind_service=+ep $(which fronttier)` once, " +
				"or set AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit, " +
				"or choose a port of 1024 or above"
		}
		return "; a security policy (SELinux, AppArmor, a container's seccomp profile) forbids it"
	case syscall.EADDRINUSE:
		return fmt.Sprintf("; another process holds this port (`ss -ltnp 'sport = :%s'` shows which); "+
			"stop it or choose another address", portStr)
	case syscall.EADDRNOTAVAIL:
		return fmt.Sprintf("; %s is not an address of this machine: use one of its addresses, "+
			"or 0.0.0.0 for all of them", host)
	}
	return ""
}
