package opcua

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uacp"

	"github.com/edgeagent/edgeagent/drivers"
)

// The generated client certificate: where it lives under the state
// directory, and what it is made of.
const (
	stateSubdir      = "opcua"
	clientCertName   = "client-cert.pem"
	clientKeyName    = "client-key.pem"
	clientKeyBits    = 2048
	clientCertYears  = 10
	clientCertCN     = "edgeagent"
	clientCertOrg    = "edgeagent"
	certClockSkew    = time.Hour // NotBefore is this far back, for servers whose clocks lag
	expiryWarnWithin = 30 * 24 * time.Hour
)

// RSA key sizes the offered security policies (Basic256Sha256,
// Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss) accept.
const (
	minKeyBits = 2048
	maxKeyBits = 4096
)

// oidDomainComponent is the DC attribute (RFC 4519), where OPC UA
// application certificates conventionally carry the host name.
var oidDomainComponent = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}

// ClientCert is the client's application instance certificate and its key:
// what the secure channel signs and decrypts with, and what a server must
// trust.
type ClientCert struct {
	// Cert is the DER certificate, possibly followed by its issuers' (a
	// chain from security.cert_file), as the secure channel sends it.
	Cert []byte
	Key  *rsa.PrivateKey
	// CertFile and KeyFile are where they were read from or written to.
	CertFile, KeyFile string
	// AppURI is the application URI the session must announce: the first
	// URI in the certificate's subjectAltName, which servers compare with
	// it; the configured URI only for a certificate that has none.
	AppURI   string
	NotAfter time.Time
	// Generated is true for the self-signed certificate kept in the state
	// directory, whether made by this call or an earlier start; Created
	// only when this call made it (the moment to tell the operator to
	// have servers trust it).
	Generated bool
	Created   bool

	notBefore time.Time
	// keys are the configuration keys of the files, for messages.
	keys fileKeys
}

// fileKeys names a certificate and its key: the configuration keys of the
// two files and what the certificate is for.
type fileKeys struct {
	cert, key, what string
}

var (
	clientKeys = fileKeys{"security.cert_file", "security.key_file", "client certificate"}
	userKeys   = fileKeys{"auth.cert_file", "auth.key_file", "user certificate"}
)

// Thumbprint is the certificate's SHA-1 thumbprint in the form Thumbprint
// returns.
func (c *ClientCert) Thumbprint() string { return Thumbprint(c.Cert) }

// DefaultAppURI is the application URI used when none is configured:
// urn:edgeagent:<host name>.
func DefaultAppURI() string {
	return "urn:edgeagent:" + hostname()
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// Thumbprint is the SHA-1 digest of a DER certificate, the identity OPC UA
// gives certificates, as upper-case hex pairs joined by colons
// (AB:CD:...), as `openssl x509 -fingerprint -sha1` prints it. Of a chain,
// it is the leaf's.
func Thumbprint(der []byte) string {
	sum := thumbprintSum(der)
	var b strings.Builder
	b.Grow(len(sum) * 3)
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// ThumbprintHex is the thumbprint as plain lower-case hex, the form in the
// file names servers give certificates in their trusted and rejected
// folders: node-opcua "<CN>[<hex>].pem", the OPC Foundation stacks
// "<CN> [<HEX>].der" (search them case-insensitively).
func ThumbprintHex(der []byte) string {
	sum := thumbprintSum(der)
	return hex.EncodeToString(sum[:])
}

func thumbprintSum(der []byte) [sha1.Size]byte {
	if certs, err := x509.ParseCertificates(der); err == nil && len(certs) > 0 {
		der = certs[0].Raw
	}
	return sha1.Sum(der)
}

// LoadClientCert returns the client certificate, from certFile and keyFile
// (security.cert_file and security.key_file) when both are set, or else
// the one kept in stateDir/opcua, which the first call generates: a
// self-signed RSA 2048 certificate valid 10 years, with appURI (default
// DefaultAppURI) and the host name in its subjectAltName. Later calls load
// the same files, so its thumbprint, which servers trust, never changes by
// itself; appURI only applies when it is generated.
//
// Files may be PEM or DER; the key PKCS#1 or PKCS#8, unencrypted, RSA. The
// key must match the certificate. When only one of the two generated files
// is left, LoadClientCert refuses to make new ones, since servers would have
// to trust them again, and says which file is missing.
func LoadClientCert(stateDir, certFile, keyFile, appURI string) (*ClientCert, error) {
	return loadClientCert(stateDir, certFile, keyFile, appURI, time.Now())
}

func loadClientCert(stateDir, certFile, keyFile, appURI string, now time.Time) (*ClientCert, error) {
	if appURI == "" {
		appURI = DefaultAppURI()
	}
	switch {
	case certFile != "" && keyFile != "":
		return loadUserPair(certFile, keyFile, appURI, clientKeys)
	case certFile != "":
		return nil, drivers.KeyErr("security.cert_file", errors.New("is set but security.key_file is not: set both, or neither to use a certificate generated in the state directory"))
	case keyFile != "":
		return nil, drivers.KeyErr("security.key_file", errors.New("is set but security.cert_file is not: set both, or neither to use a certificate generated in the state directory"))
	}
	if stateDir == "" {
		return nil, errors.New("no state directory to keep the generated client certificate in: set one, or security.cert_file and security.key_file")
	}
	dir := filepath.Join(stateDir, stateSubdir)
	certPath, keyPath := filepath.Join(dir, clientCertName), filepath.Join(dir, clientKeyName)
	c, err := loadGeneratedSettled(certPath, keyPath, appURI)
	if c != nil || err != nil {
		return c, err
	}
	c, err = generateClientCert(dir, certPath, keyPath, appURI, now)
	if errors.Is(err, fs.ErrExist) {
		// Another process (the CLI beside the daemon) generated them first:
		// use its pair.
		if c, err := loadGeneratedSettled(certPath, keyPath, appURI); c != nil || err != nil {
			return c, err
		}
	}
	return c, err
}

// loadGeneratedSettled is loadGenerated, waiting a little when only one
// file is there: another process may be between writing the key and the
// certificate, which takes microseconds; a half state that lasts is an
// error.
func loadGeneratedSettled(certPath, keyPath, appURI string) (*ClientCert, error) {
	for i := 0; ; i++ {
		c, err := loadGenerated(certPath, keyPath, appURI)
		var half *halfStateError
		if !errors.As(err, &half) || i == 20 {
			return c, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// halfStateError is one file of the generated pair without the other.
type halfStateError struct{ msg string }

func (e *halfStateError) Error() string { return e.msg }

// loadGenerated loads the generated pair; nil and no error when neither
// file exists.
func loadGenerated(certPath, keyPath, appURI string) (*ClientCert, error) {
	certThere, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	keyThere, err := exists(keyPath)
	if err != nil {
		return nil, err
	}
	switch {
	case !certThere && !keyThere:
		return nil, nil
	case !keyThere:
		return nil, &halfStateError{fmt.Sprintf("the client key %s is missing, but its certificate %s is there: restore the key from a backup; "+
			"or delete %[2]s to have a new certificate generated at the next start, which every server must then be told to trust (its thumbprint changes)",
			keyPath, certPath)}
	case !certThere:
		return nil, &halfStateError{fmt.Sprintf("the client certificate %s is missing, but its key %s is there: restore the certificate from a backup; "+
			"or delete %[2]s to have a new certificate generated at the next start, which every server must then be told to trust (its thumbprint changes); "+
			"if the first start was interrupted while generating them, deleting it loses nothing",
			certPath, keyPath)}
	}
	c, err := loadPair(certPath, keyPath, clientKeys)
	if err != nil {
		var pe *pairError
		if errors.As(err, &pe) {
			err = pe.err
		}
		return nil, fmt.Errorf("%w (this is the generated certificate: delete both %s and %s to have a new one generated, which every server must then be told to trust)", err, certPath, keyPath)
	}
	c.Generated = true
	if c.AppURI == "" {
		c.AppURI = appURI
	}
	return c, nil
}

// LoadUserCert loads the certificate and key of a user identity
// (auth.cert_file and auth.key_file), with the rules and errors of
// LoadClientCert's files, naming those keys.
func LoadUserCert(certFile, keyFile string) (*ClientCert, error) {
	if certFile == "" || keyFile == "" {
		return nil, drivers.KeyErr("auth.cert_file", errors.New("and auth.key_file go together"))
	}
	return loadUserPair(certFile, keyFile, "", userKeys)
}

// loadUserPair loads a configured pair of files, naming the key at fault.
func loadUserPair(certFile, keyFile, appURI string, keys fileKeys) (*ClientCert, error) {
	c, err := loadPair(certFile, keyFile, keys)
	if err != nil {
		var pe *pairError
		if errors.As(err, &pe) {
			return nil, drivers.KeyErr(pe.key, pe.err)
		}
		return nil, err
	}
	if c.AppURI == "" {
		c.AppURI = appURI
	}
	return c, nil
}

// pairError is an error in one of the two files of a pair, key being the
// configuration key that names it.
type pairError struct {
	key string
	err error
}

func (e *pairError) Error() string { return e.err.Error() }
func (e *pairError) Unwrap() error { return e.err }

// loadPair reads a certificate and its key and checks that they belong
// together. AppURI is the certificate's URI, "" when it has none.
func loadPair(certPath, keyPath string, keys fileKeys) (*ClientCert, error) {
	chain, leaf, err := readCertFile(certPath)
	if err != nil {
		return nil, &pairError{keys.cert, err}
	}
	pub, ok := leaf.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, &pairError{keys.cert, fmt.Errorf("%s holds a certificate for %s, not an RSA key; OPC UA security policies need RSA", certPath, keyKind(leaf.PublicKey))}
	}
	key, err := readKeyFile(keyPath)
	if err != nil {
		return nil, &pairError{keys.key, err}
	}
	if !pub.Equal(&key.PublicKey) {
		return nil, &pairError{keys.key, fmt.Errorf("the key in %s does not match the certificate in %s", keyPath, certPath)}
	}
	if n := key.N.BitLen(); n < minKeyBits || n > maxKeyBits {
		return nil, &pairError{keys.key, fmt.Errorf("the key in %s has %d bits; OPC UA security policies need %d to %d", keyPath, n, minKeyBits, maxKeyBits)}
	}
	c := &ClientCert{
		Cert:      chain,
		Key:       key,
		CertFile:  certPath,
		KeyFile:   keyPath,
		NotAfter:  leaf.NotAfter,
		notBefore: leaf.NotBefore,
		keys:      keys,
	}
	if len(leaf.URIs) > 0 {
		c.AppURI = leaf.URIs[0].String()
	}
	return c, nil
}

// readCertFile reads a PEM or DER certificate file: the DER of all its
// certificates, leaf first, and the leaf parsed. PEM private-key blocks
// are skipped, so one file may hold both.
func readCertFile(path string) (chain []byte, leaf *x509.Certificate, err error) {
	b, err := readFile(path)
	if err != nil {
		return nil, nil, err
	}
	certs, err := parseCerts(b, true)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %w", path, err)
	}
	for _, c := range certs {
		chain = append(chain, c.Raw...)
	}
	return chain, certs[0], nil
}

// parseCerts parses PEM (any number of CERTIFICATE blocks) or DER (one
// certificate or several concatenated). Errors read after the file name.
func parseCerts(b []byte, skipKeys bool) ([]*x509.Certificate, error) {
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		certs, err := x509.ParseCertificates(b)
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("is not a certificate in PEM or DER form (%v)", err)
		}
		return certs, nil
	}
	var certs []*x509.Certificate
	rest := b
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("holds a CERTIFICATE block that cannot be parsed: %v", err)
			}
			certs = append(certs, c)
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			if !skipKeys {
				return nil, fmt.Errorf("holds a private key (%s block); only certificates belong here", block.Type)
			}
		default:
			return nil, fmt.Errorf("holds a %s block, not a certificate", block.Type)
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("holds no PEM CERTIFICATE block")
	}
	return certs, nil
}

// readKeyFile reads an unencrypted RSA private key: PEM or DER, PKCS#1 or
// PKCS#8. PEM certificate blocks are skipped, so one file may hold both.
func readKeyFile(path string) (*rsa.PrivateKey, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		k, err := parseKeyDER(b)
		if err != nil {
			return nil, fmt.Errorf("%s %w", path, err)
		}
		return k, nil
	}
	rest := b
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%s holds no PEM private key block (RSA PRIVATE KEY or PRIVATE KEY)", path)
		}
		var k *rsa.PrivateKey
		switch block.Type {
		case "CERTIFICATE":
			continue
		case "RSA PRIVATE KEY":
			if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
				return nil, fmt.Errorf("%s holds an encrypted key; the agent needs it unencrypted, readable only by its user (openssl pkey -in %[1]s -out new.pem)", path)
			}
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				err = fmt.Errorf("is not a valid PKCS#1 RSA private key: %v", err)
			}
		case "PRIVATE KEY":
			k, err = parsePKCS8(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("%s holds an encrypted key; the agent needs it unencrypted, readable only by its user (openssl pkey -in %[1]s -out new.pem)", path)
		case "EC PRIVATE KEY":
			err = errors.New("is not an RSA private key (it is an EC key); OPC UA security policies need RSA")
		case "OPENSSH PRIVATE KEY":
			err = errors.New("is an OpenSSH key; OPC UA needs an RSA key in PEM or DER (PKCS#1 or PKCS#8)")
		default:
			err = fmt.Errorf("holds a %s block, not a private key", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %w", path, err)
		}
		return k, nil
	}
}

func parseKeyDER(der []byte) (*rsa.PrivateKey, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return parsePKCS8(der)
	}
	if _, err := x509.ParseECPrivateKey(der); err == nil {
		return nil, errors.New("is not an RSA private key (it is an EC key); OPC UA security policies need RSA")
	}
	return nil, errors.New("is not a private key in PEM or DER form (PKCS#1 or PKCS#8)")
}

func parsePKCS8(der []byte) (*rsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("is not a valid PKCS#8 private key: %v", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("is not an RSA private key (it is %s); OPC UA security policies need RSA", keyKind(k))
	}
	return rk, nil
}

// keyKind names a key's algorithm for messages.
func keyKind(k any) string {
	switch k.(type) {
	case *ecdsa.PrivateKey, *ecdsa.PublicKey:
		return "an EC key"
	case ed25519.PrivateKey, ed25519.PublicKey:
		return "an Ed25519 key"
	case *ecdh.PrivateKey, *ecdh.PublicKey:
		return "an X25519 key"
	case *rsa.PrivateKey, *rsa.PublicKey:
		return "an RSA key"
	default:
		return fmt.Sprintf("a %T", k)
	}
}

// readFile reads a file, with an error that names it once and says what
// is wrong ("cannot read /etc/x.pem: permission denied") and still matches
// fs.ErrPermission and fs.ErrNotExist.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return b, nil
}

// exists reports whether path exists; an error only when that cannot be
// told (e.g. the directory is not searchable).
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return false, fmt.Errorf("cannot look for %s: %w", path, err)
	}
}

// generateClientCert makes the self-signed certificate and writes it
// under dir: the key first, then the certificate, each complete and
// synced under a temporary name before it gets its own, and neither
// replacing an existing file (an error matching fs.ErrExist then), so a
// crash never leaves a certificate without its key and two processes
// never end up with different pairs.
func generateClientCert(dir, certPath, keyPath, appURI string, now time.Time) (*ClientCert, error) {
	u, err := url.Parse(appURI)
	if err != nil || u.Scheme == "" {
		return nil, drivers.KeyErr("application_uri", fmt.Errorf("%q is not a URI (e.g. urn:edgeagent:line1-gw)", appURI))
	}
	host := hostname()
	key, err := rsa.GenerateKey(rand.Reader, clientKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generating the client key: %w", err)
	}
	serialBytes := make([]byte, 16)
	if _, err := rand.Read(serialBytes); err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	serial := new(big.Int).SetBytes(serialBytes)
	if serial.Sign() == 0 {
		serial.SetInt64(1)
	}
	// RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits, which
	// for RSA are the PKCS#1 public key.
	skid := sha1.Sum(x509.MarshalPKCS1PublicKey(&key.PublicKey))
	notBefore := now.Add(-certClockSkew).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   clientCertCN,
			Organization: []string{clientCertOrg},
			ExtraNames: []pkix.AttributeTypeAndValue{{
				Type:  oidDomainComponent,
				Value: asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(host)},
			}},
		},
		NotBefore:          notBefore,
		NotAfter:           notBefore.AddDate(clientCertYears, 0, 0),
		SignatureAlgorithm: x509.SHA256WithRSA,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment |
			x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          skid[:],
		AuthorityKeyId:        skid[:],
		URIs:                  []*url.URL{u},
		DNSNames:              []string{host},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating the client certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the client key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s for the client certificate: %w", dir, err)
	}
	keyTmp, err := writeTemp(dir, clientKeyName, keyPEM, 0o600)
	if err != nil {
		return nil, err
	}
	defer os.Remove(keyTmp)
	certTmp, err := writeTemp(dir, clientCertName, certPEM, 0o644)
	if err != nil {
		return nil, err
	}
	defer os.Remove(certTmp)
	if err := placeNew(keyTmp, keyPath); err != nil {
		return nil, err
	}
	if err := placeNew(certTmp, certPath); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the new client certificate: %w", err)
	}
	return &ClientCert{
		Cert:      der,
		Key:       key,
		CertFile:  certPath,
		KeyFile:   keyPath,
		AppURI:    u.String(),
		NotAfter:  leaf.NotAfter,
		Generated: true,
		Created:   true,
		notBefore: leaf.NotBefore,
		keys:      clientKeys,
	}, nil
}

// writeTemp writes data to a new temporary file in dir, named after name,
// with mode perm, synced; it returns the file's path.
func writeTemp(dir, name string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", filepath.Join(dir, name), err)
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("writing %s: %w", filepath.Join(dir, name), err)
	}
	return tmp, nil
}

// placeNew gives the file tmp the name dst unless dst exists (an error
// matching fs.ErrExist then). A hard link makes that atomic; file systems
// without hard links get a check then a rename.
func placeNew(tmp, dst string) error {
	err := os.Link(tmp, dst)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	if there, xerr := exists(dst); xerr != nil || there {
		return &fs.PathError{Op: "create", Path: dst, Err: fs.ErrExist}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	return nil
}

// syncDir makes the directory's entries durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for syncing there
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// ExpiryWarning is "" unless the certificate expires within 30 days of
// now or has expired; then it is a message for the log that names the
// file, the date and what to do.
func (c *ClientCert) ExpiryWarning(now time.Time) string {
	left := c.NotAfter.Sub(now)
	if left > expiryWarnWithin {
		return ""
	}
	keys := c.keys
	if keys == (fileKeys{}) {
		keys = clientKeys
	}
	var todo string
	switch {
	case c.Generated:
		todo = fmt.Sprintf("delete it and %s to have a new one generated at the next start, then have every server trust the new one (its thumbprint changes)", c.KeyFile)
	case c.AppURI != "":
		todo = fmt.Sprintf("renew it (keeping the application URI %s), point %s and %s at the new files, and have every server trust it", c.AppURI, keys.cert, keys.key)
	default:
		todo = fmt.Sprintf("renew it, point %s and %s at the new files, and have every server trust it", keys.cert, keys.key)
	}
	date := c.NotAfter.UTC().Format("2006-01-02 15:04 MST")
	if left <= 0 {
		return fmt.Sprintf("%s %s expired on %s, and servers refuse expired certificates: %s", keys.what, c.CertFile, date, todo)
	}
	days := int(left.Hours() / 24)
	when := fmt.Sprintf("in %d days", days)
	if days == 0 {
		when = "today"
	} else if days == 1 {
		when = "tomorrow"
	}
	return fmt.Sprintf("%s %s expires on %s (%s), and servers will then refuse it: %s", keys.what, c.CertFile, date, when, todo)
}

// RejectedError is a server refusing the client certificate, at
// OpenSecureChannel, CreateSession or ActivateSession. It unwraps to the
// error the OPC UA stack returned, so errors.Is(err,
// ua.StatusBadSecurityChecksFailed) holds.
type RejectedError struct {
	Status     ua.StatusCode
	Thumbprint string // ours
	CertFile   string // ours
	// Reason is the text of the server's transport error message, when
	// it sent one.
	Reason string

	why   string // what the status means for our certificate
	trust bool   // having the server trust our certificate is the remedy
	hex   string
	err   error
}

func (e *RejectedError) Unwrap() error { return e.err }

func (e *RejectedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the server refused our client certificate %s (thumbprint %s) with %s: %s", e.CertFile, e.Thumbprint, statusName(e.Status), e.why)
	if e.Reason != "" {
		fmt.Fprintf(&b, " (the server says %q)", e.Reason)
	}
	if e.trust {
		fmt.Fprintf(&b, "; have the server trust it: copy %s into the server's trusted certificates (often the folder trusted/certs of its PKI), "+
			"or trust it among the server's rejected certificates (most servers keep a refused one there, in a file whose name holds %s)",
			e.CertFile, e.hex)
	}
	return b.String()
}

func statusName(s ua.StatusCode) string {
	if d, ok := ua.StatusCodes[s]; ok {
		return strings.TrimPrefix(d.Name, "Status")
	}
	return fmt.Sprintf("0x%08X", uint32(s))
}

// RejectedByServer turns the error of OpenSecureChannel, CreateSession or
// ActivateSession into a *RejectedError when its OPC UA status is about
// the client certificate, and returns nil otherwise (also for a nil c, a
// channel without certificate). Statuses about the user identity
// (BadIdentityTokenRejected, BadUserAccessDenied) are not about it.
//
// A server that does not trust a client certificate answers
// BadSecurityChecksFailed more often than BadCertificateUntrusted: OPC UA
// Part 4 6.1.3 has servers hide certificate details at OpenSecureChannel,
// and node-opcua (2.182, measured) answers BadSecurityChecksFailed and
// files the certificate in PKI/rejected as "<CN>[<thumbprint hex>].pem".
func RejectedByServer(c *ClientCert, status error) error {
	var code ua.StatusCode
	if c == nil || status == nil || !errors.As(status, &code) {
		return nil
	}
	e := &RejectedError{Status: code, Thumbprint: c.Thumbprint(), CertFile: c.CertFile, hex: ThumbprintHex(c.Cert), err: status}
	var ue *uacp.Error
	if errors.As(status, &ue) {
		e.Reason = ue.Reason
	}
	const dates = "2006-01-02 15:04 MST"
	switch code {
	case ua.StatusBadSecurityChecksFailed:
		e.why, e.trust = "servers answer this when they do not trust a client certificate (yet)", true
	case ua.StatusBadCertificateUntrusted:
		e.why, e.trust = "it does not trust it", true
	case ua.StatusBadCertificateInvalid:
		e.why = "it finds it invalid (malformed, or lacking something the server requires)"
	case ua.StatusBadCertificateTimeInvalid:
		e.why = fmt.Sprintf("it finds it expired or not yet valid (it is valid from %s to %s): check the clocks of this gateway and of the server",
			c.notBefore.UTC().Format(dates), c.NotAfter.UTC().Format(dates))
	case ua.StatusBadCertificateIssuerTimeInvalid:
		e.why = "a certificate of the CA that issued it is expired or not yet valid"
	case ua.StatusBadCertificateURIInvalid:
		e.why = fmt.Sprintf("the application URI in it does not match the one the session announced (%s)", c.AppURI)
	case ua.StatusBadCertificateHostNameInvalid:
		e.why = "the host names in it do not match what the server expects"
	case ua.StatusBadCertificateUseNotAllowed, ua.StatusBadCertificateIssuerUseNotAllowed:
		e.why = "its key usages (or its issuer's) do not allow this use"
	case ua.StatusBadCertificatePolicyCheckFailed:
		e.why = "it does not meet the security policy (key size or signature algorithm)"
	case ua.StatusBadCertificateRevoked, ua.StatusBadCertificateIssuerRevoked:
		e.why = "it (or its issuer) has been revoked"
	case ua.StatusBadCertificateRevocationUnknown, ua.StatusBadCertificateIssuerRevocationUnknown:
		e.why = "it cannot tell whether it was revoked: give the server the revocation list (CRL) of the CA that issued it, or trust the certificate itself"
	case ua.StatusBadCertificateChainIncomplete:
		e.why = "it cannot build its chain: give the server the issuing CA certificates, or include them in security.cert_file after ours"
	case ua.StatusBadApplicationSignatureInvalid:
		e.why = "it refused the signature made with our key; it may hold another certificate of ours under the same name"
	default:
		return nil
	}
	return e
}
