package modbus_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"testing"

	mb "github.com/simonvetter/modbus"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/internal/testutil"
)

// TestTLS reads over tcp+tls (Modbus/TCP Security, mutual TLS) from the
// library's TLS server, with certificates loaded from the tls keys.
func TestTLS(t *testing.T) {
	pki := testutil.NewTLSFiles(t)
	srvCert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv, err := mb.NewServer(&mb.ServerConfiguration{
		URL:           "tcp+tls://" + addr,
		TLSServerCert: &srvCert,
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
tls: {cert_file: `+pki.ClientCert+`, key_file: `+pki.ClientKey+`, ca_file: `+pki.CA+`}
tags: [{name: a, table: holding, address: 3, type: uint16}]`))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	got, err := d.Read(context.Background(), nil)
	if err != nil || got[0].Value.Uint() != 0x1234 {
		t.Fatalf("Read = %+v, %v", got, err)
	}

	// A missing file is reported at Connect, naming the key.
	d, err = modbus.New(modbus.ConfigFromYAML(t, `url: tcp+tls://`+addr+`
tls: {cert_file: `+pki.ClientCert+`, key_file: `+pki.ClientKey+`, ca_file: `+pki.CA+`.missing}
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
