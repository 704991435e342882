package opcua

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/edgeagent/edgeagent/drivers"
)

// BrowseOptions say where edgeagent browse walks.
type BrowseOptions struct {
	// Root is the node id to start from; "" is the Objects folder, from
	// which the server's own diagnostics (namespace 0) are left out.
	Root string
	// Depth bounds the levels below Root (0: no bound).
	Depth int
	// SaveServerCert, if set, is a directory the server's certificate is
	// saved into, trusted or not, so its thumbprint can be checked and the
	// file trusted.
	SaveServerCert string
}

// Browsed is what a walk of a server's address space found.
type Browsed struct {
	Endpoint  string
	Root      string
	Nodes     int // nodes visited
	Variables []BrowsedVariable
	Skipped   []SkippedVariable
	SavedCert string // where SaveServerCert saved the server's certificate
	Took      time.Duration
}

// BrowsedVariable is one variable as a tag: a name from its browse path,
// its node id in the nsu= form (stable when the server renumbers its
// namespaces), its type, and whether this user may write it.
type BrowsedVariable struct {
	Name     string
	Node     string
	Type     drivers.Type
	Writable bool
}

// SkippedVariable is a variable that cannot be a tag, and why.
type SkippedVariable struct {
	Path, Node, Why string
}

// Browse connects with drv's settings (its security, identity and client
// certificate, so a server that trusts the agent trusts this too) and
// walks the address space below the root along hierarchical references
// (not properties), honouring continuation points and the server's
// MaxNodesPerBrowse, then reads every variable's DataType, ValueRank and
// UserAccessLevel.
func Browse(ctx context.Context, drv drivers.Driver, o BrowseOptions) (*Browsed, error) {
	d, ok := drv.(*Driver)
	if s, isSub := drv.(*subscriber); isSub {
		d, ok = s.Driver, true
	}
	if !ok {
		return nil, errors.New("not an OPC UA device")
	}
	start := time.Now()
	out := &Browsed{Endpoint: d.set.endpoint, Root: o.Root}
	if o.SaveServerCert != "" && d.set.policyURI != ua.SecurityPolicyURINone {
		ep, err := d.endpoint(ctx)
		if err != nil {
			return nil, err
		}
		if out.SavedCert, err = (&Trust{}).Save(o.SaveServerCert, ep.ServerCertificate); err != nil {
			return nil, err
		}
	}
	c, _, err := d.open(ctx)
	if err != nil {
		return out, err
	}
	d.c = c
	defer d.Close(ctx)
	ns, err := d.readNamespaces(ctx)
	if err != nil {
		return out, err
	}
	if d.lim, err = d.readLimits(ctx); err != nil {
		return out, err
	}
	root := ua.NewNumericNodeID(0, id.ObjectsFolder)
	skipNS0 := o.Root == ""
	if o.Root != "" {
		n, err := parseNode(o.Root)
		if err != nil {
			return out, fmt.Errorf("-root: %w", err)
		}
		if root, err = n.resolve(ns); err != nil {
			return out, fmt.Errorf("-root: %w", err)
		}
	}
	type node struct {
		id    *ua.NodeID
		path  []string
		depth int
	}
	seen := map[string]bool{root.String(): true}
	level := []node{{id: root}}
	var vars []node
	for len(level) > 0 {
		var next []node
		for len(level) > 0 {
			n := min(len(level), d.lim.per(d.lim.browse))
			batch := level[:n]
			level = level[n:]
			bids := make([]*ua.NodeID, len(batch))
			for k, b := range batch {
				bids[k] = b.id
			}
			refs, err := d.browseAll(ctx, bids)
			if err != nil {
				return out, err
			}
			for k, rs := range refs {
				parent := batch[k]
				for _, r := range rs {
					if r.NodeID == nil || r.NodeID.HasServerIndex() {
						continue
					}
					child := ua.NewNodeIDFromExpandedNodeID(r.NodeID)
					if child == nil || seen[child.String()] || (skipNS0 && child.Namespace() == 0) {
						continue
					}
					seen[child.String()] = true
					out.Nodes++
					name := child.String()
					if r.BrowseName != nil && r.BrowseName.Name != "" {
						name = r.BrowseName.Name
					}
					cn := node{id: child, path: append(parent.path[:len(parent.path):len(parent.path)], name), depth: parent.depth + 1}
					if r.NodeClass == ua.NodeClassVariable {
						vars = append(vars, cn)
					}
					if o.Depth == 0 || cn.depth < o.Depth {
						next = append(next, cn)
					}
				}
			}
		}
		level = next
	}

	// Every variable's type and access, read in batches.
	ids := make([]*ua.ReadValueID, 0, 3*len(vars))
	for _, v := range vars {
		ids = append(ids,
			&ua.ReadValueID{NodeID: v.id, AttributeID: ua.AttributeIDDataType},
			&ua.ReadValueID{NodeID: v.id, AttributeID: ua.AttributeIDValueRank},
			&ua.ReadValueID{NodeID: v.id, AttributeID: ua.AttributeIDUserAccessLevel})
	}
	dvs, err := d.readAttrs(ctx, ids)
	if err != nil {
		return out, err
	}
	types := map[string]uint32{}
	var byValue []int // indexes into out.Variables
	var varNodes []*ua.NodeID
	names := map[string]int{}
	for k, v := range vars {
		path := strings.Join(v.path, "/")
		nodeText := nsuForm(v.id, ns)
		skip := func(why string) {
			out.Skipped = append(out.Skipped, SkippedVariable{Path: path, Node: nodeText, Why: why})
		}
		dt, vr, al := dvs[3*k], dvs[3*k+1], dvs[3*k+2]
		if dt.Status != ua.StatusOK {
			skip("its DataType cannot be read: " + dt.Status.Error())
			continue
		}
		dtID, _ := dt.Value.Value().(*ua.NodeID)
		rank, _ := vr.Value.Value().(int32)
		access, _ := al.Value.Value().(uint8)
		if dtID == nil {
			skip("its DataType is not a node id")
			continue
		}
		if access&byte(ua.AccessLevelTypeCurrentRead) == 0 && al.Status == ua.StatusOK {
			skip("this user may not read it")
			continue
		}
		b, err := d.builtinOf(ctx, dtID, types)
		if err != nil {
			if errors.Is(err, drivers.ErrNotConnected) {
				return out, err
			}
			skip(strings.TrimPrefix(err.Error(), "its "))
			continue
		}
		t, terr := typeOfBuiltin(b)
		idx := len(out.Variables)
		switch {
		case errors.Is(terr, errFromValue) || rank == -2 || rank == -3 || rank == 0:
			byValue = append(byValue, idx)
		case terr != nil:
			skip(fmt.Sprintf("its DataType %s %v", dtID, terr))
			continue
		case rank > 1:
			skip(fmt.Sprintf("a %d-dimensional array", rank))
			continue
		case rank == 1:
			if t = drivers.ArrayOf(t); t == drivers.TypeInvalid {
				skip("an array Sparkplug has no type for")
				continue
			}
		}
		out.Variables = append(out.Variables, BrowsedVariable{
			Name: uniqueName(tagName(v.path), names), Node: nodeText, Type: t,
			Writable: al.Status == ua.StatusOK && access&byte(ua.AccessLevelTypeCurrentWrite) != 0,
		})
		varNodes = append(varNodes, v.id)
	}
	if len(byValue) > 0 {
		ids = ids[:0]
		for _, k := range byValue {
			ids = append(ids, &ua.ReadValueID{NodeID: varNodes[k], AttributeID: ua.AttributeIDValue})
		}
		vals, err := d.readAttrs(ctx, ids)
		if err != nil {
			return out, err
		}
		drop := map[int]bool{}
		for j, k := range byValue {
			t, _, err := typeOfVariant(vals[j].Value)
			if err != nil {
				v := out.Variables[k]
				out.Skipped = append(out.Skipped, SkippedVariable{Path: v.Name, Node: v.Node, Why: "its DataType is abstract and its value " + err.Error()})
				drop[k] = true
				continue
			}
			out.Variables[k].Type = t
		}
		kept := out.Variables[:0]
		for k, v := range out.Variables {
			if !drop[k] {
				kept = append(kept, v)
			}
		}
		out.Variables = kept
	}
	out.Took = time.Since(start)
	return out, nil
}

// browseAll browses the forward hierarchical references of nodes (no
// properties), following continuation points to the end. A node the
// server has no continuation point left for is browsed again after the
// others' are done.
func (d *Driver) browseAll(ctx context.Context, ids []*ua.NodeID) ([][]*ua.ReferenceDescription, error) {
	out := make([][]*ua.ReferenceDescription, len(ids))
	pending := make([]int, len(ids))
	for k := range pending {
		pending[k] = k
	}
	keep := func(k int, refs []*ua.ReferenceDescription) {
		for _, r := range refs {
			if r.ReferenceTypeID != nil && r.ReferenceTypeID.Namespace() == 0 && r.ReferenceTypeID.IntID() == id.HasProperty {
				continue
			}
			out[k] = append(out[k], r)
		}
	}
	for rounds := 0; len(pending) > 0; rounds++ {
		if rounds > 100 {
			return nil, errors.New("browsing: the server keeps refusing continuation points")
		}
		descs := make([]*ua.BrowseDescription, len(pending))
		for j, k := range pending {
			descs[j] = &ua.BrowseDescription{
				NodeID: ids[k], BrowseDirection: ua.BrowseDirectionForward,
				ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences), IncludeSubtypes: true,
				NodeClassMask: uint32(ua.NodeClassObject | ua.NodeClassVariable), ResultMask: uint32(ua.BrowseResultMaskAll),
			}
		}
		cctx, cancel := d.call(ctx)
		res, err := d.c.Browse(cctx, &ua.BrowseRequest{View: &ua.ViewDescription{ViewID: ua.NewTwoByteNodeID(0)}, RequestedMaxReferencesPerNode: 1000, NodesToBrowse: descs})
		cancel()
		if err == nil && len(res.Results) != len(descs) {
			err = fmt.Errorf("the server answered %d of %d browses", len(res.Results), len(descs))
		}
		if err != nil {
			if len(pending) == len(ids) && d.lim.shrink(&d.lim.browse, len(ids), err) {
				// Too many for one call: the halves, each in its own.
				a, err := d.browseAll(ctx, ids[:len(ids)/2])
				if err != nil {
					return nil, err
				}
				b, err := d.browseAll(ctx, ids[len(ids)/2:])
				return append(a, b...), err
			}
			return nil, d.link("browsing", err)
		}
		var again []int
		var cps [][]byte
		var cpOf []int
		for j, r := range res.Results {
			k := pending[j]
			switch r.StatusCode {
			case ua.StatusOK:
			case ua.StatusBadNoContinuationPoints:
				again = append(again, k)
				continue
			default:
				continue // a node that cannot be browsed has no children to offer
			}
			keep(k, r.References)
			if len(r.ContinuationPoint) > 0 {
				cps, cpOf = append(cps, r.ContinuationPoint), append(cpOf, k)
			}
		}
		for len(cps) > 0 {
			cctx, cancel := d.call(ctx)
			nr, err := d.c.BrowseNext(cctx, &ua.BrowseNextRequest{ContinuationPoints: cps})
			cancel()
			if err == nil && len(nr.Results) != len(cps) {
				err = fmt.Errorf("the server answered %d of %d continuation points", len(nr.Results), len(cps))
			}
			if err != nil {
				return nil, d.link("browsing on", err)
			}
			var ncps [][]byte
			var ncpOf []int
			for j, r := range nr.Results {
				if r.StatusCode != ua.StatusOK {
					continue
				}
				keep(cpOf[j], r.References)
				if len(r.ContinuationPoint) > 0 {
					ncps, ncpOf = append(ncps, r.ContinuationPoint), append(ncpOf, cpOf[j])
				}
			}
			cps, cpOf = ncps, ncpOf
		}
		pending = again
	}
	return out, nil
}

// tagName makes a Sparkplug metric name from a browse path.
func tagName(path []string) string {
	parts := make([]string, 0, len(path))
	for _, p := range path {
		p = strings.NewReplacer("/", "_", "+", "_", "#", "_").Replace(strings.TrimSpace(p))
		if p == "" {
			p = "_"
		}
		parts = append(parts, p)
	}
	name := strings.Join(parts, "/")
	if drivers.CheckName(name) != nil {
		name = "Tags/" + name
	}
	return name
}

// uniqueName appends ~2, ~3… to a name already taken.
func uniqueName(name string, taken map[string]int) string {
	n := taken[name]
	taken[name] = n + 1
	if n == 0 {
		return name
	}
	return name + "~" + strconv.Itoa(n+1)
}

// nsuForm writes a node id with its namespace URI instead of its index.
func nsuForm(n *ua.NodeID, ns []string) string {
	s := n.String()
	idx := int(n.Namespace())
	if idx == 0 || idx >= len(ns) {
		return s
	}
	_, ident, ok := strings.Cut(s, ";")
	if !ok {
		return s
	}
	return "nsu=" + ns[idx] + ";" + ident
}

// WriteTagMap writes the variables as a tag map file (the tags: list
// tag_map names), with what was skipped as comments.
func (b *Browsed) WriteTagMap(w io.Writer) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Tag map browsed from %s", b.Endpoint)
	if b.Root != "" {
		fmt.Fprintf(&sb, " below %s", b.Root)
	}
	fmt.Fprintf(&sb, " on %s by edgeagent browse:\n# %d variables of %d nodes", time.Now().UTC().Format(time.RFC3339), len(b.Variables), b.Nodes)
	if len(b.Skipped) > 0 {
		fmt.Fprintf(&sb, "; %d skipped, listed at the end", len(b.Skipped))
	}
	sb.WriteString(".\n# Names come from browse paths: rename freely, they are what hosts see.\ntags:\n")
	for _, v := range b.Variables {
		fmt.Fprintf(&sb, "  - {name: %s, node: %s, type: %s", yamlString(v.Name), yamlString(v.Node), v.Type)
		if v.Writable {
			sb.WriteString(", writable: true")
		}
		sb.WriteString("}\n")
	}
	for _, s := range b.Skipped {
		fmt.Fprintf(&sb, "# skipped %s (%s): %s\n", s.Path, s.Node, s.Why)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// yamlString quotes s for YAML (a double-quoted scalar).
func yamlString(s string) string { return strconv.Quote(s) }
