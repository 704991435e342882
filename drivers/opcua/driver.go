package opcua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/edgeagent/edgeagent/drivers"
)

func init() {
	drivers.Register("opcua", func(cfg drivers.Config) (drivers.Driver, error) { return New(cfg) })
}

// Driver reads one OPC UA server. The scanner's goroutine calls Connect,
// Read, Write and Close; Subscribe runs beside them.
type Driver struct {
	id       string
	set      settings
	timeout  time.Duration
	stateDir string
	log      *slog.Logger

	specs    []tagSpec
	cfgTypes []drivers.Type // as configured; TypeInvalid: learned from the node
	tags     []drivers.Tag  // replaced, never changed, when Connect learns other types

	// Security material, loaded at the first Connect (files may appear
	// after the configuration is written).
	cert     *ClientCert
	userCert *ClientCert
	trust    *Trust
	appURI   string

	// The connection, set by Connect and cleared by Close.
	c      *opcua.Client
	sess   *opcua.Session // kept across a broken link, to reactivate
	broken atomic.Bool    // a call failed because the link is gone
	lim    limits
	nodes  []*ua.NodeID // per tag; nil: not on the server
	reads  []*ua.NodeID // what Read reads: registered ids where the server has them
	wires  []wire       // per tag: how its node's value travels
	subs   *subState    // the session's subscriptions (kept with it)

	shortQueues int    // items whose queue the server revised down, this subscribe
	shortQueue  uint32 // to what

	warnMu sync.Mutex
	warned map[int32]bool // tags whose values could not be converted, logged once per connect
}

var (
	_ drivers.Writer     = (*Driver)(nil)
	_ drivers.Subscriber = (*subscriber)(nil)
	_ drivers.Recycler   = (*subscriber)(nil)
	_ drivers.Logging    = (*Driver)(nil)
)

// subscriber is a Driver in mode subscribe.
type subscriber struct {
	*Driver
	spare chan []drivers.Sample // batches handed back (Recycle), to fill again
}

// New builds a driver from its configuration without doing I/O.
func New(cfg drivers.Config) (drivers.Driver, error) {
	var dev device
	var set settings
	devErr := cfg.Decode(&dev)
	if devErr == nil {
		set, devErr = dev.validate(cfg.Poll)
	}
	d := &Driver{id: cfg.ID, set: set, timeout: cfg.Timeout, stateDir: cfg.StateDir, log: cfg.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	var tb drivers.TagBuilder
	seen := map[string]int{}
	var t tag
	tagErr := cfg.Tags.Each(func(i int, decode func(any) error) error {
		t = tag{}
		if err := decode(&t); err != nil {
			return err
		}
		if err := drivers.CheckName(t.Name); err != nil {
			return drivers.KeyErr("name", err)
		}
		if j, dup := seen[t.Name]; dup {
			return drivers.KeyErr("name", fmt.Errorf("%q is also the name of tags[%d]", t.Name, j))
		}
		seen[t.Name] = i
		spec, err := t.spec()
		if err != nil {
			return err
		}
		if t.Writable && t.Scale != nil && *t.Scale == 0 {
			return drivers.KeyErr("scale", errors.New("0 cannot be undone for a write"))
		}
		d.tags = append(d.tags, tb.Tag(&t.TagConfig))
		d.cfgTypes = append(d.cfgTypes, t.Type)
		d.specs = append(d.specs, spec)
		return nil
	})
	if err := errors.Join(devErr, tagErr); err != nil {
		return nil, err
	}
	if len(d.tags) == 0 {
		return nil, drivers.KeyErr("tags", errors.New("no tags configured"))
	}
	if set.poll {
		return d, nil
	}
	return &subscriber{Driver: d, spare: make(chan []drivers.Sample, 2)}, nil
}

// SetLogger makes the driver log with l.
func (d *Driver) SetLogger(l *slog.Logger) { d.log = l }

// Tags returns the tags, with the types the last Connect learned for
// those configured without one.
func (d *Driver) Tags() []drivers.Tag { return d.tags }

// loadSecurity loads the certificates and the trusted ones. The client
// certificate is made once, the first time, in the state directory; the
// trust list is read again at every connect so that a certificate copied
// into it takes effect without a restart.
func (d *Driver) loadSecurity() error {
	if d.set.policyURI != ua.SecurityPolicyURINone {
		if d.cert == nil {
			c, err := LoadClientCert(d.stateDir, d.set.sec.CertFile, d.set.sec.KeyFile, d.set.appURI)
			if err != nil {
				return fmt.Errorf("client certificate: %w", err)
			}
			d.cert = c
			if c.Created {
				d.log.Info("made the gateway's OPC UA client certificate; the server must trust it", "file", c.CertFile, "thumbprint", Thumbprint(c.Cert))
			}
		}
		if w := d.cert.ExpiryWarning(time.Now()); w != "" {
			d.log.Warn("client certificate expires soon", "detail", w)
		}
		tr, err := LoadTrust(d.set.sec.TrustDir, d.set.sec.ServerCert, d.set.sec.TrustAny)
		if err != nil {
			return err
		}
		d.trust = tr
		d.appURI = d.cert.AppURI
	}
	if d.set.auth.CertFile != "" && d.userCert == nil {
		c, err := LoadUserCert(d.set.auth.CertFile, d.set.auth.KeyFile)
		if err != nil {
			return err
		}
		d.userCert = c
	}
	if d.appURI == "" {
		d.appURI = d.set.appURI
		if d.appURI == "" {
			d.appURI = DefaultAppURI()
		}
	}
	return nil
}

// ClientCertOf returns the client certificate an OPC UA device presents,
// making it (once, in the state directory) if it does not exist yet; nil
// for a device with security None.
func ClientCertOf(drv drivers.Driver) (*ClientCert, error) {
	d, ok := drv.(*Driver)
	if s, isSub := drv.(*subscriber); isSub {
		d, ok = s.Driver, true
	}
	if !ok {
		return nil, errors.New("not an OPC UA device")
	}
	if d.set.policyURI == ua.SecurityPolicyURINone {
		return nil, nil
	}
	return LoadClientCert(d.stateDir, d.set.sec.CertFile, d.set.sec.KeyFile, d.set.appURI)
}

// call bounds one service call by the device's timeout.
func (d *Driver) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.timeout)
}

// Connect opens a session (reactivating the one a broken link left, so
// its subscriptions live on), reads the namespace array and the
// operation limits, resolves every tag's node, learns the types of tags
// configured without one, and registers the nodes to poll.
func (d *Driver) Connect(ctx context.Context) error {
	if d.c != nil {
		d.Close(ctx)
	}
	d.broken.Store(false)
	c, resumed, err := d.open(ctx)
	if err != nil {
		return err
	}
	d.c = c
	ok := false
	defer func() {
		if !ok {
			d.Close(ctx)
		}
	}()
	if !resumed {
		d.subs = nil
	}
	ns, err := d.readNamespaces(ctx)
	if err != nil {
		return err
	}
	if d.lim, err = d.readLimits(ctx); err != nil {
		return err
	}
	d.nodes = make([]*ua.NodeID, len(d.specs))
	var missing []error
	for i := range d.specs {
		n, err := d.specs[i].node.resolve(ns)
		if err != nil {
			missing = append(missing, fmt.Errorf("tag %q (node %s): %w", d.tags[i].Name, d.specs[i].node.text, err))
			continue
		}
		d.nodes[i] = n
	}
	if err := d.learn(ctx); err != nil {
		return err
	}
	for _, err := range missing {
		d.log.Warn("tag unreadable: its value is published as bad until the server has the node", "err", err)
	}
	d.reads = d.nodes
	if d.set.poll && d.set.register {
		if d.reads, err = d.register(ctx); err != nil {
			return err
		}
	}
	d.warnMu.Lock()
	d.warned = map[int32]bool{}
	d.warnMu.Unlock()
	ok = true
	return nil
}

// readNamespaces reads the server's namespace array.
func (d *Driver) readNamespaces(ctx context.Context) ([]string, error) {
	dvs, err := d.readAttrs(ctx, []*ua.ReadValueID{{NodeID: ua.NewNumericNodeID(0, id.Server_NamespaceArray), AttributeID: ua.AttributeIDValue}})
	if err != nil {
		return nil, err
	}
	if dvs[0].Status != ua.StatusOK || dvs[0].Value == nil {
		return nil, fmt.Errorf("reading the server's namespace array: %v", dvs[0].Status)
	}
	ns, ok := dvs[0].Value.Value().([]string)
	if !ok {
		return nil, fmt.Errorf("the server's namespace array is %T, not a list of strings", dvs[0].Value.Value())
	}
	return ns, nil
}

// readAttrs reads attributes in calls of at most the server's
// MaxNodesPerRead, halving a call the server refuses as too large.
func (d *Driver) readAttrs(ctx context.Context, ids []*ua.ReadValueID) ([]*ua.DataValue, error) {
	out := make([]*ua.DataValue, 0, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), d.lim.per(d.lim.read))
		cctx, cancel := d.call(ctx)
		res, err := d.c.Read(cctx, &ua.ReadRequest{NodesToRead: ids[:n], TimestampsToReturn: ua.TimestampsToReturnBoth})
		cancel()
		if err == nil && len(res.Results) != n {
			err = fmt.Errorf("the server answered %d of %d reads", len(res.Results), n)
		}
		if err != nil {
			if d.lim.shrink(&d.lim.read, n, err) {
				continue
			}
			return nil, d.link("reading", err)
		}
		out = append(out, res.Results...)
		ids = ids[n:]
	}
	return out, nil
}

// Read reads every tag's value in as few calls as the server's limits
// allow. A tag whose node the server lacks reads as bad.
func (d *Driver) Read(ctx context.Context, dst []drivers.Sample) ([]drivers.Sample, error) {
	if d.c == nil {
		return dst, fmt.Errorf("%q: %w", d.id, drivers.ErrNotConnected)
	}
	ids := make([]*ua.ReadValueID, 0, len(d.reads))
	for _, n := range d.reads {
		if n != nil {
			ids = append(ids, &ua.ReadValueID{NodeID: n, AttributeID: ua.AttributeIDValue})
		}
	}
	dvs, err := d.readAttrs(ctx, ids)
	if err != nil {
		return dst, err
	}
	now := time.Now().UnixMilli()
	k := 0
	for i := range d.tags {
		if d.reads[i] == nil {
			dst = append(dst, drivers.Sample{Tag: int32(i), Time: now, Quality: drivers.QualityBad})
			continue
		}
		s, err := d.sample(int32(i), dvs[k], now)
		k++
		if err != nil {
			return dst, err
		}
		dst = append(dst, s)
	}
	return dst, nil
}

// sample converts one DataValue of tag i. A value of another builtin type
// than the node had at connect, for a tag that took its type from the
// node, fails with ErrNotConnected: the device reconnects and learns the
// type again (and is re-born) rather than publish a wrong value.
func (d *Driver) sample(i int32, dv *ua.DataValue, now int64) (drivers.Sample, error) {
	s := drivers.Sample{Tag: i, Time: sampleTime(dv, now), Quality: drivers.QualityGood}
	if dv.Has(ua.DataValueStatusCode) {
		s.Quality = quality(dv.Status)
	}
	if s.Quality == drivers.QualityBad {
		return s, nil
	}
	v, err := toValue(dv.Value, d.tags[i].Type)
	if err == nil {
		s.Value = v
		return s, nil
	}
	if errors.Is(err, errTypeChanged) && d.cfgTypes[i] == drivers.TypeInvalid {
		d.broken.Store(true)
		return s, fmt.Errorf("tag %q (node %s): %v; reconnecting to learn its type: %w", d.tags[i].Name, d.specs[i].node.text, err, drivers.ErrNotConnected)
	}
	d.warnOnce(i, "value cannot be published as the tag's type; published as bad", "tag", d.tags[i].Name, "node", d.specs[i].node.text, "err", err)
	return drivers.Sample{Tag: i, Time: s.Time, Quality: drivers.QualityBad}, nil
}

func (d *Driver) warnOnce(i int32, msg string, args ...any) {
	d.warnMu.Lock()
	seen := d.warned[i]
	if d.warned == nil {
		d.warned = map[int32]bool{}
	}
	d.warned[i] = true
	d.warnMu.Unlock()
	if !seen {
		d.log.Warn(msg, args...)
	}
}

// Write writes a tag's node with the node's own type. A write the server
// refuses is an error that says why; it changes nothing.
func (d *Driver) Write(ctx context.Context, tag int, v drivers.Value) error {
	if d.c == nil {
		return fmt.Errorf("%q: %w", d.id, drivers.ErrNotConnected)
	}
	if tag < 0 || tag >= len(d.tags) || d.nodes[tag] == nil {
		return fmt.Errorf("tag %d has no node on the server", tag)
	}
	vv, err := toVariant(v, d.wires[tag])
	if err != nil {
		return fmt.Errorf("tag %q (node %s): %w", d.tags[tag].Name, d.specs[tag].node.text, err)
	}
	cctx, cancel := d.call(ctx)
	defer cancel()
	res, err := d.c.Write(cctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{
		NodeID: d.nodes[tag], AttributeID: ua.AttributeIDValue,
		Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: vv},
	}}})
	if err != nil {
		return d.link("writing", err)
	}
	if len(res.Results) != 1 {
		return fmt.Errorf("the server answered %d results for one write", len(res.Results))
	}
	if st := res.Results[0]; st != ua.StatusOK && quality(st) != drivers.QualityGood {
		return fmt.Errorf("the server refused the write of %v to node %s: %v", v, d.specs[tag].node.text, st)
	}
	return nil
}

// Close ends the connection. After a broken link the session is left on
// the server (detached) so the next Connect can reactivate it and its
// subscriptions with their queued notifications; otherwise the session
// and its subscriptions are closed.
func (d *Driver) Close(ctx context.Context) error {
	c := d.c
	d.c = nil
	if c == nil {
		return nil
	}
	if d.broken.Load() && d.sess != nil {
		c.DetachSession(ctx)
	} else {
		d.sess, d.subs = nil, nil
	}
	return c.Close(ctx)
}

// learn reads the DataType and ValueRank of every node and works out how
// its values travel and, for tags configured without a type, what they
// are published as. A node whose DataType says too little (BaseDataType,
// an array of any rank) is known by its current value.
func (d *Driver) learn(ctx context.Context) error {
	var ids []*ua.ReadValueID
	var which []int
	for i, n := range d.nodes {
		if n == nil {
			continue
		}
		ids = append(ids, &ua.ReadValueID{NodeID: n, AttributeID: ua.AttributeIDDataType}, &ua.ReadValueID{NodeID: n, AttributeID: ua.AttributeIDValueRank})
		which = append(which, i)
	}
	dvs, err := d.readAttrs(ctx, ids)
	if err != nil {
		return err
	}
	prev := d.wires
	d.wires = make([]wire, len(d.tags))
	tags := d.tags
	var errs []error
	var byValue []int
	types := map[string]uint32{} // DataType node → builtin, this connect
	set := func(i int, t drivers.Type, w wire) {
		d.wires[i] = w
		if d.cfgTypes[i] != drivers.TypeInvalid || t == tags[i].Type {
			return
		}
		if &tags[0] == &d.tags[0] {
			tags = slices.Clone(d.tags)
		}
		tags[i].Type = t
	}
	fail := func(i int, err error) {
		errs = append(errs, fmt.Errorf("tag %q (node %s): %w", d.tags[i].Name, d.specs[i].node.text, err))
	}
	for k, i := range which {
		dt, vr := dvs[2*k], dvs[2*k+1]
		if dt.Status != ua.StatusOK || vr.Status != ua.StatusOK {
			st := dt.Status
			if st == ua.StatusOK {
				st = vr.Status
			}
			if tags[i].Type == drivers.TypeInvalid {
				fail(i, fmt.Errorf("the server cannot tell its type (%v); check the node id, or give the tag a type:", st))
			} else {
				d.log.Warn("tag unreadable: its value is published as bad until the server has the node", "tag", d.tags[i].Name, "node", d.specs[i].node.text, "status", st)
				if prev != nil {
					d.wires[i] = prev[i]
				}
			}
			continue
		}
		dtID, _ := dt.Value.Value().(*ua.NodeID)
		rank, _ := vr.Value.Value().(int32)
		if dtID == nil {
			fail(i, errors.New("its DataType attribute is not a node id"))
			continue
		}
		b, err := d.builtinOf(ctx, dtID, types)
		if err != nil {
			if errors.Is(err, drivers.ErrNotConnected) {
				return err
			}
			fail(i, err)
			continue
		}
		t, terr := typeOfBuiltin(b)
		switch {
		case errors.Is(terr, errFromValue) || rank == -2 || rank == -3 || rank == 0:
			byValue = append(byValue, i)
			continue
		case terr != nil:
			fail(i, fmt.Errorf("its DataType %s %v", dtID, terr))
			continue
		case rank > 1:
			fail(i, fmt.Errorf("is a %d-dimensional array; edgeagent publishes one-dimensional ones", rank))
			continue
		case rank == 1:
			at := drivers.ArrayOf(t)
			if at == drivers.TypeInvalid {
				fail(i, fmt.Errorf("is an array of %s, which Sparkplug has no type for", t))
				continue
			}
			t = at
		}
		set(i, t, wire{builtin: wireOfBuiltin(b), array: rank == 1})
	}
	if len(byValue) > 0 {
		ids = ids[:0]
		for _, i := range byValue {
			ids = append(ids, &ua.ReadValueID{NodeID: d.nodes[i], AttributeID: ua.AttributeIDValue})
		}
		vals, err := d.readAttrs(ctx, ids)
		if err != nil {
			return err
		}
		for k, i := range byValue {
			t, w, err := typeOfVariant(vals[k].Value)
			if err != nil {
				if tags[i].Type == drivers.TypeInvalid {
					fail(i, fmt.Errorf("its DataType is abstract and its value %v", err))
				}
				continue
			}
			set(i, t, w)
		}
	}
	for i := range tags {
		if tags[i].Scaled() && tags[i].Type != drivers.TypeInvalid && !tags[i].Type.IsNumeric() {
			fail(i, fmt.Errorf("has scale or offset, but its node holds %s, not a number", tags[i].Type))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	d.tags = tags
	return nil
}

// builtinOf finds the builtin type a DataType derives from: itself for
// the builtin ones, else the first builtin up its HasSubtype chain (an
// enumeration as such).
func (d *Driver) builtinOf(ctx context.Context, dt *ua.NodeID, cache map[string]uint32) (uint32, error) {
	key := dt.String()
	if b, ok := cache[key]; ok {
		return b, nil
	}
	cur := dt
	for range 16 {
		if cur.Namespace() == 0 && cur.Type() != ua.NodeIDTypeString && cur.Type() != ua.NodeIDTypeGUID && cur.Type() != ua.NodeIDTypeByteString {
			n := cur.IntID()
			if n <= dtEnumeration {
				cache[key] = n
				return n, nil
			}
			if b, ok := knownSubtypes[n]; ok {
				cache[key] = b
				return b, nil
			}
		}
		parent, err := d.supertype(ctx, cur)
		if err != nil {
			return 0, err
		}
		if parent == nil {
			break
		}
		cur = parent
	}
	return 0, fmt.Errorf("its DataType %s derives from no builtin type the server would tell", dt)
}

// supertype browses the DataType a DataType derives from.
func (d *Driver) supertype(ctx context.Context, dt *ua.NodeID) (*ua.NodeID, error) {
	cctx, cancel := d.call(ctx)
	defer cancel()
	res, err := d.c.Browse(cctx, &ua.BrowseRequest{
		View:                          &ua.ViewDescription{ViewID: ua.NewTwoByteNodeID(0)},
		RequestedMaxReferencesPerNode: 1,
		NodesToBrowse: []*ua.BrowseDescription{{
			NodeID: dt, BrowseDirection: ua.BrowseDirectionInverse, ReferenceTypeID: ua.NewNumericNodeID(0, id.HasSubtype),
			IncludeSubtypes: false, NodeClassMask: uint32(ua.NodeClassDataType), ResultMask: uint32(ua.BrowseResultMaskNone),
		}},
	})
	if err != nil {
		return nil, d.link("browsing a DataType's supertype", err)
	}
	if len(res.Results) != 1 || res.Results[0].StatusCode != ua.StatusOK || len(res.Results[0].References) == 0 {
		return nil, nil
	}
	return ua.NewNodeIDFromExpandedNodeID(res.Results[0].References[0].NodeID), nil
}

// register registers the nodes to poll, where the server supports it, in
// calls of at most its MaxNodesPerRegisterNodes.
func (d *Driver) register(ctx context.Context) ([]*ua.NodeID, error) {
	var ids []*ua.NodeID
	var at []int
	for i, n := range d.nodes {
		if n != nil {
			ids = append(ids, n)
			at = append(at, i)
		}
	}
	out := slices.Clone(d.nodes)
	for k := 0; k < len(ids); {
		n := min(len(ids)-k, d.lim.per(d.lim.register))
		cctx, cancel := d.call(ctx)
		res, err := d.c.RegisterNodes(cctx, &ua.RegisterNodesRequest{NodesToRegister: ids[k : k+n]})
		cancel()
		var sc ua.StatusCode
		if errors.As(err, &sc) && sc == ua.StatusBadServiceUnsupported {
			return d.nodes, nil
		}
		if err == nil && len(res.RegisteredNodeIDs) != n {
			err = fmt.Errorf("the server registered %d of %d nodes", len(res.RegisteredNodeIDs), n)
		}
		if err != nil {
			if d.lim.shrink(&d.lim.register, n, err) {
				continue
			}
			return nil, d.link("registering the nodes to poll", err)
		}
		for j, r := range res.RegisteredNodeIDs {
			out[at[k+j]] = r
		}
		k += n
	}
	return out, nil
}
