package testutil

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// These tests prove the node-opcua test server with gopcua's client: that
// it enforces what gopcua's own server does not (passwords, certificate
// trust, operation limits) and that the stdin commands reach subscribers.

func opcuaCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// opcuaConnect connects to the server's endpoint with the given security
// policy and mode, as user (anonymous when empty).
func opcuaConnect(t *testing.T, s *NodeOPCUA, policy string, mode ua.MessageSecurityMode, user, pass string, extra ...opcua.Option) (*opcua.Client, error) {
	t.Helper()
	ctx := opcuaCtx(t)
	eps, err := opcua.GetEndpoints(ctx, s.URL())
	if err != nil {
		t.Fatalf("GetEndpoints: %v", err)
	}
	ep, err := opcua.SelectEndpoint(eps, policy, mode)
	if err != nil {
		t.Fatalf("SelectEndpoint(%s, %v): %v", policy, mode, err)
	}
	opts := []opcua.Option{opcua.AutoReconnect(false), opcua.RequestTimeout(10 * time.Second), opcua.DialTimeout(10 * time.Second)}
	if user == "" {
		opts = append(opts, opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeAnonymous), opcua.AuthAnonymous())
	} else {
		opts = append(opts, opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeUserName), opcua.AuthUsername(user, pass))
	}
	opts = append(opts, extra...)
	c, err := opcua.NewClient(s.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		c.Close(context.Background())
		return nil, err
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, nil
}

func testNode(s *NodeOPCUA, name string) *ua.NodeID {
	return ua.NewStringNodeID(s.NamespaceIndex(), name)
}

func readValues(t *testing.T, c *opcua.Client, nodes ...*ua.NodeID) (*ua.ReadResponse, error) {
	t.Helper()
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth}
	for _, n := range nodes {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: n, AttributeID: ua.AttributeIDValue})
	}
	return c.Read(opcuaCtx(t), req)
}

func readOne(t *testing.T, c *opcua.Client, n *ua.NodeID) *ua.DataValue {
	t.Helper()
	res, err := readValues(t, c, n)
	if err != nil {
		t.Fatalf("reading %s: %v", n, err)
	}
	return res.Results[0]
}

// checkUsers runs over security None on a server with user operator,
// password s3cret.
func checkUsers(t *testing.T, s *NodeOPCUA) {
	if s.NamespaceURI() != "urn:edgeagent:opcua-testserver" {
		t.Errorf("namespace %q", s.NamespaceURI())
	}
	none := ua.SecurityPolicyURINone
	if _, err := opcuaConnect(t, s, none, ua.MessageSecurityModeNone, "operator", "wrong"); !errors.Is(err, ua.StatusBadUserAccessDenied) && !errors.Is(err, ua.StatusBadIdentityTokenRejected) {
		t.Errorf("wrong password: got %v, want BadUserAccessDenied or BadIdentityTokenRejected", err)
	}
	if _, err := opcuaConnect(t, s, none, ua.MessageSecurityModeNone, "nobody", "s3cret"); err == nil {
		t.Error("an unknown user was accepted")
	}
	if _, err := opcuaConnect(t, s, none, ua.MessageSecurityModeNone, "", ""); err == nil {
		t.Error("an anonymous session was accepted")
	}
	c, err := opcuaConnect(t, s, none, ua.MessageSecurityModeNone, "operator", "s3cret")
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	s.Set("Counter0000", "42")
	if dv := readOne(t, c, testNode(s, "Counter0000")); dv.Status != ua.StatusOK || dv.Value.Value() != uint32(42) {
		t.Errorf("Counter0000 = %v (%v), want uint32 42", dv.Value.Value(), dv.Status)
	}
	// Setpoint is writable, Status is not.
	w, err := c.Write(opcuaCtx(t), &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{
		{NodeID: testNode(s, "Setpoint"), AttributeID: ua.AttributeIDValue, Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(int32(-7))}},
		{NodeID: testNode(s, "Status"), AttributeID: ua.AttributeIDValue, Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(int32(1))}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if w.Results[0] != ua.StatusOK || w.Results[1] != ua.StatusBadNotWritable {
		t.Errorf("write results %v, want [OK BadNotWritable]", w.Results)
	}
	if v, st := s.Get("Setpoint"); v != "-7" || st != "Good" {
		t.Errorf("server holds Setpoint %s (%s), want -7", v, st)
	}
	s.Status("Temperature", "BadSensorFailure")
	if dv := readOne(t, c, testNode(s, "Temperature")); dv.Status != ua.StatusBadSensorFailure {
		t.Errorf("Temperature status %v, want BadSensorFailure", dv.Status)
	}
}

func TestNodeOPCUALimits(t *testing.T) {
	t.Parallel()
	limits := map[string]int{
		"maxNodesPerRead":                          10,
		"maxNodesPerWrite":                         3,
		"maxNodesPerBrowse":                        4,
		"maxNodesPerRegisterNodes":                 5,
		"maxMonitoredItemsPerCall":                 6,
		"maxNodesPerTranslateBrowsePathsToNodeIds": 7,
		"maxMonitoredItemsPerSubscription":         8,
		"maxMonitoredItemsQueueSize":               4,
	}
	s := StartNodeOPCUA(t, NodeOPCUAOptions{Counters: 12, Limits: limits})
	c, err := opcuaConnect(t, s, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone, "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := opcuaCtx(t)
	counters := func(n int) []*ua.NodeID {
		var ids []*ua.NodeID
		for i := 0; i < n; i++ {
			ids = append(ids, testNode(s, fmt.Sprintf("Counter%04d", i)))
		}
		return ids
	}

	// Advertised.
	advertised := map[uint32]int{
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead:                          10,
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite:                         3,
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse:                        4,
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRegisterNodes:                 5,
		id.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall:                 6,
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIDs: 7,
		id.Server_ServerCapabilities_MaxMonitoredItemsPerSubscription:                         8,
		id.Server_ServerCapabilities_MaxMonitoredItemsQueueSize:                               4,
	}
	for nid, want := range advertised {
		dv := readOne(t, c, ua.NewNumericNodeID(0, nid))
		if dv.Status != ua.StatusOK || dv.Value.Value() != uint32(want) {
			t.Errorf("%s = %v (%v), want %d", id.Name(nid), dv.Value.Value(), dv.Status, want)
		}
	}

	// Enforced: one over the limit is refused, the limit is served.
	if _, err := readValues(t, c, counters(11)...); !errors.Is(err, ua.StatusBadTooManyOperations) {
		t.Errorf("reading 11 nodes: %v, want BadTooManyOperations", err)
	}
	if res, err := readValues(t, c, counters(10)...); err != nil || len(res.Results) != 10 || res.Results[9].Status != ua.StatusOK {
		t.Errorf("reading 10 nodes: %v", err)
	}

	write := func(n int) error {
		req := &ua.WriteRequest{}
		for i := 0; i < n; i++ {
			req.NodesToWrite = append(req.NodesToWrite, &ua.WriteValue{NodeID: testNode(s, "Setpoint"), AttributeID: ua.AttributeIDValue,
				Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(int32(i))}})
		}
		_, err := c.Write(ctx, req)
		return err
	}
	browse := func(n int) error {
		req := &ua.BrowseRequest{}
		for _, nid := range counters(n) {
			req.NodesToBrowse = append(req.NodesToBrowse, &ua.BrowseDescription{NodeID: nid, BrowseDirection: ua.BrowseDirectionForward, IncludeSubtypes: true, ResultMask: uint32(ua.BrowseResultMaskAll)})
		}
		_, err := c.Browse(ctx, req)
		return err
	}
	register := func(n int) error {
		_, err := c.RegisterNodes(ctx, &ua.RegisterNodesRequest{NodesToRegister: counters(n)})
		return err
	}
	translate := func(n int) error {
		req := &ua.TranslateBrowsePathsToNodeIDsRequest{}
		for i := 0; i < n; i++ {
			req.BrowsePaths = append(req.BrowsePaths, &ua.BrowsePath{StartingNode: ua.NewNumericNodeID(0, id.ObjectsFolder),
				RelativePath: &ua.RelativePath{Elements: []*ua.RelativePathElement{
					{ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences), IncludeSubtypes: true, TargetName: &ua.QualifiedName{NamespaceIndex: 0, Name: "Server"}},
				}}})
		}
		return c.Send(ctx, req, func(ua.Response) error { return nil })
	}
	sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 50 * time.Millisecond}, make(chan *opcua.PublishNotificationData, 16))
	if err != nil {
		t.Fatal(err)
	}
	handle := uint32(0)
	monitor := func(n int) (*ua.CreateMonitoredItemsResponse, error) {
		var items []*ua.MonitoredItemCreateRequest
		for _, nid := range counters(n) {
			handle++
			items = append(items, opcua.NewMonitoredItemCreateRequestWithDefaults(nid, ua.AttributeIDValue, handle))
		}
		return sub.Monitor(ctx, ua.TimestampsToReturnBoth, items...)
	}
	for _, op := range []struct {
		name  string
		limit int
		do    func(int) error
	}{
		{"Write", 3, write},
		{"Browse", 4, browse},
		{"RegisterNodes", 5, register},
		{"TranslateBrowsePathsToNodeIds", 7, translate},
		{"CreateMonitoredItems", 6, func(n int) error { _, err := monitor(n); return err }},
	} {
		if err := op.do(op.limit + 1); !errors.Is(err, ua.StatusBadTooManyOperations) {
			t.Errorf("%s of %d: %v, want BadTooManyOperations", op.name, op.limit+1, err)
		}
		if op.name == "CreateMonitoredItems" {
			continue // its success is counted below
		}
		if err := op.do(op.limit); err != nil {
			t.Errorf("%s of %d: %v", op.name, op.limit, err)
		}
	}
	// At most 8 monitored items in a subscription: 6, then 3 of which the
	// last is refused. Their queues (10 asked) are revised to 4.
	for i, n := range []int{6, 3} {
		res, err := monitor(n)
		if err != nil {
			t.Fatalf("monitoring %d: %v", n, err)
		}
		for j, r := range res.Results {
			want := ua.StatusOK
			if i == 1 && j == 2 {
				want = ua.StatusBadTooManyMonitoredItems
			}
			if r.StatusCode != want {
				t.Errorf("monitored item %d of batch %d: %v, want %v", j, i, r.StatusCode, want)
			}
			if want == ua.StatusOK && r.RevisedQueueSize != 4 {
				t.Errorf("monitored item %d of batch %d: revised queue size %d, want 4", j, i, r.RevisedQueueSize)
			}
		}
	}
}

func TestNodeOPCUASubscriptionAndRestart(t *testing.T) {
	t.Parallel()
	s := StartNodeOPCUA(t, NodeOPCUAOptions{Counters: 3})
	c, err := opcuaConnect(t, s, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone, "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := opcuaCtx(t)
	notifs := make(chan *opcua.PublishNotificationData, 64)
	sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 50 * time.Millisecond}, notifs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth,
		opcua.NewMonitoredItemCreateRequestWithDefaults(testNode(s, "Counter0001"), ua.AttributeIDValue, 7))
	if err != nil || res.Results[0].StatusCode != ua.StatusOK {
		t.Fatalf("monitoring Counter0001: %v %v", err, res)
	}
	// want waits for a data change of Counter0001 to value.
	want := func(value uint32) {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case n := <-notifs:
				if n.Error != nil {
					t.Fatalf("subscription: %v", n.Error)
				}
				if dc, ok := n.Value.(*ua.DataChangeNotification); ok {
					for _, it := range dc.MonitoredItems {
						if it.ClientHandle == 7 && it.Value.Value.Value() == value {
							return
						}
					}
				}
			case <-timeout:
				t.Fatalf("no data change of Counter0001 to %d", value)
			}
		}
	}
	want(0) // the initial value
	s.Bump()
	want(1)
	s.Bump()
	want(2)
	s.Set("Counter0001", "1000")
	want(1000)

	s.Stop()
	if _, err := readValues(t, c, testNode(s, "Counter0001")); err == nil {
		t.Error("read from a stopped server")
	}
	s.Start()
	c2, err := opcuaConnect(t, s, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone, "", "")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if dv := readOne(t, c2, testNode(s, "Counter0001")); dv.Value.Value() != uint32(0) {
		t.Errorf("Counter0001 after restart = %v, want 0", dv.Value.Value())
	}
	s.Bump()
	if dv := readOne(t, c2, testNode(s, "Counter0001")); dv.Value.Value() != uint32(1) {
		t.Errorf("Counter0001 after restart and bump = %v, want 1", dv.Value.Value())
	}
}

// opcuaClientCert makes a self-signed application instance certificate
// for gopcua, with the application URI in its subjectAltName as OPC UA
// requires.
func opcuaClientCert(t *testing.T, appURI string) (*rsa.PrivateKey, []byte, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(appURI)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "edgeagent test client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		URIs:        []*url.URL{u}, DNSNames: []string{"localhost"},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "client.der")
	if err := os.WriteFile(f, der, 0o644); err != nil {
		t.Fatal(err)
	}
	return key, der, f
}

func TestNodeOPCUAUsersAndSecurity(t *testing.T) {
	t.Parallel()
	const appURI = "urn:edgeagent:test-client"
	key, cert, certFile := opcuaClientCert(t, appURI)
	other, otherCert, _ := opcuaClientCert(t, appURI)
	creds := func(k *rsa.PrivateKey, c []byte) []opcua.Option {
		return []opcua.Option{opcua.PrivateKey(k), opcua.Certificate(c), opcua.ApplicationURI(appURI)}
	}
	// Users, and refusing unknown certificates but trusting ours.
	s := StartNodeOPCUA(t, NodeOPCUAOptions{Users: map[string]string{"operator": "s3cret"}, Counters: 2, RejectUnknownCerts: true, Trust: []string{certFile}})
	t.Run("users", func(t *testing.T) { checkUsers(t, s) })
	t.Run("security", func(t *testing.T) {
		for _, mode := range []ua.MessageSecurityMode{ua.MessageSecurityModeSign, ua.MessageSecurityModeSignAndEncrypt} {
			c, err := opcuaConnect(t, s, ua.SecurityPolicyURIBasic256Sha256, mode, "operator", "s3cret", creds(key, cert)...)
			if err != nil {
				t.Fatalf("Basic256Sha256 %v with a trusted certificate: %v", mode, err)
			}
			if dv := readOne(t, c, testNode(s, "Counter0000")); dv.Status != ua.StatusOK {
				t.Errorf("Basic256Sha256 %v: reading Counter0000: %v", mode, dv.Status)
			}
			if _, err := opcuaConnect(t, s, ua.SecurityPolicyURIBasic256Sha256, mode, "operator", "wrong", creds(key, cert)...); err == nil {
				t.Errorf("Basic256Sha256 %v: a wrong password was accepted", mode)
			}
		}
		// node-opcua answers an untrusted certificate with BadSecurityChecksFailed.
		_, err := opcuaConnect(t, s, ua.SecurityPolicyURIBasic256Sha256, ua.MessageSecurityModeSignAndEncrypt, "operator", "s3cret", creds(other, otherCert)...)
		if err == nil {
			t.Fatal("an unknown certificate was accepted")
		}
		t.Logf("unknown certificate refused: %v", err)
		rejected, _ := filepath.Glob(filepath.Join(s.PKIDir(), "server", "rejected", "*"))
		if len(rejected) == 0 {
			t.Error("the refused certificate is not in PKIDir/server/rejected")
		}
	})
}
