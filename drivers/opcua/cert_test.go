package opcua

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uacp"
	"github.com/gopcua/opcua/uapolicy"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/internal/testutil"
)

// certSpec describes a test certificate; zero fields get defaults.
type certSpec struct {
	cn        string
	uri       string
	notBefore time.Time
	notAfter  time.Time
	ca        bool
	parent    *x509.Certificate // nil: self-signed
	parentKey any
	key       any // nil: a new RSA 2048 key
}

// makeCert returns a certificate's DER, parsed form and key.
func makeCert(t *testing.T, s certSpec) ([]byte, *x509.Certificate, any) {
	t.Helper()
	key := s.key
	if key == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	if s.cn == "" {
		s.cn = "test"
	}
	if s.notBefore.IsZero() {
		s.notBefore = time.Now().Add(-time.Hour)
	}
	if s.notAfter.IsZero() {
		s.notAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.cn, Organization: []string{"Acme"}},
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  s.ca,
	}
	if s.ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.ExtKeyUsage = nil
	}
	if s.uri != "" {
		u, err := url.Parse(s.uri)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	parent, parentKey := tmpl, key
	if s.parent != nil {
		parent, parentKey = s.parent, s.parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, publicOf(key), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return der, c, key
}

func publicOf(k any) any {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return &k.PublicKey
	case *ecdsa.PrivateKey:
		return &k.PublicKey
	}
	panic(fmt.Sprintf("key %T", k))
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pkcs8(t *testing.T, k any) []byte {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadClientCertGeneratesOnce(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	const uri = "urn:edgeagent:test-gw"
	c1, err := LoadClientCert(state, "", "", uri)
	if err != nil {
		t.Fatal(err)
	}
	if !c1.Generated || !c1.Created {
		t.Errorf("first load: Generated %v, Created %v; want both", c1.Generated, c1.Created)
	}
	dir := filepath.Join(state, "opcua")
	if c1.CertFile != filepath.Join(dir, "client-cert.pem") || c1.KeyFile != filepath.Join(dir, "client-key.pem") {
		t.Errorf("files %s, %s", c1.CertFile, c1.KeyFile)
	}
	for path, want := range map[string]fs.FileMode{dir: 0o700 | fs.ModeDir, c1.KeyFile: 0o600, c1.CertFile: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// The second start, even with another URI configured, reuses it.
	c2, err := LoadClientCert(state, "", "", "urn:edgeagent:renamed")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c1.Cert, c2.Cert) || !c1.Key.Equal(c2.Key) {
		t.Fatal("the second load made a new certificate")
	}
	if !c2.Generated || c2.Created {
		t.Errorf("second load: Generated %v, Created %v; want true, false", c2.Generated, c2.Created)
	}
	if c2.AppURI != uri {
		t.Errorf("second load: AppURI %q, want the certificate's %q", c2.AppURI, uri)
	}

	// What OPC UA servers look for.
	cert, err := uapolicy.ParseCertificate(c1.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != uri {
		t.Errorf("SAN URIs %v, want [%s]", cert.URIs, uri)
	}
	if host := hostname(); len(cert.DNSNames) != 1 || cert.DNSNames[0] != host {
		t.Errorf("SAN DNS names %v, want [%s]", cert.DNSNames, host)
	}
	if cert.Subject.CommonName != "edgeagent" || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "edgeagent" {
		t.Errorf("subject %v", cert.Subject)
	}
	var dc string
	for _, n := range cert.Subject.Names {
		if n.Type.Equal(oidDomainComponent) {
			dc, _ = n.Value.(string)
		}
	}
	if dc != hostname() {
		t.Errorf("subject DC %q, want the host name %q", dc, hostname())
	}
	wantKU := x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign
	if cert.KeyUsage != wantKU {
		t.Errorf("key usage %b, want %b", cert.KeyUsage, wantKU)
	}
	if len(cert.ExtKeyUsage) != 2 {
		t.Errorf("extended key usage %v, want client and server auth", cert.ExtKeyUsage)
	}
	if !cert.BasicConstraintsValid || cert.IsCA {
		t.Errorf("basic constraints valid %v, CA %v; want true, false", cert.BasicConstraintsValid, cert.IsCA)
	}
	if cert.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("signature algorithm %v", cert.SignatureAlgorithm)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("self-signature: %v", err)
	}
	if n := c1.Key.N.BitLen(); n != 2048 {
		t.Errorf("key bits %d", n)
	}
	if !bytes.Equal(cert.SubjectKeyId, cert.AuthorityKeyId) || len(cert.SubjectKeyId) == 0 {
		t.Errorf("subject key id %x, authority key id %x", cert.SubjectKeyId, cert.AuthorityKeyId)
	}
	if n := cert.SerialNumber.BitLen(); n > 128 || n < 64 {
		t.Errorf("serial number of %d bits", n)
	}
	if d := time.Until(cert.NotBefore); d > -50*time.Minute || d < -70*time.Minute {
		t.Errorf("not before %v: want an hour ago", cert.NotBefore)
	}
	if y := cert.NotAfter.Year() - cert.NotBefore.Year(); y != 10 || !cert.NotAfter.Equal(c1.NotAfter) {
		t.Errorf("valid %v to %v, NotAfter %v", cert.NotBefore, cert.NotAfter, c1.NotAfter)
	}
}

func TestLoadClientCertDefaultAppURI(t *testing.T) {
	t.Parallel()
	c, err := LoadClientCert(t.TempDir(), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "urn:edgeagent:" + hostname(); c.AppURI != want || DefaultAppURI() != want {
		t.Errorf("AppURI %q, DefaultAppURI %q; want %q", c.AppURI, DefaultAppURI(), want)
	}
}

// Several processes starting at once (the daemon and the CLI) end up with
// one pair.
func TestLoadClientCertConcurrentFirstStart(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	const n = 6
	certs := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := LoadClientCert(state, "", "", "urn:edgeagent:race")
			if err == nil {
				certs[i] = c.Cert
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	final, err := LoadClientCert(state, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("load %d: %v", i, errs[i])
		} else if !bytes.Equal(certs[i], final.Cert) {
			t.Errorf("load %d got a certificate other than the one kept", i)
		}
	}
}

func TestLoadClientCertHalfState(t *testing.T) {
	t.Parallel()
	for _, remove := range []string{"client-key.pem", "client-cert.pem"} {
		t.Run(remove, func(t *testing.T) {
			t.Parallel()
			state := t.TempDir()
			c, err := LoadClientCert(state, "", "", "urn:edgeagent:half")
			if err != nil {
				t.Fatal(err)
			}
			missing := filepath.Join(state, "opcua", remove)
			other := c.CertFile
			if missing == c.CertFile {
				other = c.KeyFile
			}
			kept, err := os.ReadFile(other)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(missing); err != nil {
				t.Fatal(err)
			}
			_, err = LoadClientCert(state, "", "", "urn:edgeagent:half")
			if err == nil {
				t.Fatal("loaded with a file missing")
			}
			msg := err.Error()
			for _, want := range []string{missing + " is missing", "delete " + other, "trust"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			if there, _ := exists(missing); there {
				t.Error("the missing file was made again")
			}
			if now, _ := os.ReadFile(other); !bytes.Equal(now, kept) {
				t.Error("the remaining file was changed")
			}
		})
	}
}

func TestLoadClientCertGeneratedKeyMismatch(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	c, err := LoadClientCert(state, "", "", "urn:edgeagent:mismatch")
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.KeyFile, pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(other)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadClientCert(state, "", "", "urn:edgeagent:mismatch")
	if err == nil || !strings.Contains(err.Error(), "does not match") || !strings.Contains(err.Error(), c.KeyFile) {
		t.Fatalf("got %v, want an error that the key in %s does not match", err, c.KeyFile)
	}
}

func TestLoadClientCertUserFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const certURI = "urn:acme:gw-7"
	der, _, key := makeCert(t, certSpec{cn: "gw-7", uri: certURI})
	rk := key.(*rsa.PrivateKey)
	noURI, _, _ := makeCert(t, certSpec{cn: "no-uri", key: rk})
	combined := append(pemOf("CERTIFICATE", der), pemOf("PRIVATE KEY", pkcs8(t, rk))...)

	files := map[string][]byte{
		"cert.pem":     pemOf("CERTIFICATE", der),
		"cert.der":     der,
		"nouri.pem":    pemOf("CERTIFICATE", noURI),
		"pkcs1.pem":    pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)),
		"pkcs8.pem":    pemOf("PRIVATE KEY", pkcs8(t, rk)),
		"pkcs1.der":    x509.MarshalPKCS1PrivateKey(rk),
		"pkcs8.der":    pkcs8(t, rk),
		"combined.pem": combined,
	}
	for name, b := range files {
		writeFile(t, dir, name, b)
	}
	for _, tc := range []struct {
		cert, key string
		wantURI   string
	}{
		{"cert.pem", "pkcs1.pem", certURI},
		{"cert.pem", "pkcs8.pem", certURI},
		{"cert.der", "pkcs1.der", certURI},
		{"cert.der", "pkcs8.der", certURI},
		{"cert.pem", "pkcs8.der", certURI},
		{"combined.pem", "combined.pem", certURI},
		{"nouri.pem", "pkcs1.pem", "urn:configured"}, // no URI in it: the configured one
	} {
		t.Run(tc.cert+"+"+tc.key, func(t *testing.T) {
			t.Parallel()
			// Not the state directory's pair: a state dir that does not exist
			// proves it is not touched.
			c, err := LoadClientCert(filepath.Join(dir, "nonexistent"), filepath.Join(dir, tc.cert), filepath.Join(dir, tc.key), "urn:configured")
			if err != nil {
				t.Fatal(err)
			}
			if c.Generated || c.Created {
				t.Error("user files marked generated")
			}
			if !c.Key.Equal(rk) {
				t.Error("wrong key")
			}
			if c.AppURI != tc.wantURI {
				t.Errorf("AppURI %q, want %q", c.AppURI, tc.wantURI)
			}
			if c.CertFile != filepath.Join(dir, tc.cert) {
				t.Errorf("CertFile %q", c.CertFile)
			}
			if _, err := uapolicy.ParseCertificate(c.Cert); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestLoadClientCertUserFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	der, _, key := makeCert(t, certSpec{uri: "urn:x"})
	rk := key.(*rsa.PrivateKey)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallCert, _, _ := makeCert(t, certSpec{key: small})
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecCert, _, _ := makeCert(t, certSpec{key: ec})
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})

	cert := writeFile(t, dir, "cert.pem", pemOf("CERTIFICATE", der))
	keyFile := writeFile(t, dir, "key.pem", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)))
	unreadable := writeFile(t, dir, "unreadable.pem", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)))
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		cert, key string
		wantKey   string   // the configuration key the error is about
		want      []string // in the message
	}{
		{"cert only", cert, "", "security.cert_file", []string{"security.key_file"}},
		{"key only", "", keyFile, "security.key_file", []string{"security.cert_file"}},
		{"EC key PEM", cert, writeFile(t, dir, "ec.pem", pemOf("EC PRIVATE KEY", ecDER)), "security.key_file", []string{"ec.pem", "not an RSA private key"}},
		{"EC key PKCS#8", cert, writeFile(t, dir, "ec8.pem", pemOf("PRIVATE KEY", pkcs8(t, ec))), "security.key_file", []string{"ec8.pem", "not an RSA private key"}},
		{"EC key DER", cert, writeFile(t, dir, "ec.der", ecDER), "security.key_file", []string{"ec.der", "not an RSA private key"}},
		{"EC certificate", writeFile(t, dir, "eccert.pem", pemOf("CERTIFICATE", ecCert)), keyFile, "security.cert_file", []string{"eccert.pem", "not an RSA key"}},
		{"key of another certificate", cert, writeFile(t, dir, "other.pem", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(other))), "security.key_file", []string{"other.pem", "does not match the certificate"}},
		{"1024-bit key", writeFile(t, dir, "small.pem", pemOf("CERTIFICATE", smallCert)), writeFile(t, dir, "smallkey.pem", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small))), "security.key_file", []string{"1024 bits"}},
		{"encrypted key", cert, writeFile(t, dir, "enc.pem", encrypted), "security.key_file", []string{"enc.pem", "encrypted"}},
		{"garbage certificate", writeFile(t, dir, "garbage.crt", []byte("hello")), keyFile, "security.cert_file", []string{"garbage.crt", "is not a certificate"}},
		{"key as certificate", keyFile, keyFile, "security.cert_file", []string{"key.pem", "no PEM CERTIFICATE"}},
		{"certificate as key", cert, cert, "security.key_file", []string{"cert.pem", "no PEM private key"}},
		{"missing key", cert, filepath.Join(dir, "absent.pem"), "security.key_file", []string{"cannot read " + filepath.Join(dir, "absent.pem") + ": no such file or directory"}},
		{"unreadable key", cert, unreadable, "security.key_file", []string{"cannot read " + unreadable + ": permission denied"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.name == "unreadable key" && os.Geteuid() == 0 {
				t.Skip("root reads any file")
			}
			_, err := LoadClientCert(t.TempDir(), tc.cert, tc.key, "")
			if err == nil {
				t.Fatal("no error")
			}
			var ke *drivers.KeyError
			if !errors.As(err, &ke) || ke.Key != tc.wantKey {
				t.Errorf("error %v is not about %s", err, tc.wantKey)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A user identity's pair follows the same rules, with errors about the
// auth keys.
func TestLoadUserCert(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	der, _, key := makeCert(t, certSpec{cn: "operator"})
	cert := writeFile(t, dir, "operator.pem", pemOf("CERTIFICATE", der))
	keyFile := writeFile(t, dir, "operator.key", pemOf("PRIVATE KEY", pkcs8(t, key)))
	other := writeFile(t, dir, "other.key", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(makeKey(t))))
	c, err := LoadUserCert(cert, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.ExpiryWarning(c.NotAfter.Add(-24 * time.Hour)); !strings.Contains(w, "user certificate "+cert) || !strings.Contains(w, "auth.cert_file") {
		t.Errorf("warning %q", w)
	}
	for _, tc := range []struct {
		cert, key, wantKey string
	}{
		{cert, other, "auth.key_file"},
		{keyFile, keyFile, "auth.cert_file"},
		{cert, "", "auth.cert_file"},
	} {
		_, err := LoadUserCert(tc.cert, tc.key)
		var ke *drivers.KeyError
		if !errors.As(err, &ke) || ke.Key != tc.wantKey {
			t.Errorf("LoadUserCert(%s, %s): %v, want an error about %s", tc.cert, tc.key, err, tc.wantKey)
		}
	}
}

func makeKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestThumbprint(t *testing.T) {
	t.Parallel()
	// testdata/thumbprint.pem was made with openssl req -x509; its
	// fingerprint is what `openssl x509 -in testdata/thumbprint.pem
	// -noout -fingerprint -sha1` printed.
	const want = "28:D4:CE:B2:8B:50:F0:81:4C:F7:6A:91:41:9F:F0:FA:4D:8E:C6:59"
	b, err := os.ReadFile(filepath.Join("testdata", "thumbprint.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("no PEM block")
	}
	if got := Thumbprint(block.Bytes); got != want {
		t.Errorf("Thumbprint = %s, want %s", got, want)
	}
	if got, want := ThumbprintHex(block.Bytes), strings.ToLower(strings.ReplaceAll(want, ":", "")); got != want {
		t.Errorf("ThumbprintHex = %s, want %s", got, want)
	}
	// Of a chain, the leaf's.
	other, _, _ := makeCert(t, certSpec{})
	if got := Thumbprint(append(append([]byte{}, block.Bytes...), other...)); got != want {
		t.Errorf("Thumbprint of a chain = %s, want the leaf's %s", got, want)
	}
}

func TestExpiryWarning(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	user := &ClientCert{CertFile: "/etc/edgeagent/gw.pem", KeyFile: "/etc/edgeagent/gw.key", AppURI: "urn:acme:gw"}
	gen := &ClientCert{CertFile: "/var/lib/edgeagent/opcua/client-cert.pem", KeyFile: "/var/lib/edgeagent/opcua/client-key.pem", Generated: true}
	for _, tc := range []struct {
		name     string
		c        *ClientCert
		notAfter time.Time
		want     []string // empty: no warning
	}{
		{"a year left", user, now.AddDate(1, 0, 0), nil},
		{"31 days left", user, now.Add(31 * 24 * time.Hour), nil},
		{"10 days left", user, now.Add(10*24*time.Hour + time.Hour), []string{"/etc/edgeagent/gw.pem", "expires on 2030-06-11 13:00 UTC", "in 10 days", "security.cert_file", "urn:acme:gw"}},
		{"expired", user, now.Add(-time.Hour), []string{"/etc/edgeagent/gw.pem", "expired on 2030-06-01 11:00 UTC", "renew"}},
		{"generated, expiring", gen, now.Add(5 * 24 * time.Hour), []string{"client-cert.pem", "in 5 days", "delete it and /var/lib/edgeagent/opcua/client-key.pem", "thumbprint changes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *tc.c
			c.NotAfter = tc.notAfter
			got := c.ExpiryWarning(now)
			if len(tc.want) == 0 {
				if got != "" {
					t.Errorf("warning %q, want none", got)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("warning %q lacks %q", got, w)
				}
			}
		})
	}
}

func TestRejectedByServer(t *testing.T) {
	t.Parallel()
	der, _, key := makeCert(t, certSpec{uri: "urn:edgeagent:gw"})
	c := &ClientCert{Cert: der, Key: key.(*rsa.PrivateKey), CertFile: "/var/lib/edgeagent/opcua/client-cert.pem", AppURI: "urn:edgeagent:gw"}
	for _, tc := range []struct {
		name   string
		err    error
		want   []string // empty: not about our certificate (nil)
		status ua.StatusCode
	}{
		{"security checks failed (node-opcua)", ua.StatusBadSecurityChecksFailed,
			[]string{"refused our client certificate", c.CertFile, Thumbprint(der), ThumbprintHex(der), "BadSecurityChecksFailed", "trusted certificates", "rejected"}, ua.StatusBadSecurityChecksFailed},
		{"wrapped", fmt.Errorf("opening a secure channel: %w", ua.StatusBadCertificateUntrusted),
			[]string{"BadCertificateUntrusted", "does not trust it", Thumbprint(der)}, ua.StatusBadCertificateUntrusted},
		{"transport error with reason", &uacp.Error{ErrorCode: uint32(ua.StatusBadSecurityChecksFailed), Reason: "certificate untrusted"},
			[]string{`the server says "certificate untrusted"`, Thumbprint(der)}, ua.StatusBadSecurityChecksFailed},
		{"URI", ua.StatusBadCertificateURIInvalid, []string{"application URI", "urn:edgeagent:gw"}, ua.StatusBadCertificateURIInvalid},
		{"time", ua.StatusBadCertificateTimeInvalid, []string{"expired or not yet valid", "clocks"}, ua.StatusBadCertificateTimeInvalid},
		{"revocation unknown", ua.StatusBadCertificateRevocationUnknown, []string{"CRL"}, ua.StatusBadCertificateRevocationUnknown},
		{"user refused", ua.StatusBadIdentityTokenRejected, nil, 0},
		{"access denied", ua.StatusBadUserAccessDenied, nil, 0},
		{"timeout", ua.StatusBadTimeout, nil, 0},
		{"not a status", errors.New("connection refused"), nil, 0},
		{"nil", nil, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := RejectedByServer(c, tc.err)
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			var re *RejectedError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *RejectedError", err)
			}
			if re.Status != tc.status || !errors.Is(err, tc.status) {
				t.Errorf("status %v, want %v and errors.Is to hold", re.Status, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if err := RejectedByServer(nil, ua.StatusBadSecurityChecksFailed); err != nil {
		t.Errorf("without a client certificate: %v", err)
	}
}

// Against node-opcua refusing unknown client certificates: the generated
// certificate is refused with a message that shows its thumbprint, the
// server files it under a name holding the hex thumbprint, and trusting it
// there, as the message advises, lets the next connect in. The server's
// own certificate goes the other way: untrusted, saved, then trusted.
func TestNodeOPCUACertificateRoundTrip(t *testing.T) {
	t.Parallel()
	s := testutil.StartNodeOPCUA(t, testutil.NodeOPCUAOptions{RejectUnknownCerts: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := LoadClientCert(t.TempDir(), "", "", "urn:edgeagent:roundtrip")
	if err != nil {
		t.Fatal(err)
	}
	eps, err := gopcua.GetEndpoints(ctx, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	ep, err := gopcua.SelectEndpoint(eps, ua.SecurityPolicyURIBasic256Sha256, ua.MessageSecurityModeSignAndEncrypt)
	if err != nil {
		t.Fatal(err)
	}

	// The server's certificate.
	own, err := os.ReadFile(s.CertificateFile())
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(own); block == nil || Thumbprint(ep.ServerCertificate) != Thumbprint(block.Bytes) {
		t.Fatalf("the endpoint's certificate is not %s", s.CertificateFile())
	}
	trustDir := t.TempDir()
	trust, err := LoadTrust(trustDir, "", false)
	if err != nil {
		t.Fatal(err)
	}
	var ue *UntrustedError
	if err := trust.Verify(ep.ServerCertificate); !errors.As(err, &ue) {
		t.Fatalf("an unknown server certificate: %v", err)
	}
	if _, err := trust.Save(trustDir, ep.ServerCertificate); err != nil {
		t.Fatal(err)
	}
	if trust, err = LoadTrust(trustDir, "", false); err != nil {
		t.Fatal(err)
	}
	if err := trust.Verify(ep.ServerCertificate); err != nil {
		t.Fatalf("the saved server certificate: %v", err)
	}

	// Ours.
	connect := func() error {
		c, err := gopcua.NewClient(s.URL(),
			gopcua.AutoReconnect(false), gopcua.DialTimeout(10*time.Second), gopcua.RequestTimeout(10*time.Second),
			gopcua.SecurityFromEndpoint(ep, ua.UserTokenTypeAnonymous), gopcua.AuthAnonymous(),
			gopcua.Certificate(client.Cert), gopcua.PrivateKey(client.Key), gopcua.ApplicationURI(client.AppURI))
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		return c.Connect(ctx)
	}
	err = connect()
	rej := RejectedByServer(client, err)
	if rej == nil {
		t.Fatalf("connecting with an untrusted certificate: %v, not refused as such", err)
	}
	t.Logf("refused: %v", rej)
	if !errors.Is(rej, ua.StatusBadSecurityChecksFailed) || !strings.Contains(rej.Error(), client.Thumbprint()) {
		t.Errorf("got %v, want BadSecurityChecksFailed showing our thumbprint", rej)
	}
	rejected, _ := filepath.Glob(filepath.Join(s.PKIDir(), "server", "rejected", "*"+ThumbprintHex(client.Cert)+"*"))
	if len(rejected) != 1 {
		t.Fatalf("no file named after %s in the server's rejected folder", ThumbprintHex(client.Cert))
	}
	trusted := filepath.Join(s.PKIDir(), "server", "trusted", "certs", filepath.Base(rejected[0]))
	if err := os.Rename(rejected[0], trusted); err != nil {
		t.Fatal(err)
	}
	// node-opcua notices its trusted folder changed within seconds.
	deadline := time.Now().Add(30 * time.Second)
	for err = connect(); err != nil && time.Now().Before(deadline); err = connect() {
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("still refused once trusted: %v", err)
	}
}
