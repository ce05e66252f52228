package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FindTool returns the path of the command name (an external test tool:
// pebble, h2spec), looked for in PATH, GOBIN, GOPATH/bin and ~/go/bin. When
// it is missing the test is skipped, or fails when CI is set (CI must run
// every test); install says how to get it.
func FindTool(t testing.TB, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if out, err := exec.Command(goCommand(), "env", "GOPATH").Output(); err == nil {
		for p := range strings.SplitSeq(strings.TrimSpace(string(out)), string(os.PathListSeparator)) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found in PATH, GOBIN or GOPATH/bin; install it with %s", name, install)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// goCommand is the go command: the one on PATH, else the one in
// $GOROOT/bin.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeDNSPort returns a port on 127.0.0.1 free for both TCP and UDP a
// moment ago.
func FreeDNSPort(t testing.TB) int {
	t.Helper()
	for {
		port := FreePort(t)
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			pc.Close()
			return port
		}
	}
}

// ProbeDNS resolves a name through the DNS server on 127.0.0.1:port (a
// readiness check for pebble-challtestsrv, which answers every name).
func ProbeDNS(ctx context.Context, port int) error {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(port))
	}}
	addrs, err := r.LookupIPAddr(ctx, "probe.example.test")
	if err == nil && len(addrs) == 0 {
		err = errors.New("no address")
	}
	return err
}
