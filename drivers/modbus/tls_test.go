package modbus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/modbus"
)

// TestTLS reads over tcp+tls (Modbus/TCP Security, mutual TLS) from the
// library's TLS server, with certificates loaded from the tls keys.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "test ca", nil)
	srvCert, srvKey := newCert(t, ca, caKey, "plc", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	cliCert, cliKey := newCert(t, ca, caKey, "edgeagent", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", ca.Raw)
	writePEM(t, filepath.Join(dir, "client.crt"), "CERTIFICATE", cliCert.Raw)
	der, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "client.key"), "EC PRIVATE KEY", der)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv, err := mb.NewServer(&mb.ServerConfiguration{
		URL:           "tcp+tls://" + addr,
		TLSServerCert: &tls.Certificate{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey},
		TLSClientCAs:  pool,
		Logger:        log.New(io.Discard, "", 0),
	}, constHandler(0x1234))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()

	d, err := modbus.New(modbus.ConfigFromYAML(t, `url: tcp+tls://`+addr+`
tls: {cert_file: `+dir+`/client.crt, key_file: `+dir+`/client.key, ca_file: `+dir+`/ca.crt}
tags: [{name: a, table: holding, address: 3, type: uint16}]`))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := d.Read(context.Background(), nil)
	if err != nil || got[0].Value.Uint() != 0x1234 {
		t.Fatalf("Read = %+v, %v", got, err)
	}

	// A missing file is reported at Connect, naming the key.
	d, err = modbus.New(modbus.ConfigFromYAML(t, `url: tcp+tls://`+addr+`
tls: {cert_file: `+dir+`/client.crt, key_file: `+dir+`/client.key, ca_file: `+dir+`/nope.crt}
tags: [{name: a, table: holding, address: 3, type: uint16}]`))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(context.Background()); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Connect with a missing ca_file: %v", err)
	} else if errors.Is(err, drivers.ErrNotConnected) {
		t.Errorf("a configuration problem is not a lost link: %v", err)
	}
}

func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string, usage []x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	signer, signKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// constHandler answers every register read with its value.
type constHandler uint16

func (h constHandler) HandleCoils(*mb.CoilsRequest) ([]bool, error) {
	return nil, mb.ErrIllegalFunction
}
func (h constHandler) HandleDiscreteInputs(*mb.DiscreteInputsRequest) ([]bool, error) {
	return nil, mb.ErrIllegalFunction
}
func (h constHandler) HandleInputRegisters(*mb.InputRegistersRequest) ([]uint16, error) {
	return nil, mb.ErrIllegalFunction
}
func (h constHandler) HandleHoldingRegisters(r *mb.HoldingRegistersRequest) ([]uint16, error) {
	out := make([]uint16, r.Quantity)
	for i := range out {
		out[i] = uint16(h)
	}
	return out, nil
}
