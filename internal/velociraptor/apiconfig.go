package velociraptor

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultServerName is the name in the Velociraptor frontend certificate.
const DefaultServerName = "VelociraptorServer"

// APIConfig is the file written by `velociraptor config api_client`.
type APIConfig struct {
	CACertificate    string `yaml:"ca_certificate"`
	ClientCert       string `yaml:"client_cert"`
	ClientPrivateKey string `yaml:"client_private_key"`
	ConnectionString string `yaml:"api_connection_string"`
	Name             string `yaml:"name"`
	PinnedServerName string `yaml:"pinned_server_name"`
	MaxGRPCRecvSize  uint64 `yaml:"max_grpc_recv_size"`
}

// LoadAPIConfig reads an api_client YAML file. It refuses a file that other
// users can read, because it holds the client's private key, and a key
// protected by a password, which velohunt cannot prompt for.
func LoadAPIConfig(path string) (APIConfig, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return APIConfig{}, fmt.Errorf("api config: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return APIConfig{}, fmt.Errorf("api config %s is readable by every user (mode %v); run chmod 600 on it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return APIConfig{}, fmt.Errorf("api config: %w", err)
	}
	return ParseAPIConfig(b)
}

// ParseAPIConfig parses the YAML of an api_client file. Unknown keys are
// allowed: newer Velociraptor versions add some.
func ParseAPIConfig(b []byte) (APIConfig, error) {
	var c APIConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		return APIConfig{}, fmt.Errorf("api config: %w", err)
	}
	switch {
	case c.CACertificate == "":
		return APIConfig{}, errors.New("api config: ca_certificate is missing")
	case c.ClientCert == "":
		return APIConfig{}, errors.New("api config: client_cert is missing")
	case c.ClientPrivateKey == "":
		return APIConfig{}, errors.New("api config: client_private_key is missing")
	case c.ConnectionString == "":
		return APIConfig{}, errors.New("api config: api_connection_string is missing")
	case strings.Contains(c.ClientPrivateKey, "ENCRYPTED"):
		return APIConfig{}, errors.New("api config: the private key is password-protected; create the api client without --password")
	}
	return c, nil
}

// TLSConfig builds the mutual-TLS configuration: the client certificate,
// the Velociraptor CA as the only root and the pinned server name.
func (c APIConfig) TLSConfig() (*tls.Config, error) {
	cert, err := tls.X509KeyPair([]byte(c.ClientCert), []byte(c.ClientPrivateKey))
	if err != nil {
		// The error of X509KeyPair never includes key material.
		return nil, fmt.Errorf("api config: client certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(c.CACertificate)) {
		return nil, errors.New("api config: ca_certificate holds no PEM certificate")
	}
	name := c.PinnedServerName
	if name == "" {
		name = DefaultServerName
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   name,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// Target returns the gRPC dial target of the connection string.
func (c APIConfig) Target() string {
	s := c.ConnectionString
	if strings.HasPrefix(s, "unix://") || strings.HasPrefix(s, "dns:") {
		return s
	}
	return "passthrough:///" + s
}
