package opcua_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/opcua"
	"github.com/edgeagent/edgeagent/internal/testutil"
)

// writeUserCert makes a self-signed RSA user certificate for cn and its
// key in dir, as an operator's would be: a person, not an application
// (no application URI).
func writeUserCert(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ski := sha1.Sum(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"edgeagent tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          ski[:],
		AuthorityKeyId:        ski[:],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// An X509 user identity over Basic256Sha256 SignAndEncrypt, against a
// server that checks the token's signature and trusts one user
// certificate: with it the driver reads and subscribes; with another the
// session is refused, and the error names the endpoint, the certificate
// file and its thumbprint, says the server does not accept it as a user
// identity and how to fix that, in words (no Go types). The trusted
// certificate with a token signed by another key is refused too: the
// server checks the proof of possession, not only the certificate.
func TestNodeOPCUAUserCertificate(t *testing.T) {
	dir := t.TempDir()
	operator, operatorKey := writeUserCert(t, dir, "operator")
	stranger, strangerKey := writeUserCert(t, dir, "stranger")
	s := testutil.StartNodeOPCUA(t, testutil.NodeOPCUAOptions{Counters: 1, TrustUserCerts: []string{operator}})
	src := func(cert, key string) string {
		return fmt.Sprintf("endpoint: %s\npublishing_interval: 100ms\n"+
			"security: {policy: Basic256Sha256, mode: SignAndEncrypt, server_cert: %s}\n"+
			"auth: {cert_file: %s, key_file: %s}\n"+
			"tags:\n  - {name: c, node: \"nsu=%s;s=Counter0000\"}\n",
			s.URL(), s.CertificateFile(), cert, key, s.NamespaceURI())
	}

	t.Run("trusted", func(t *testing.T) {
		s.Set("Counter0000", "5")
		d := nodeDriver(t, t.TempDir(), src(operator, operatorKey))
		connect(t, d)
		if got := read(t, d); got[0].Quality != drivers.QualityGood || got[0].Value.Uint() != 5 {
			t.Fatalf("read %v (%v), want 5", got[0].Value, got[0].Quality)
		}
		run := startSubscribe(t, d)
		defer run.cancel()
		s.Set("Counter0000", "6")
		deadline := time.After(10 * time.Second)
		for {
			select {
			case b := <-run.out:
				for _, smp := range b {
					if smp.Value.Uint() == 6 {
						return
					}
				}
			case err := <-run.done:
				t.Fatalf("Subscribe ended: %v", err)
			case <-deadline:
				t.Fatal("the change to 6 was not delivered within 10s")
			}
		}
	})

	t.Run("forged", func(t *testing.T) {
		// The driver cannot be made to sign with a key that is not the
		// certificate's (LoadUserCert checks the pair), so gopcua's
		// client presents the operator's certificate with the
		// stranger's key.
		cert, err := opcua.LoadUserCert(operator, operatorKey)
		if err != nil {
			t.Fatal(err)
		}
		wrong, err := opcua.LoadUserCert(stranger, strangerKey)
		if err != nil {
			t.Fatal(err)
		}
		client, err := opcua.LoadClientCert(t.TempDir(), "", "", "")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		eps, err := gopcua.GetEndpoints(ctx, s.URL())
		if err != nil {
			t.Fatal(err)
		}
		ep, err := gopcua.SelectEndpoint(eps, ua.SecurityPolicyURIBasic256Sha256, ua.MessageSecurityModeSignAndEncrypt)
		if err != nil {
			t.Fatal(err)
		}
		c, err := gopcua.NewClient(s.URL(), gopcua.AutoReconnect(false),
			gopcua.Certificate(client.Cert), gopcua.PrivateKey(client.Key),
			gopcua.SecurityFromEndpoint(ep, ua.UserTokenTypeCertificate),
			gopcua.AuthCertificate(cert.Cert), gopcua.AuthPrivateKey(wrong.Key))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		if err := c.Connect(ctx); !errors.Is(err, ua.StatusBadUserSignatureInvalid) {
			t.Errorf("a trusted user certificate with a token signed by another key: %v, want BadUserSignatureInvalid", err)
		}
	})

	t.Run("untrusted", func(t *testing.T) {
		d := nodeDriver(t, t.TempDir(), src(stranger, strangerKey))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := d.Connect(ctx)
		if err == nil {
			t.Fatal("a server that trusts only the operator's user certificate accepted another")
		}
		t.Log(err)
		c, lerr := opcua.LoadUserCert(stranger, strangerKey)
		if lerr != nil {
			t.Fatal(lerr)
		}
		msg := err.Error()
		for _, want := range []string{s.URL(), "refused the user certificate " + stranger, c.Thumbprint(), "BadIdentityTokenRejected", "trust"} {
			if !strings.Contains(msg, want) {
				t.Errorf("refused user certificate: %q does not say %q", msg, want)
			}
		}
		for _, bad := range []string{"*", "ua.", "StatusBad", "(0x"} {
			if strings.Contains(msg, bad) {
				t.Errorf("refused user certificate: %q holds %q, which is for programmers", msg, bad)
			}
		}
		// The server's user PKI made the decision: it filed the
		// certificate among its rejected ones, under the thumbprint the
		// error names.
		rejected, _ := filepath.Glob(filepath.Join(s.PKIDir(), "user", "rejected", "*"+opcua.ThumbprintHex(c.Cert)+"*"))
		if len(rejected) != 1 {
			all, _ := filepath.Glob(filepath.Join(s.PKIDir(), "user", "rejected", "*"))
			t.Errorf("the server's rejected user certificates hold %v, want one file named with %s", all, opcua.ThumbprintHex(c.Cert))
		}
	})
}
