// Package ctl is the command line client of the management API:
// "fronttier ctl". It speaks only HTTP and JSON to /api/v1 and imports
// nothing else of fronttier.
package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DefaultAPI is the management API's address when neither --api nor
// FRONTTIER_API names one.
const DefaultAPI = "http://127.0.0.1:9090"

// APIError is a non-2xx answer: its status and the API's {"error": ...}.
type APIError struct {
	Status int
	Msg    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status)
}

// client calls the management API at base (".../api/v1").
type client struct {
	base  string
	token string
	hc    *http.Client
}

// apiBase turns an address ("host:port", "http://host:port" or one
// already ending in /api/v1) into the API's base URL.
func apiBase(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", fmt.Errorf("empty API address")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("API address %q is not http(s)://host:port", addr)
	}
	p := strings.TrimSuffix(u.Path, "/")
	p = strings.TrimSuffix(p, "/api/v1")
	u.Path = p + "/api/v1"
	return u.String(), nil
}

// seg escapes one path segment (a domain or backend id).
func seg(s string) string { return url.PathEscape(s) }

// do sends method path with body (JSON-encoded, when not nil) and returns
// the answer's body for a 2xx status, else an *APIError.
func (c *client) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return nil, &APIError{Status: resp.StatusCode, Msg: msg}
	}
	return data, nil
}

// call calls the API and decodes its answer into out (when not nil);
// it returns the raw answer too, for -o json.
func (c *client) call(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	data, err := c.do(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
		}
	}
	return data, nil
}
