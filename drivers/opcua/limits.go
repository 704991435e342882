package opcua

import (
	"context"
	"errors"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// limits are the most nodes or items one service call may carry, and the
// most items a subscription and subscriptions a session may hold: what
// the server advertises under Server/ServerCapabilities, capped by the
// device's limits keys. 0 is no limit.
type limits struct {
	read, write, browse, register int
	itemsPerCall, itemsPerSub     int
	subsPerSession                int
}

// defaultBatch bounds a call when the server advertises no limit: large
// calls are what servers with unadvertised limits fail.
const defaultBatch = 1000

// per is the batch size for a limit.
func (l *limits) per(n int) int {
	if n <= 0 {
		return defaultBatch
	}
	return n
}

// shrink halves a limit after the server refused a call of tried nodes
// as too many or too large, and reports whether to try again.
func (l *limits) shrink(p *int, tried int, err error) bool {
	var sc ua.StatusCode
	if !errors.As(err, &sc) || tried <= 1 {
		return false
	}
	switch sc {
	case ua.StatusBadTooManyOperations, ua.StatusBadResponseTooLarge, ua.StatusBadRequestTooLarge,
		ua.StatusBadEncodingLimitsExceeded, ua.StatusBadTCPMessageTooLarge:
		*p = tried / 2
		return true
	}
	return false
}

// capped is the smaller positive of an advertised limit and a configured
// one.
func capped(server, config int) int {
	switch {
	case server <= 0:
		return config
	case config <= 0:
		return server
	}
	return min(server, config)
}

// readLimits reads the server's operation limits: MaxNodesPerRead first
// and alone, since reading the others is a read it bounds.
func (d *Driver) readLimits(ctx context.Context) (limits, error) {
	d.lim = limits{read: 1}
	node := func(n uint32) *ua.ReadValueID {
		return &ua.ReadValueID{NodeID: ua.NewNumericNodeID(0, n), AttributeID: ua.AttributeIDValue}
	}
	num := func(dv *ua.DataValue) int {
		if dv.Status != ua.StatusOK || dv.Value == nil {
			return 0 // the server does not say: no limit
		}
		switch v := dv.Value.Value().(type) {
		case uint32:
			return int(v)
		case uint16:
			return int(v)
		case int32:
			return int(v)
		case uint64:
			return int(min(v, 1<<31))
		}
		return 0
	}
	first, err := d.readAttrs(ctx, []*ua.ReadValueID{node(id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)})
	if err != nil {
		return limits{}, err
	}
	l := d.set.limits
	d.lim.read = capped(num(first[0]), l.MaxNodesPerRead)
	rest, err := d.readAttrs(ctx, []*ua.ReadValueID{
		node(id.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite),
		node(id.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse),
		node(id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRegisterNodes),
		node(id.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall),
		node(id.Server_ServerCapabilities_MaxMonitoredItemsPerSubscription),
		node(id.Server_ServerCapabilities_MaxSubscriptionsPerSession),
	})
	if err != nil {
		return limits{}, err
	}
	return limits{
		read:           d.lim.read,
		write:          capped(num(rest[0]), l.MaxNodesPerWrite),
		browse:         capped(num(rest[1]), l.MaxNodesPerBrowse),
		register:       capped(num(rest[2]), l.MaxNodesPerRegisterNodes),
		itemsPerCall:   capped(num(rest[3]), l.MaxMonitoredItemsPerCall),
		itemsPerSub:    capped(num(rest[4]), l.MaxMonitoredItemsPerSubscription),
		subsPerSession: num(rest[5]),
	}, nil
}
