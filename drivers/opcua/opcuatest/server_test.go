package opcuatest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// timeout bounds every client call; loopback answers in milliseconds.
const timeout = 10 * time.Second

func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a gopcua client, anonymous on the None endpoint and
// without reconnects unless opts say otherwise. (gopcua's client v0.9.1
// races on its connection when Close meets a reconnect attempt.)
func dial(t *testing.T, s *Server, opts ...opcua.Option) *opcua.Client {
	t.Helper()
	opts = append([]opcua.Option{
		opcua.SecurityMode(ua.MessageSecurityModeNone),
		opcua.RequestTimeout(timeout),
		opcua.AutoReconnect(false),
	}, opts...)
	c, err := opcua.NewClient(s.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctxT(t)); err != nil {
		t.Fatalf("connecting to %s: %v", s.URL(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

// readAttrs reads one attribute of each node in one request.
func readAttrs(t *testing.T, c *opcua.Client, attr ua.AttributeID, nodes ...string) []*ua.DataValue {
	t.Helper()
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth}
	for _, n := range nodes {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: ua.MustParseNodeID(n), AttributeID: attr})
	}
	resp, err := c.Read(ctxT(t), req)
	if err != nil {
		t.Fatalf("reading %v: %v", nodes, err)
	}
	if len(resp.Results) != len(nodes) {
		t.Fatalf("reading %d nodes: %d results", len(nodes), len(resp.Results))
	}
	return resp.Results
}

func readValue(t *testing.T, c *opcua.Client, node string) *ua.DataValue {
	t.Helper()
	return readAttrs(t, c, ua.AttributeIDValue, node)[0]
}

// value is a DataValue's value in the Go type Set takes.
func value(dv *ua.DataValue) any {
	if dv == nil || dv.Value == nil {
		return nil
	}
	return fromVariant(dv.Value.Value())
}

// same compares values as they travel: node ids by text, times to OPC
// UA's 100 ns, extension objects by body.
func same(a, b any) bool {
	switch x := a.(type) {
	case *ua.NodeID:
		y, ok := b.(*ua.NodeID)
		return ok && x.String() == y.String()
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Truncate(100*time.Nanosecond).Equal(y.Truncate(100*time.Nanosecond))
	case *ua.ExtensionObject:
		y, ok := b.(*ua.ExtensionObject)
		return ok && reflect.DeepEqual(x.Value, y.Value)
	}
	return reflect.DeepEqual(a, b)
}

func TestServer(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	c := dial(t, s)

	t.Run("variables", func(t *testing.T) {
		lt := ua.NewLocalizedTextWithLocale("Press 1", "en")
		want := []struct {
			name     string
			dataType uint32
			rank     int32
			access   byte
			value    any
		}{
			{"Bool", id.Boolean, -1, 1, true},
			{"SByte", id.SByte, -1, 1, int8(-8)},
			{"Byte", id.Byte, -1, 1, uint8(200)},
			{"Int16", id.Int16, -1, 1, int16(-1600)},
			{"UInt16", id.UInt16, -1, 1, uint16(16000)},
			{"Int32", id.Int32, -1, 1, int32(-320000)},
			{"UInt32", id.UInt32, -1, 1, uint32(3200000)},
			{"Int64", id.Int64, -1, 1, int64(-64000000000)},
			{"UInt64", id.UInt64, -1, 1, uint64(18000000000000000000)},
			{"Float", id.Float, -1, 1, float32(3.25)},
			{"Double", id.Double, -1, 1, 2.718281828459045},
			{"String", id.String, -1, 1, "hello, press 1"},
			{"DateTime", id.DateTime, -1, 1, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
			{"ByteString", id.ByteString, -1, 1, []byte{0xde, 0xad, 0xbe, 0xef}},
			{"LocalizedText", id.LocalizedText, -1, 1, *lt},
			{"QualifiedName", id.QualifiedName, -1, 1, ua.QualifiedName{NamespaceIndex: 2, Name: "Quality"}},
			{"Guid", id.GUID, -1, 1, *ua.NewGUID("72962B91-FA75-4AE6-8D28-B404DC7DAF63")},
			{"NodeId", id.NodeID, -1, 1, ua.NewNumericNodeID(0, id.Server)},
			{"Int32Array", id.Int32, 1, 1, []int32{1, -2, 3}},
			{"DoubleArray", id.Double, 1, 1, []float64{0.5, 1.5, -2.5}},
			{"BooleanArray", id.Boolean, 1, 1, []bool{true, false, true}},
			{"StringArray", id.String, 1, 1, []string{"a", "b", "c"}},
			{"Enum", id.ServerState, -1, 1, int32(0)},
			{"Base", id.BaseDataType, -1, 1, 1.5},
			{"Struct", id.Range, -1, 1, ua.NewExtensionObject(&ua.Range{Low: 0, High: 100})},
			{"Counter", id.UInt32, -1, 1, uint32(0)},
			{"Sine", id.Double, -1, 1, 0.0},
			{"Toggle", id.Boolean, -1, 1, false},
			{"Setpoint", id.Int32, -1, 3, int32(0)},
			{"SetpointDouble", id.Double, -1, 3, 0.0},
		}
		var nodes []string
		for _, w := range want {
			nodes = append(nodes, s.NodeID(w.name))
		}
		before := s.Requests()
		values := readAttrs(t, c, ua.AttributeIDValue, nodes...)
		types := readAttrs(t, c, ua.AttributeIDDataType, nodes...)
		ranks := readAttrs(t, c, ua.AttributeIDValueRank, nodes...)
		access := readAttrs(t, c, ua.AttributeIDAccessLevel, nodes...)
		classes := readAttrs(t, c, ua.AttributeIDNodeClass, nodes...)
		if got := s.Requests() - before; got != 5 {
			t.Errorf("Requests grew by %d over 5 reads", got)
		}
		for i, w := range want {
			if values[i].Status != ua.StatusOK || !same(value(values[i]), w.value) {
				t.Errorf("%s = %#v (%v), want %#v", w.name, value(values[i]), values[i].Status, w.value)
			}
			if values[i].SourceTimestamp.IsZero() || values[i].ServerTimestamp.IsZero() {
				t.Errorf("%s: timestamps %v, %v", w.name, values[i].SourceTimestamp, values[i].ServerTimestamp)
			}
			if !same(s.Get(w.name), w.value) {
				t.Errorf("Get(%s) = %#v, want %#v", w.name, s.Get(w.name), w.value)
			}
			if got, ok := value(types[i]).(*ua.NodeID); !ok || got.Namespace() != 0 || got.IntID() != w.dataType {
				t.Errorf("%s: DataType %v, want i=%d", w.name, value(types[i]), w.dataType)
			}
			if got := value(ranks[i]); got != w.rank {
				t.Errorf("%s: ValueRank %v, want %d", w.name, got, w.rank)
			}
			if got := value(access[i]); got != w.access {
				t.Errorf("%s: AccessLevel %v, want %d", w.name, got, w.access)
			}
			if got := value(classes[i]); got != int32(ua.NodeClassVariable) {
				t.Errorf("%s: NodeClass %v", w.name, got)
			}
		}
		if got := readAttrs(t, c, ua.AttributeIDArrayDimensions, s.NodeID("Int32Array"))[0]; !same(value(got), []uint32{0}) {
			t.Errorf("Int32Array: ArrayDimensions %v", value(got))
		}
		if got := readValue(t, c, s.NodeID("Nope")); got.Status != ua.StatusBadNodeIDUnknown {
			t.Errorf("unknown variable: %v", got.Status)
		}
		ns := value(readValue(t, c, ua.NewNumericNodeID(0, id.Server_NamespaceArray).String()))
		if uris, ok := ns.([]string); !ok || len(uris) <= int(s.Namespace()) || uris[s.Namespace()] != s.NamespaceURI() {
			t.Errorf("NamespaceArray %v, want %q at %d", ns, s.NamespaceURI(), s.Namespace())
		}
		if s.NodeID("Counter") != "ns=2;s=Counter" {
			t.Errorf("NodeID = %q", s.NodeID("Counter"))
		}
	})

	t.Run("set", func(t *testing.T) {
		at := time.Date(2025, 6, 7, 8, 9, 10, 123456700, time.UTC)
		sets := []struct {
			name string
			v    any
		}{
			{"Bool", false},
			{"SByte", int8(127)},
			{"Byte", uint8(1)},
			{"Int16", int16(-2)},
			{"UInt16", uint16(65535)},
			{"Int32", int32(-7)},
			{"UInt32", uint32(7)},
			{"Int64", int64(-1) << 62},
			{"UInt64", uint64(1) << 63},
			{"Float", float32(-0.5)},
			{"Double", 123.456},
			{"String", "Grüße"},
			{"DateTime", at},
			{"ByteString", []byte{1, 2}},
			{"LocalizedText", ua.LocalizedText{Text: "Presse 1", Locale: "de"}},
			{"QualifiedName", &ua.QualifiedName{NamespaceIndex: 3, Name: "Other"}},
			{"Guid", ua.NewGUID("00000000-0000-0000-0000-000000000001")},
			{"NodeId", ua.NewStringNodeID(2, "Counter")},
			{"Int32Array", []int32{9}},
			{"DoubleArray", []float64{}},
			{"BooleanArray", []bool{false, false}},
			{"StringArray", []string{"x", "", "z"}},
			{"Enum", int32(ua.ServerStateFailed)},
			{"Base", "anything scalar"},
			{"Struct", ua.NewExtensionObject(&ua.Range{Low: -1, High: 1})},
		}
		for _, set := range sets {
			if err := s.Set(set.name, set.v); err != nil {
				t.Fatal(err)
			}
			want := fromVariantOf(t, set.v)
			got := readValue(t, c, s.NodeID(set.name))
			if got.Status != ua.StatusOK || !same(value(got), want) {
				t.Errorf("after Set(%s, %#v): read %#v (%v)", set.name, set.v, value(got), got.Status)
			}
			if !same(s.Get(set.name), want) {
				t.Errorf("after Set(%s, %#v): Get = %#v", set.name, set.v, s.Get(set.name))
			}
		}
		for _, bad := range []struct {
			name string
			v    any
		}{
			{"Int32", int64(1)},      // wrong width
			{"Int32", 1},             // Go int has no OPC UA type
			{"Int32Array", int32(1)}, // scalar for an array
			{"Double", []float64{1}}, // array for a scalar
			{"Base", []int32{1}},     // Base is a scalar
			{"Nope", int32(1)},       // no such variable
		} {
			if err := s.Set(bad.name, bad.v); err == nil {
				t.Errorf("Set(%s, %#v) succeeded", bad.name, bad.v)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		if err := s.Set("Double", 1.25); err != nil {
			t.Fatal(err)
		}
		s.SetStatus("Double", ua.StatusBadSensorFailure)
		if got := readValue(t, c, s.NodeID("Double")); got.Status != ua.StatusBadSensorFailure || value(got) != nil {
			t.Errorf("bad status: read %v, %v", got.Status, value(got))
		}
		s.SetStatus("Double", ua.StatusUncertain)
		if got := readValue(t, c, s.NodeID("Double")); got.Status != ua.StatusUncertain || value(got) != 1.25 {
			t.Errorf("uncertain status: read %v, %v", got.Status, value(got))
		}
		s.SetStatus("Double", ua.StatusOK)
		if got := readValue(t, c, s.NodeID("Double")); got.Status != ua.StatusOK || value(got) != 1.25 {
			t.Errorf("status restored: read %v, %v", got.Status, value(got))
		}
	})

	t.Run("write", func(t *testing.T) {
		before := s.Requests()
		wv := func(name string, v any) *ua.WriteValue {
			return &ua.WriteValue{
				NodeID:      ua.MustParseNodeID(s.NodeID(name)),
				AttributeID: ua.AttributeIDValue,
				Value:       &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(v)},
			}
		}
		ns0 := wv("x", int32(1))
		ns0.NodeID = ua.NewNumericNodeID(0, id.Server_ServiceLevel)
		desc := wv("Setpoint", ua.NewLocalizedText("x"))
		desc.AttributeID = ua.AttributeIDDescription
		req := &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{
			wv("Setpoint", int32(1234)),
			wv("SetpointDouble", 12.5),
			wv("Int32", int32(1)),
			wv("Setpoint", 1.0),
			wv("Nope", int32(1)),
			ns0,
			desc,
		}}
		resp, err := c.Write(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		want := []ua.StatusCode{ua.StatusOK, ua.StatusOK, ua.StatusBadNotWritable, ua.StatusBadTypeMismatch,
			ua.StatusBadNodeIDUnknown, ua.StatusBadNotWritable, ua.StatusBadNotWritable}
		if !slices.Equal(resp.Results, want) {
			t.Errorf("write results %v, want %v", resp.Results, want)
		}
		if got := s.Requests() - before; got != 1 {
			t.Errorf("Requests grew by %d over 1 write", got)
		}
		if got := s.Get("Setpoint"); got != int32(1234) {
			t.Errorf("Get(Setpoint) = %#v after write", got)
		}
		if got := s.Get("Int32"); got == int32(1) {
			t.Errorf("read-only Int32 was written")
		}
		for _, w := range []Write{{"Setpoint", int32(1234)}, {"SetpointDouble", 12.5}} {
			select {
			case got := <-s.Writes():
				if got != w {
					t.Errorf("Writes: %+v, want %+v", got, w)
				}
			case <-time.After(timeout):
				t.Fatalf("Writes: nothing, want %+v", w)
			}
		}
		select {
		case got := <-s.Writes():
			t.Errorf("Writes: unexpected %+v", got)
		default:
		}
		if got := readValue(t, c, s.NodeID("SetpointDouble")); value(got) != 12.5 {
			t.Errorf("SetpointDouble reads %v after write", value(got))
		}
	})

	t.Run("subscribe", func(t *testing.T) {
		ch := make(chan *opcua.PublishNotificationData, 64)
		ctx := ctxT(t)
		sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 20 * time.Millisecond}, ch)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Cancel(ctx)
		if err := s.Set("Counter", uint32(5)); err != nil {
			t.Fatal(err)
		}
		res, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth,
			opcua.NewMonitoredItemCreateRequestWithDefaults(ua.MustParseNodeID(s.NodeID("Counter")), ua.AttributeIDValue, 7))
		if err != nil || res.Results[0].StatusCode != ua.StatusOK {
			t.Fatalf("monitoring Counter: %v, %v", err, res)
		}
		awaitItem(t, ch, 7, func(dv *ua.DataValue) bool { return value(dv) == uint32(5) })
		if err := s.Set("Counter", uint32(42)); err != nil {
			t.Fatal(err)
		}
		awaitItem(t, ch, 7, func(dv *ua.DataValue) bool { return value(dv) == uint32(42) })
		s.SetStatus("Counter", ua.StatusBadCommunicationError)
		awaitItem(t, ch, 7, func(dv *ua.DataValue) bool { return dv.Status == ua.StatusBadCommunicationError })
		s.SetStatus("Counter", ua.StatusOK)
		awaitItem(t, ch, 7, func(dv *ua.DataValue) bool { return dv.Status == ua.StatusOK && value(dv) == uint32(42) })

		// A client's write reaches subscribers too.
		if _, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth,
			opcua.NewMonitoredItemCreateRequestWithDefaults(ua.MustParseNodeID(s.NodeID("Setpoint")), ua.AttributeIDValue, 8)); err != nil {
			t.Fatal(err)
		}
		awaitItem(t, ch, 8, func(dv *ua.DataValue) bool { return value(dv) == int32(1234) })
		if _, err := c.Write(ctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{
			NodeID:      ua.MustParseNodeID(s.NodeID("Setpoint")),
			AttributeID: ua.AttributeIDValue,
			Value:       &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(int32(-5))},
		}}}); err != nil {
			t.Fatal(err)
		}
		awaitItem(t, ch, 8, func(dv *ua.DataValue) bool { return value(dv) == int32(-5) })
		<-s.Writes()

		// Items of unknown nodes are refused, one by one.
		res, err = sub.Monitor(ctx, ua.TimestampsToReturnBoth,
			opcua.NewMonitoredItemCreateRequestWithDefaults(ua.MustParseNodeID(s.NodeID("Nope")), ua.AttributeIDValue, 9),
			opcua.NewMonitoredItemCreateRequestWithDefaults(ua.MustParseNodeID(s.NodeID("Toggle")), ua.AttributeIDValue, 10))
		if err != nil || res.Results[0].StatusCode != ua.StatusBadNodeIDUnknown || res.Results[1].StatusCode != ua.StatusOK {
			t.Fatalf("monitoring Nope and Toggle: %v, %+v", err, res)
		}
		toggle := res.Results[1].MonitoredItemID
		awaitItem(t, ch, 10, func(*ua.DataValue) bool { return true })

		// A disabled item hears nothing until it reports again.
		// (gopcua's client checks item ids itself, so send the raw request.)
		var mode *ua.SetMonitoringModeResponse
		if err := c.Send(ctx, &ua.SetMonitoringModeRequest{
			SubscriptionID:   sub.SubscriptionID,
			MonitoringMode:   ua.MonitoringModeDisabled,
			MonitoredItemIDs: []uint32{toggle, 999999},
		}, func(v ua.Response) error {
			mode, _ = v.(*ua.SetMonitoringModeResponse)
			return nil
		}); err != nil || mode == nil ||
			!slices.Equal(mode.Results, []ua.StatusCode{ua.StatusOK, ua.StatusBadMonitoredItemIDInvalid}) {
			t.Fatalf("disabling Toggle: %v, %+v", err, mode)
		}
		if err := s.Set("Toggle", true); err != nil {
			t.Fatal(err)
		}
		if err := s.Set("Counter", uint32(43)); err != nil {
			t.Fatal(err)
		}
		if others := awaitItem(t, ch, 7, func(dv *ua.DataValue) bool { return value(dv) == uint32(43) }); slices.Contains(others, 10) {
			t.Error("disabled item notified")
		}
		if _, err := sub.SetMonitoringMode(ctx, ua.MonitoringModeReporting, toggle); err != nil {
			t.Fatal(err)
		}
		awaitItem(t, ch, 10, func(dv *ua.DataValue) bool { return value(dv) == true })

		if res, err := sub.Unmonitor(ctx, toggle, 999999); err != nil ||
			!slices.Equal(res.Results, []ua.StatusCode{ua.StatusOK, ua.StatusBadMonitoredItemIDInvalid}) {
			t.Fatalf("unmonitoring Toggle: %v, %+v", err, res)
		}
	})

	t.Run("animate", func(t *testing.T) {
		start := s.Get("Counter").(uint32)
		toggle := s.Get("Toggle").(bool)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			s.Animate(ctx, 5*time.Millisecond)
			close(done)
		}()
		deadline := time.Now().Add(timeout)
		for {
			v := readAttrs(t, c, ua.AttributeIDValue, s.NodeID("Counter"), s.NodeID("Sine"))
			if value(v[0]).(uint32) >= start+3 && value(v[1]).(float64) != 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Animate: Counter %v, Sine %v", value(v[0]), value(v[1]))
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		<-done
		n := s.Get("Counter").(uint32) - start
		if want := toggle != (n%2 == 1); s.Get("Toggle") != want {
			t.Errorf("Toggle = %v after %d ticks from %v", s.Get("Toggle"), n, toggle)
		}
	})

	t.Run("browse", func(t *testing.T) {
		browse := func(node *ua.NodeID) []*ua.ReferenceDescription {
			t.Helper()
			resp, err := c.Browse(ctxT(t), &ua.BrowseRequest{
				View: &ua.ViewDescription{ViewID: ua.NewTwoByteNodeID(0)},
				NodesToBrowse: []*ua.BrowseDescription{{
					NodeID:          node,
					BrowseDirection: ua.BrowseDirectionForward,
					ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences),
					IncludeSubtypes: true,
					ResultMask:      uint32(ua.BrowseResultMaskAll),
				}},
			})
			if err != nil || len(resp.Results) != 1 || resp.Results[0].StatusCode != ua.StatusOK {
				t.Fatalf("browsing %v: %v, %+v", node, err, resp)
			}
			return resp.Results[0].References
		}
		names := func(refs []*ua.ReferenceDescription) []string {
			var out []string
			for _, r := range refs {
				out = append(out, r.BrowseName.Name)
			}
			return out
		}
		objects := names(browse(ua.NewNumericNodeID(0, id.ObjectsFolder)))
		for _, f := range []string{"Types", "Press", "Load"} {
			if !slices.Contains(objects, f) {
				t.Errorf("Objects holds %v, no %s", objects, f)
			}
		}
		press := browse(ua.NewStringNodeID(2, "Press"))
		if got, want := names(press), []string{"Counter", "Sine", "Toggle", "Setpoint", "SetpointDouble"}; !slices.Equal(got, want) {
			t.Errorf("Press holds %v, want %v", got, want)
		}
		if r := press[0]; r.NodeID.NodeID.String() != s.NodeID("Counter") || r.NodeClass != ua.NodeClassVariable || r.ReferenceTypeID.IntID() != id.HasComponent {
			t.Errorf("Press → Counter: %+v", r)
		}
		if types := browse(ua.NewStringNodeID(2, "Types")); len(types) != 25 {
			t.Errorf("Types holds %d variables: %v", len(types), names(types))
		}
	})

	t.Run("load", func(t *testing.T) {
		const n = 10000
		names := s.AddCounters("load", n)
		if len(names) != n || names[0] != "load0000" || names[n-1] != "load9999" {
			t.Fatalf("AddCounters: %d names, %v .. %v", len(names), names[0], names[len(names)-1])
		}
		// A client of its own: gopcua's client v0.9.1 may leave its publish
		// loop paused for good when a subscription is made right after the
		// client's last one was cancelled.
		c := dial(t, s)
		ch := make(chan *opcua.PublishNotificationData, 64)
		ctx := ctxT(t)
		sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 50 * time.Millisecond}, ch)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Cancel(ctx)
		items := make([]*ua.MonitoredItemCreateRequest, n)
		for i, name := range names {
			items[i] = opcua.NewMonitoredItemCreateRequestWithDefaults(ua.MustParseNodeID(s.NodeID(name)), ua.AttributeIDValue, uint32(i))
		}
		for batch := range slices.Chunk(items, 1000) {
			if _, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, batch...); err != nil {
				t.Fatal(err)
			}
		}
		for round := uint32(1); round <= 2; round++ {
			s.Bump(names)
			seen := map[uint32]bool{}
			for len(seen) < n {
				select {
				case msg := <-ch:
					if msg.Error != nil {
						t.Fatal(msg.Error)
					}
					dcn, ok := msg.Value.(*ua.DataChangeNotification)
					if !ok {
						continue
					}
					for _, it := range dcn.MonitoredItems {
						if value(it.Value) == round {
							seen[it.ClientHandle] = true
						}
					}
				case <-ctx.Done():
					t.Fatalf("round %d: %d of %d items changed", round, len(seen), n)
				}
			}
		}
	})

	t.Run("stop and start", func(t *testing.T) {
		old := dial(t, s)
		again := dial(t, s, opcua.AutoReconnect(true), opcua.ReconnectInterval(50*time.Millisecond))
		if err := s.Set("Int16", int16(77)); err != nil {
			t.Fatal(err)
		}
		s.Stop()
		s.Stop() // idempotent

		// The established connection dies at once, not at a timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := old.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{
			NodeID: ua.MustParseNodeID(s.NodeID("Int16")), AttributeID: ua.AttributeIDValue,
		}}}); err == nil {
			t.Error("read over a connection Stop dropped succeeded")
		}
		if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
			c.Close()
			t.Error("stopped server accepted a connection")
		}
		if err := s.Set("Int16", int16(78)); err != nil { // allowed while stopped
			t.Fatal(err)
		}

		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil { // idempotent
			t.Fatal(err)
		}
		if n := len(s.run.Load().srv.SubscriptionService.Subs); n != 0 {
			t.Errorf("%d subscriptions survived the restart", n)
		}
		if got := readValue(t, dial(t, s), s.NodeID("Int16")); value(got) != int16(78) {
			t.Errorf("after restart Int16 reads %v", value(got))
		}
		// gopcua's client reconnects with a new session.
		deadline := time.Now().Add(timeout)
		for {
			resp, err := again.Read(ctxT(t), &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{
				NodeID: ua.MustParseNodeID(s.NodeID("Int16")), AttributeID: ua.AttributeIDValue,
			}}})
			if err == nil && value(resp.Results[0]) == int16(78) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("reconnecting client: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// fromVariantOf is what Get returns after Set(v).
func fromVariantOf(t *testing.T, v any) any {
	t.Helper()
	val, _, _, err := toVariant(v)
	if err != nil {
		t.Fatal(err)
	}
	return fromVariant(val)
}

// awaitItem waits for a notification of the monitored item handle that
// satisfies ok, and returns the handles of the items notified meanwhile.
func awaitItem(t *testing.T, ch <-chan *opcua.PublishNotificationData, handle uint32, ok func(*ua.DataValue) bool) (others []uint32) {
	t.Helper()
	deadline := time.After(timeout)
	var last *ua.DataValue
	for {
		select {
		case msg := <-ch:
			if msg.Error != nil {
				t.Fatal(msg.Error)
			}
			dcn, isData := msg.Value.(*ua.DataChangeNotification)
			if !isData {
				continue
			}
			for _, it := range dcn.MonitoredItems {
				if it.ClientHandle != handle {
					others = append(others, it.ClientHandle)
					continue
				}
				if last = it.Value; ok(it.Value) {
					return others
				}
			}
		case <-deadline:
			t.Fatalf("item %d: no matching notification; last %+v", handle, last)
		}
	}
}

func TestOptions(t *testing.T) {
	if _, err := NewServer(Options{Addr: "127.0.0.1:0", Secure: true}); err == nil {
		t.Error("Secure without Dir accepted")
	}
	if _, err := NewServer(Options{Addr: "127.0.0.1:0", Users: true}); err == nil {
		t.Error("Users without Secure accepted")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := NewServer(Options{Addr: l.Addr().String()}); err == nil {
		t.Error("NewServer on a busy port succeeded")
	}
}

// clientCert makes a client's self-signed certificate, its application
// URI in the SAN as OPC UA requires.
func clientCert(t *testing.T) ([]byte, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	uri, _ := url.Parse("urn:edgeagent:opcuatest:client")
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "opcuatest client"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func TestSecure(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{Secure: true, Dir: t.TempDir(), Users: true})

	pair, err := tls.LoadX509KeyPair(s.CertFile(), s.KeyFile())
	if err != nil {
		t.Fatalf("server certificate files: %v", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != applicationURI {
		t.Errorf("certificate URIs %v, want %s", cert.URIs, applicationURI)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}

	eps, err := opcua.GetEndpoints(ctxT(t), s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 7 {
		t.Errorf("%d endpoints, want None + 3 policies × 2 modes", len(eps))
	}
	for _, ep := range eps {
		if ep.EndpointURL != s.URL() {
			t.Errorf("endpoint URL %s, want %s", ep.EndpointURL, s.URL())
		}
	}

	der, key := clientCert(t)
	for _, policy := range []string{ua.SecurityPolicyURIBasic256Sha256, ua.SecurityPolicyURIAes128Sha256RsaOaep, ua.SecurityPolicyURIAes256Sha256RsaPss} {
		for _, mode := range []ua.MessageSecurityMode{ua.MessageSecurityModeSignAndEncrypt, ua.MessageSecurityModeSign} {
			ep, err := opcua.SelectEndpoint(eps, policy, mode)
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, s,
				opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeUserName),
				opcua.AuthUsername("operator", "any password at all"),
				opcua.Certificate(der),
				opcua.PrivateKey(key))
			if got := readValue(t, c, s.NodeID("Double")); got.Status != ua.StatusOK || value(got) != 2.718281828459045 {
				t.Errorf("%s %s: read %v, %v", policy, mode, got.Status, value(got))
			}
		}
	}
	// The None endpoint still takes anonymous clients.
	if got := readValue(t, dial(t, s), s.NodeID("Bool")); value(got) != true {
		t.Errorf("anonymous None: read %v", value(got))
	}
}
