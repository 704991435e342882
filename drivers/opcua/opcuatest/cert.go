package opcuatest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"time"
)

// certValidity is how long the server certificate is valid: long enough
// for any demo, and fixed so tests never meet an expired one.
const certValidity = 10 * 365 * 24 * time.Hour

// newCertificate makes the self-signed RSA certificate OPC UA asks of an
// application: its ApplicationUri in the SAN, the hosts it is reached by,
// and the key usages clients check.
func newCertificate(hosts []string) ([]byte, *rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("opcuatest: generating the server key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("opcuatest: generating a serial number: %w", err)
	}
	uri, err := url.Parse(applicationURI)
	if err != nil {
		return nil, nil, fmt.Errorf("opcuatest: parsing %q: %w", applicationURI, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "opcuatest", Organization: []string{"edgeagent"}},
		NotBefore:    now.Add(-time.Hour), // tolerate clock skew
		NotAfter:     now.Add(certValidity),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment |
			x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("opcuatest: creating the server certificate: %w", err)
	}
	return der, key, nil
}

// writeCertificate stores the certificate and key as PEM files.
func writeCertificate(certFile, keyFile string, der []byte, key *rsa.PrivateKey) error {
	c := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, c, 0o644); err != nil {
		return fmt.Errorf("opcuatest: writing the server certificate: %w", err)
	}
	k := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, k, 0o600); err != nil {
		return fmt.Errorf("opcuatest: writing the server key: %w", err)
	}
	return nil
}
