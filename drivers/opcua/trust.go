package opcua

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeagent/edgeagent/drivers"
)

// saveServerCertHint tells, in the untrusted-certificate error, how to get
// the server's certificate.
const saveServerCertHint = "the server sends it at every connect, and `edgeagent browse -save-server-cert DIR` saves it"

// trustExts are the file name extensions read from security.trust_dir.
var trustExts = map[string]bool{".pem": true, ".crt": true, ".der": true, ".cer": true}

// Trust is the set of server certificates the client trusts: those in
// security.trust_dir, trusted themselves and as CAs, and the one in
// security.server_cert, trusted only itself; or nothing checked at all
// with security.trust_any_server_certificate. It does not change after
// LoadTrust, so Verify may be called concurrently.
type Trust struct {
	dir, pinnedFile string
	skip            bool
	exact           map[[20]byte]bool // thumbprints of every trusted certificate
	roots           *x509.CertPool    // certificates of dir, as chain anchors
	now             func() time.Time
}

// LoadTrust reads the trusted certificates: every *.pem, *.crt, *.der and
// *.cer file in dir (not its subdirectories; a PEM file may hold several),
// and pinnedFile, one certificate in PEM or DER. A file that cannot be
// read or parsed is an error that names it. An empty dir trusts nothing.
// Without dir and pinnedFile, skipVerify must be set: Verify then accepts
// any server certificate and Skipping reports it, for a warning at every
// connect.
func LoadTrust(dir, pinnedFile string, skipVerify bool) (*Trust, error) {
	t := &Trust{dir: dir, pinnedFile: pinnedFile, skip: skipVerify, exact: map[[20]byte]bool{}, roots: x509.NewCertPool(), now: time.Now}
	if dir == "" && pinnedFile == "" && !skipVerify {
		return nil, drivers.KeyErr("security", errors.New("needs the server certificate trusted: security.trust_dir (a directory of trusted certificates) or security.server_cert (the server's certificate file), "+
			"or verification skipped explicitly with security.trust_any_server_certificate: true"))
	}
	if dir != "" {
		if err := t.loadDir(dir); err != nil {
			return nil, err
		}
	}
	if pinnedFile != "" {
		b, err := readFile(pinnedFile)
		if err != nil {
			return nil, drivers.KeyErr("security.server_cert", err)
		}
		certs, err := parseCerts(b, false)
		if err != nil {
			return nil, drivers.KeyErr("security.server_cert", fmt.Errorf("%s %w", pinnedFile, err))
		}
		if len(certs) > 1 {
			return nil, drivers.KeyErr("security.server_cert", fmt.Errorf("%s holds %d certificates; it pins exactly one, the server's own (CA certificates belong in security.trust_dir)", pinnedFile, len(certs)))
		}
		t.exact[sha1Of(certs[0])] = true
	}
	return t, nil
}

func (t *Trust) loadDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return drivers.KeyErr("security.trust_dir", fmt.Errorf("cannot read the directory %s: %w", dir, err))
	}
	var errs []error
	for _, e := range entries {
		if !trustExts[strings.ToLower(filepath.Ext(e.Name()))] {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			continue
		}
		b, err := readFile(path)
		if err != nil {
			errs = append(errs, drivers.KeyErr("security.trust_dir", err))
			continue
		}
		certs, err := parseCerts(b, false)
		if err != nil {
			errs = append(errs, drivers.KeyErr("security.trust_dir", fmt.Errorf("%s %w", path, err)))
			continue
		}
		for _, c := range certs {
			t.exact[sha1Of(c)] = true
			t.roots.AddCert(c)
		}
	}
	return errors.Join(errs...)
}

func sha1Of(c *x509.Certificate) [20]byte { return thumbprintSum(c.Raw) }

// Skipping reports whether server certificates go unchecked
// (security.trust_any_server_certificate), which the driver warns about at
// every connect.
func (t *Trust) Skipping() bool { return t.skip }

// Verify checks the certificate a server offers: DER, possibly its leaf
// followed by its issuers. It is trusted when the leaf itself is trusted
// (by thumbprint), or when it chains, through the issuers it came with, to
// a CA certificate in the trust directory (host names are not checked:
// servers are reached by whatever address the network gives). A trusted
// certificate, or any certificate of its chain, outside its validity dates
// is refused with an error that shows them; an untrusted one is an
// *UntrustedError.
func (t *Trust) Verify(serverDER []byte) error {
	if t.skip {
		return nil
	}
	certs, err := x509.ParseCertificates(serverDER)
	if err != nil || len(certs) == 0 {
		return fmt.Errorf("the server's certificate cannot be parsed: %v", err)
	}
	leaf, now := certs[0], t.now()
	var chain []*x509.Certificate
	var cause error
	if t.exact[sha1Of(leaf)] {
		chain = []*x509.Certificate{leaf}
	} else if t.dir != "" {
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		// Chain at a time the leaf is valid, so that an expired leaf from a
		// trusted CA gets the error about its dates, not "untrusted".
		at := now
		if at.Before(leaf.NotBefore) {
			at = leaf.NotBefore
		} else if at.After(leaf.NotAfter) {
			at = leaf.NotAfter
		}
		chains, err := leaf.Verify(x509.VerifyOptions{
			Roots:         t.roots,
			Intermediates: inter,
			CurrentTime:   at,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		var inv x509.CertificateInvalidError
		switch {
		case err == nil:
			chain = chains[0]
		case errors.As(err, &inv) && inv.Reason == x509.Expired && inv.Cert != nil:
			return dateError(leaf, inv.Cert, now)
		default:
			cause = err
		}
	}
	if chain == nil {
		return &UntrustedError{
			Thumbprint: Thumbprint(leaf.Raw),
			Subject:    dn(leaf.Subject),
			Issuer:     dn(leaf.Issuer),
			NotAfter:   leaf.NotAfter,
			Cert:       leaf.Raw,
			TrustDir:   t.dir,
			PinnedFile: t.pinnedFile,
			Err:        cause,
		}
	}
	for _, c := range chain {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return dateError(leaf, c, now)
		}
	}
	return nil
}

// dateError refuses the server certificate leaf because c, leaf or one of
// its issuers, is outside its validity dates at now.
func dateError(leaf, c *x509.Certificate, now time.Time) error {
	const layout = "2006-01-02 15:04 MST"
	what := fmt.Sprintf("the server certificate %q (thumbprint %s)", dn(leaf.Subject), Thumbprint(leaf.Raw))
	if !bytes.Equal(c.Raw, leaf.Raw) {
		what = fmt.Sprintf("the CA certificate %q (thumbprint %s) that issued %s", dn(c.Subject), Thumbprint(c.Raw), what)
	}
	valid := fmt.Sprintf("valid from %s to %s, and it is now %s", c.NotBefore.UTC().Format(layout), c.NotAfter.UTC().Format(layout), now.UTC().Format(layout))
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%s is not valid yet: it is %s; check the clocks of this gateway and of the server", what, valid)
	}
	return fmt.Errorf("%s has expired: it was %s; the server needs a new certificate", what, valid)
}

// UntrustedError is a server certificate that is neither trusted itself
// nor issued by a trusted CA.
type UntrustedError struct {
	Thumbprint string // as Thumbprint formats it
	Subject    string // "CN=..., O=..."
	Issuer     string
	NotAfter   time.Time
	Cert       []byte // the leaf's DER, for Trust.Save
	// TrustDir and PinnedFile are the configured security.trust_dir and
	// security.server_cert ("" when not set).
	TrustDir, PinnedFile string
	// Err is why no chain to a CA in TrustDir was found, if one was sought.
	Err error
}

func (e *UntrustedError) Unwrap() error { return e.Err }

func (e *UntrustedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "server certificate %q (thumbprint %s", e.Subject, e.Thumbprint)
	if e.Issuer != e.Subject {
		fmt.Fprintf(&b, ", issued by %q", e.Issuer)
	}
	b.WriteString(") is not trusted")
	if e.PinnedFile != "" {
		fmt.Fprintf(&b, ": it is not the one in %s (security.server_cert)", e.PinnedFile)
	}
	b.WriteString("; once its thumbprint is confirmed with the server's administrator, ")
	if e.TrustDir != "" {
		fmt.Fprintf(&b, "copy it into %s (security.trust_dir) or set security.server_cert to it", e.TrustDir)
	} else {
		b.WriteString("set security.server_cert to it, or copy it into a directory named by security.trust_dir")
	}
	b.WriteString(" (" + saveServerCertHint + ")")
	return b.String()
}

// dn formats a distinguished name most significant part first, as
// "CN=srv, O=Acme".
func dn(n pkix.Name) string {
	seq := n.ToRDNSequence()
	parts := make([]string, 0, len(seq))
	for i := len(seq) - 1; i >= 0; i-- {
		parts = append(parts, pkix.RDNSequence{seq[i]}.String())
	}
	if len(parts) == 0 {
		return "(empty subject)"
	}
	return strings.Join(parts, ", ")
}

// Save writes the leaf of a server's certificate as PEM into dir (created
// if missing), named after its common name and thumbprint,
// "<CN>_<thumbprint hex>.pem", and returns the file's path; saving the same
// certificate again rewrites nothing. Save does not change t: load the
// trust again to trust what it saved.
func (t *Trust) Save(dir string, serverDER []byte) (string, error) {
	certs, err := x509.ParseCertificates(serverDER)
	if err != nil || len(certs) == 0 {
		return "", fmt.Errorf("the server's certificate cannot be parsed: %v", err)
	}
	leaf := certs[0]
	path := filepath.Join(dir, fileSafe(leaf.Subject.CommonName)+"_"+ThumbprintHex(leaf.Raw)+".pem")
	if there, err := exists(path); err != nil || there {
		return path, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := writeTemp(dir, filepath.Base(path), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o644)
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	return path, nil
}

// fileSafe keeps letters, digits, '.', '-' and '_' of s, replacing other
// characters by '_', for a file name that needs no quoting; "server" if
// nothing is left.
func fileSafe(s string) string {
	b := []byte(s)
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			b[i] = '_'
		}
	}
	out := strings.Trim(string(b), "._")
	if out == "" {
		return "server"
	}
	return out
}
