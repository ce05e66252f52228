package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// Management API

const apiBase = "/api/v1"

// apiRaw sends a request to the management API with the given content type
// (none if empty). path is relative to /api/v1.
func (p *proxyProc) apiRaw(method, path, contentType string, body io.Reader) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, "http://"+p.API+apiBase+path, body)
	if err != nil {
		return nil, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

// tryAPI sends body (nil: none; string or []byte: sent as is; anything
// else: encoded as JSON) with Content-Type application/json. It is safe to
// call from any goroutine.
func (p *proxyProc) tryAPI(method, path string, body any) (status int, data []byte, err error) {
	var r io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		r, ct = strings.NewReader(b), "application/json"
	case []byte:
		r, ct = bytes.NewReader(b), "application/json"
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		r, ct = bytes.NewReader(enc), "application/json"
	}
	resp, data, err := p.apiRaw(method, path, ct, r)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, data, nil
}

// api is tryAPI failing the test on a transport error; if out is not nil
// and the answer has a body, the body is decoded into it.
func (p *proxyProc) api(t testing.TB, method, path string, body, out any) int {
	t.Helper()
	status, data, err := p.tryAPI(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: status %d, body is not JSON: %v: %q", method, path, status, err, data)
		}
	}
	return status
}

// mustAPI is api requiring the status want.
func (p *proxyProc) mustAPI(t testing.TB, want int, method, path string, body, out any) {
	t.Helper()
	status, data, err := p.tryAPI(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if status != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, status, want, data)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v: %q", method, path, err, data)
		}
	}
}

// domainObj and backendObj are the API's domain and backend objects (the
// fields the tests look at).
type domainObj struct {
	Domain             string `json:"domain"`
	EnabledBackendsTag string `json:"enabled_backends_tag"`
	HTTPToHTTPS        *bool  `json:"http_to_https"`
}

type backendObj struct {
	ID             string   `json:"id"`
	Address        string   `json:"address"`
	Tags           []string `json:"tags"`
	Healthy        *bool    `json:"healthy"`
	Health         string   `json:"health"`
	ActiveRequests int64    `json:"active_requests"`
}

// switchTag switches domain to tag and requires 200.
func (p *proxyProc) switchTag(t testing.TB, domain, tag string) domainObj {
	t.Helper()
	var d domainObj
	p.mustAPI(t, http.StatusOK, http.MethodPost, "/domains/"+domain+"/switch", map[string]string{"new_tag": tag}, &d)
	return d
}

// validateFile runs fronttier validate --config path and returns its exit
// code and outputs.
func validateFile(t testing.TB, path string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(fronttierBin, "validate", "--config", path)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("fronttier validate: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// requireValid requires fronttier validate to print ok for path.
func requireValid(t testing.TB, path string) {
	t.Helper()
	code, stdout, stderr := validateFile(t, path)
	if code != 0 || strings.TrimSpace(stdout) != "ok" {
		t.Fatalf("fronttier validate %s: exit %d, stdout %q, stderr %q\nfile:\n%s", path, code, stdout, stderr, readFile(t, path))
	}
}

// dialRefused reports whether a TCP connection to addr is refused.
func dialRefused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}
