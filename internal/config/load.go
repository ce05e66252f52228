package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Load reads, decodes and validates the file at path. Unknown keys are
// errors. Every problem found is returned, joined, each naming its key (and
// line, where the TOML decoder knows it).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return LoadData(path, data)
}

// LoadData is Load of data, the content of the file at path (read by the
// caller, who may need the very bytes that were applied).
func LoadData(path string, data []byte) (*Config, error) {
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if f := c.Proxy.ManagementAPITokenFile; f != "" {
		if c.Proxy.tokenFromFile, err = readToken(f); err != nil {
			return nil, fmt.Errorf("config %s: proxy.management_api_token_file: %w", path, err)
		}
	}
	if err := c.readUserTokens(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// maxTokenFile bounds a token file; a token is a line, not a document.
const maxTokenFile = 4096

// readToken returns the token held in file, without surrounding white
// space. Its errors name the file, never the content.
func readToken(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("cannot read the token file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("cannot read the token file: %w", err)
	}
	if len(data) > maxTokenFile {
		return "", fmt.Errorf("token file %s is larger than %d bytes; it must hold only the token", file, maxTokenFile)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	if err := CheckToken(token); err != nil {
		return "", fmt.Errorf("token file %s: %w", file, err)
	}
	return token, nil
}

// The manual's listeners, used by a document with no [proxy] section at
// all (as the manual's usage examples have): HTTPS on 443 and HTTP on 80 on
// every address. The management API's default, 127.0.0.1:9090, is Default's.
const (
	ManualListenAddr     = "0.0.0.0:443"
	ManualListenAddrHTTP = "0.0.0.0:80"
)

// Parse decodes and validates a configuration document. A document without
// a [proxy] section listens where the manual says (ManualListenAddr,
// ManualListenAddrHTTP); one with a [proxy] section gets only the
// listeners it sets.
func Parse(data []byte) (*Config, error) {
	c := Default()
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		var strict *toml.StrictMissingError
		if !errors.As(err, &strict) {
			return nil, decodeError(err)
		}
		// The document decoded; report its unknown keys and every other
		// problem together.
		c.defaultListeners(data)
		c.normalise()
		return nil, errors.Join(decodeError(err), c.Validate())
	}
	c.defaultListeners(data)
	c.normalise()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// defaultListeners gives c the manual's HTTPS and HTTP listeners when data,
// the document c was decoded from, has no [proxy] section. A section that
// sets neither listener (however it is written: a table, an inline table,
// dotted keys) keeps its meaning and is refused by Validate. The document
// is looked at again only when both listeners are empty, so a usual file
// is decoded once.
func (c *Config) defaultListeners(data []byte) {
	if c.Proxy.ListenAddr != "" || c.Proxy.ListenAddrHTTP != "" {
		return
	}
	var probe struct {
		Proxy *struct{} `toml:"proxy"`
	}
	if err := toml.Unmarshal(data, &probe); err != nil || probe.Proxy != nil {
		return // a section is there (or the document is not TOML)
	}
	c.Proxy.ListenAddr, c.Proxy.ListenAddrHTTP = ManualListenAddr, ManualListenAddrHTTP
}

// normalise puts names in canonical form: domains lower-case without a
// trailing dot.
func (c *Config) normalise() {
	if cl := c.Cluster; cl != nil {
		if cl.Store == "" {
			cl.Store = StoreFile
		}
		if cl.EtcdPrefix == "" {
			cl.EtcdPrefix = "/fronttier"
		}
		if cl.NodeName == "" {
			cl.NodeName, _ = os.Hostname()
		}
		if cl.EtcdDialTimeoutSecs == 0 {
			cl.EtcdDialTimeoutSecs = 5
		}
	}
	for i := range c.VirtualHosts {
		c.VirtualHosts[i].Domain = NormaliseDomain(c.VirtualHosts[i].Domain)
	}
}

// decodeError turns the TOML library's errors into one line per problem,
// each with its key and position.
func decodeError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for i := range strict.Errors {
			e := &strict.Errors[i]
			row, _ := e.Position()
			errs = append(errs, fmt.Errorf("line %d: %s: unknown key", row, strings.Join(e.Key(), ".")))
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		key := strings.Join(de.Key(), ".")
		if key != "" {
			return fmt.Errorf("line %d, column %d: %s: %s", row, col, key, de.Error())
		}
		return fmt.Errorf("line %d, column %d: %s", row, col, de.Error())
	}
	return err
}
