package opcua

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers"
)

// pki is a test trust setup: a root CA, an intermediate under it, and
// server certificates of every kind.
type pki struct {
	now time.Time

	root, inter           []byte
	selfSigned            []byte // a server's own self-signed certificate
	leaf                  []byte // issued by the root
	leafViaInter          []byte // issued by the intermediate
	expired, notYet       []byte // issued by the root, outside their dates
	selfSignedExpired     []byte
	leafOfExpiredRoot     []byte
	expiredRoot           []byte
	unknown               []byte // self-signed, trusted nowhere
	leafOfUnknownCA       []byte
	rootCert, expiredCert *x509.Certificate
}

var (
	sharedPKI     *pki
	sharedPKIOnce sync.Once
)

// newPKI returns the test PKI, made once for all tests: RSA keys are slow
// to generate on a small ARM board.
func newPKI(t *testing.T) *pki {
	t.Helper()
	sharedPKIOnce.Do(func() { sharedPKI = makePKI(t) })
	if sharedPKI == nil {
		t.Fatal("making the test PKI failed")
	}
	return sharedPKI
}

func makePKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{now: time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)}
	year := 365 * 24 * time.Hour
	from, to := p.now.Add(-year), p.now.Add(year)
	var rootKey, interKey, oldRootKey, otherCAKey any
	var interCert, oldRoot, otherCA *x509.Certificate
	p.root, p.rootCert, rootKey = makeCert(t, certSpec{cn: "Acme Root CA", ca: true, notBefore: from.Add(-year), notAfter: to.Add(year)})
	p.inter, interCert, interKey = makeCert(t, certSpec{cn: "Acme Issuing CA", ca: true, notBefore: from, notAfter: to, parent: p.rootCert, parentKey: rootKey})
	p.selfSigned, _, _ = makeCert(t, certSpec{cn: "plc-1", uri: "urn:plc-1", notBefore: from, notAfter: to})
	p.leaf, _, _ = makeCert(t, certSpec{cn: "plc-2", notBefore: from, notAfter: to, parent: p.rootCert, parentKey: rootKey})
	p.leafViaInter, _, _ = makeCert(t, certSpec{cn: "plc-3", notBefore: from, notAfter: to, parent: interCert, parentKey: interKey})
	p.expired, p.expiredCert, _ = makeCert(t, certSpec{cn: "plc-old", notBefore: from, notAfter: p.now.Add(-24 * time.Hour), parent: p.rootCert, parentKey: rootKey})
	p.notYet, _, _ = makeCert(t, certSpec{cn: "plc-new", notBefore: p.now.Add(24 * time.Hour), notAfter: to, parent: p.rootCert, parentKey: rootKey})
	p.selfSignedExpired, _, _ = makeCert(t, certSpec{cn: "plc-4", notBefore: from, notAfter: p.now.Add(-time.Hour)})
	p.expiredRoot, oldRoot, oldRootKey = makeCert(t, certSpec{cn: "Old Root CA", ca: true, notBefore: from, notAfter: p.now.Add(-time.Hour)})
	p.leafOfExpiredRoot, _, _ = makeCert(t, certSpec{cn: "plc-5", notBefore: from, notAfter: p.now.Add(-time.Hour / 2), parent: oldRoot, parentKey: oldRootKey})
	p.unknown, _, _ = makeCert(t, certSpec{cn: "intruder", notBefore: from, notAfter: to})
	_, otherCA, otherCAKey = makeCert(t, certSpec{cn: "Other CA", ca: true, notBefore: from, notAfter: to})
	p.leafOfUnknownCA, _, _ = makeCert(t, certSpec{cn: "plc-6", notBefore: from, notAfter: to, parent: otherCA, parentKey: otherCAKey})
	return p
}

func loadTrustAt(t *testing.T, now time.Time, dir, pinned string) *Trust {
	t.Helper()
	tr, err := LoadTrust(dir, pinned, false)
	if err != nil {
		t.Fatal(err)
	}
	tr.now = func() time.Time { return now }
	return tr
}

func TestTrustVerify(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	writeFile(t, dir, "acme-root.crt", pemOf("CERTIFICATE", p.root))
	writeFile(t, dir, "plc-1.der", p.selfSigned) // a server's own, in DER
	writeFile(t, dir, "plc-4.pem", pemOf("CERTIFICATE", p.selfSignedExpired))
	writeFile(t, dir, "old-root.cer", pemOf("CERTIFICATE", p.expiredRoot))
	writeFile(t, dir, "README.txt", []byte("not a certificate, and not read"))
	if err := os.Mkdir(filepath.Join(dir, "sub.pem"), 0o755); err != nil {
		t.Fatal(err)
	}
	pinned := writeFile(t, t.TempDir(), "server.pem", pemOf("CERTIFICATE", p.selfSigned))
	pinnedCA := writeFile(t, t.TempDir(), "ca.pem", pemOf("CERTIFICATE", p.root))
	cat := func(ders ...[]byte) []byte { return bytes.Join(ders, nil) }

	type want int
	const (
		trusted want = iota
		untrusted
		dates
	)
	for _, tc := range []struct {
		name        string
		dir, pinned string
		server      []byte
		want        want
		msg         []string
	}{
		{"own certificate in the dir", dir, "", p.selfSigned, trusted, nil},
		{"issued by a CA in the dir", dir, "", p.leaf, trusted, nil},
		{"issued via an intermediate the server sends", dir, "", cat(p.leafViaInter, p.inter), trusted, nil},
		{"intermediate not sent", dir, "", p.leafViaInter, untrusted, nil},
		{"a trusted CA itself", dir, "", p.root, trusted, nil},
		{"unknown self-signed", dir, "", p.unknown, untrusted, []string{dir + " (security.trust_dir)", "security.server_cert", "-save-server-cert"}},
		{"issued by an unknown CA", dir, "", p.leafOfUnknownCA, untrusted, []string{`issued by "CN=Other CA, O=Acme"`}},
		{"expired, issued by a trusted CA", dir, "", p.expired, dates,
			[]string{"has expired", p.expiredCert.NotBefore.UTC().Format("2006-01-02 15:04"), p.expiredCert.NotAfter.UTC().Format("2006-01-02 15:04"), "2030-06-01 12:00", Thumbprint(p.expired)}},
		{"not valid yet", dir, "", p.notYet, dates, []string{"is not valid yet", "clocks"}},
		{"expired, trusted itself", dir, "", p.selfSignedExpired, dates, []string{"has expired", `"CN=plc-4, O=Acme"`}},
		{"issued by an expired CA", dir, "", p.leafOfExpiredRoot, dates, []string{`the CA certificate "CN=Old Root CA, O=Acme"`, "has expired"}},
		{"pinned", "", pinned, p.selfSigned, trusted, nil},
		{"pinned, another one offered", "", pinned, p.unknown, untrusted, []string{"not the one in " + pinned, "security.trust_dir"}},
		{"pinned CA trusts only itself", "", pinnedCA, p.leaf, untrusted, nil},
		{"dir and pinned", dir, pinned, p.leaf, trusted, nil},
		{"empty dir", t.TempDir(), "", p.selfSigned, untrusted, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := loadTrustAt(t, p.now, tc.dir, tc.pinned)
			err := tr.Verify(tc.server)
			var ue *UntrustedError
			switch tc.want {
			case trusted:
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			case untrusted:
				if !errors.As(err, &ue) {
					t.Fatalf("got %v, want an *UntrustedError", err)
				}
				leaf, _ := x509.ParseCertificates(tc.server)
				if ue.Thumbprint != Thumbprint(leaf[0].Raw) || !bytes.Equal(ue.Cert, leaf[0].Raw) {
					t.Errorf("thumbprint %s, want the leaf's %s", ue.Thumbprint, Thumbprint(leaf[0].Raw))
				}
				if !strings.Contains(err.Error(), ue.Thumbprint) || !strings.Contains(err.Error(), "is not trusted") {
					t.Errorf("message %q lacks the thumbprint", err)
				}
			case dates:
				if err == nil || errors.As(err, &ue) {
					t.Fatalf("got %v, want an error about dates", err)
				}
			}
			for _, w := range tc.msg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestUntrustedErrorMessage(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	err := loadTrustAt(t, p.now, dir, "").Verify(p.unknown)
	want := `server certificate "CN=intruder, O=Acme" (thumbprint ` + Thumbprint(p.unknown) + `) is not trusted; ` +
		`once its thumbprint is confirmed with the server's administrator, copy it into ` + dir + ` (security.trust_dir) or set security.server_cert to it ` +
		"(the server sends it at every connect, and `edgeagent browse -save-server-cert DIR` saves it)"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestLoadTrustErrors(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	garbageDir := t.TempDir()
	writeFile(t, garbageDir, "good.pem", pemOf("CERTIFICATE", p.root))
	garbage := writeFile(t, garbageDir, "junk.crt", []byte("not a certificate"))
	keyDir := t.TempDir()
	keyFile := writeFile(t, keyDir, "server.pem", append(pemOf("CERTIFICATE", p.selfSigned), pemOf("RSA PRIVATE KEY", []byte{1})...))
	twoCerts := writeFile(t, t.TempDir(), "chain.pem", append(pemOf("CERTIFICATE", p.leaf), pemOf("CERTIFICATE", p.root)...))
	missingDir := filepath.Join(t.TempDir(), "absent")
	for _, tc := range []struct {
		name        string
		dir, pinned string
		key         string
		want        []string
	}{
		{"nothing trusted", "", "", "security", []string{"security.trust_dir", "security.server_cert", "security.trust_any_server_certificate: true"}},
		{"garbage in the dir", garbageDir, "", "security.trust_dir", []string{garbage, "is not a certificate"}},
		{"private key in the dir", keyDir, "", "security.trust_dir", []string{keyFile, "private key"}},
		{"no such dir", missingDir, "", "security.trust_dir", []string{"cannot read the directory " + missingDir}},
		{"pinned file missing", "", filepath.Join(missingDir, "s.pem"), "security.server_cert", []string{"cannot read " + filepath.Join(missingDir, "s.pem")}},
		{"pinned chain", "", twoCerts, "security.server_cert", []string{twoCerts, "2 certificates"}},
		{"pinned garbage", "", garbage, "security.server_cert", []string{garbage}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadTrust(tc.dir, tc.pinned, false)
			if err == nil {
				t.Fatal("no error")
			}
			var ke *drivers.KeyError
			if !errors.As(err, &ke) || ke.Key != tc.key {
				t.Errorf("error %v is not about %s", err, tc.key)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestTrustSkip(t *testing.T) {
	t.Parallel()
	tr, err := LoadTrust("", "", true)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Skipping() {
		t.Error("Skipping() = false")
	}
	if err := tr.Verify(newPKI(t).unknown); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := tr.Verify([]byte("garbage")); err != nil {
		t.Errorf("Verify of garbage: %v", err)
	}
	strict, err := LoadTrust(t.TempDir(), "", false)
	if err != nil {
		t.Fatal(err)
	}
	if strict.Skipping() {
		t.Error("Skipping() = true without trust_any_server_certificate")
	}
	if err := strict.Verify([]byte("garbage")); err == nil || !strings.Contains(err.Error(), "cannot be parsed") {
		t.Errorf("Verify of garbage: %v", err)
	}
}

func TestTrustSave(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := filepath.Join(t.TempDir(), "trusted") // made by Save
	tr := loadTrustAt(t, p.now, t.TempDir(), "")
	chain := append(append([]byte{}, p.leafViaInter...), p.inter...)
	path, err := tr.Save(dir, chain)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "plc-3_"+ThumbprintHex(p.leafViaInter)+".pem"); path != want {
		t.Errorf("saved as %s, want %s", path, want)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if block, rest := pem.Decode(b); block == nil || block.Type != "CERTIFICATE" || !bytes.Equal(block.Bytes, p.leafViaInter) || len(rest) != 0 {
		t.Errorf("%s does not hold exactly the leaf as PEM:\n%s", path, b)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode: %v %v", fi.Mode(), err)
	}
	again, err := tr.Save(dir, chain)
	if err != nil || again != path {
		t.Errorf("saving again: %s, %v", again, err)
	}
	if err := loadTrustAt(t, p.now, dir, "").Verify(chain); err != nil {
		t.Errorf("the saved certificate is not trusted: %v", err)
	}
	if got := fileSafe(`a/b\c:d e*"ü`); got != "a_b_c_d_e" {
		t.Errorf("fileSafe = %q", got)
	}
	if got := fileSafe(""); got != "server" {
		t.Errorf("fileSafe of nothing = %q", got)
	}
}
