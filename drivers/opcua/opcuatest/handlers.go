package opcuatest

import (
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uasc"
)

// Revision bounds for CreateSubscription: gopcua's server takes the
// client's numbers as they come, and panics on a zero interval.
const (
	minPublishingInterval = 10 // ms
	minKeepAliveCount     = 3
)

// register installs the service handlers that replace gopcua's own;
// handlers registered before Start win over the defaults. They count
// requests, check sessions (gopcua serves reads and writes to anyone, and
// dereferences a missing session in the subscription services, taking the
// whole server down), reject monitored items of unknown nodes, and feed
// first values through the notifier.
func (r *run) register() {
	r.srv.RegisterHandler(id.ReadRequest_Encoding_DefaultBinary, r.read)
	r.srv.RegisterHandler(id.WriteRequest_Encoding_DefaultBinary, r.write)
	r.srv.RegisterHandler(id.CreateSubscriptionRequest_Encoding_DefaultBinary, r.createSubscription)
	r.srv.RegisterHandler(id.DeleteSubscriptionsRequest_Encoding_DefaultBinary, r.deleteSubscriptions)
	r.srv.RegisterHandler(id.CreateMonitoredItemsRequest_Encoding_DefaultBinary, r.createMonitoredItems)
	r.srv.RegisterHandler(id.DeleteMonitoredItemsRequest_Encoding_DefaultBinary, r.deleteMonitoredItems)
	r.srv.RegisterHandler(id.SetMonitoringModeRequest_Encoding_DefaultBinary, r.setMonitoringMode)
}

func responseHeader(req *ua.RequestHeader) *ua.ResponseHeader {
	return &ua.ResponseHeader{
		Timestamp:          time.Now(),
		RequestHandle:      req.RequestHandle,
		ServiceResult:      ua.StatusOK,
		ServiceDiagnostics: &ua.DiagnosticInfo{},
		StringTable:        []string{},
		AdditionalHeader:   ua.NewExtensionObject(nil),
	}
}

// validSession reports whether the request comes from a live session
// (gopcua keeps no activation state, so created counts as live).
func (r *run) validSession(hdr *ua.RequestHeader) bool {
	return hdr != nil && hdr.AuthenticationToken != nil && r.srv.Session(hdr) != nil
}

// owns reports whether the request's session owns the subscription.
func (r *run) owns(hdr *ua.RequestHeader, sub *server.Subscription) bool {
	return sub != nil && sub.Session != nil && sub.Session.AuthTokenID.String() == hdr.AuthenticationToken.String()
}

// itemRequest checks what every monitored-item service checks first: a
// valid session, n items to act on, a subscription of that session.
func (r *run) itemRequest(hdr *ua.RequestHeader, subID uint32, n int) (*server.Subscription, error) {
	switch {
	case !r.validSession(hdr):
		return nil, ua.StatusBadSessionIDInvalid
	case n == 0:
		return nil, ua.StatusBadNothingToDo
	}
	sub := r.subscription(subID)
	if !r.owns(hdr, sub) {
		return nil, ua.StatusBadSubscriptionIDInvalid
	}
	return sub, nil
}

func (r *run) subscription(id uint32) *server.Subscription {
	ss := r.srv.SubscriptionService
	ss.Mu.Lock()
	defer ss.Mu.Unlock()
	return ss.Subs[id]
}

// attribute reads an attribute from whichever namespace holds the node.
func (r *run) attribute(node *ua.NodeID, attr ua.AttributeID) *ua.DataValue {
	ns, err := r.srv.Namespace(int(node.Namespace()))
	if err != nil {
		return badValue(ua.StatusBadNodeIDUnknown)
	}
	if dv := ns.Attribute(node, attr); dv != nil {
		return dv
	}
	return badValue(ua.StatusBadAttributeIDInvalid)
}

func (r *run) read(_ *uasc.SecureChannel, req ua.Request, _ uint32) (ua.Response, error) {
	q, ok := req.(*ua.ReadRequest)
	switch {
	case !ok:
		return nil, ua.StatusBadRequestTypeInvalid
	case !r.validSession(q.RequestHeader):
		return nil, ua.StatusBadSessionIDInvalid
	}
	r.s.requests.Add(1)
	if len(q.NodesToRead) == 0 {
		return nil, ua.StatusBadNothingToDo
	}
	results := make([]*ua.DataValue, len(q.NodesToRead))
	for i, n := range q.NodesToRead {
		if n == nil || n.NodeID == nil {
			results[i] = badValue(ua.StatusBadNodeIDInvalid)
			continue
		}
		results[i] = r.attribute(n.NodeID, n.AttributeID)
	}
	return &ua.ReadResponse{
		ResponseHeader:  responseHeader(q.RequestHeader),
		Results:         results,
		DiagnosticInfos: []*ua.DiagnosticInfo{},
	}, nil
}

// write serves only the simulator's namespace: gopcua would let clients
// rewrite its own nodes, unsynchronized.
func (r *run) write(_ *uasc.SecureChannel, req ua.Request, _ uint32) (ua.Response, error) {
	q, ok := req.(*ua.WriteRequest)
	switch {
	case !ok:
		return nil, ua.StatusBadRequestTypeInvalid
	case !r.validSession(q.RequestHeader):
		return nil, ua.StatusBadSessionIDInvalid
	}
	r.s.requests.Add(1)
	if len(q.NodesToWrite) == 0 {
		return nil, ua.StatusBadNothingToDo
	}
	results := make([]ua.StatusCode, len(q.NodesToWrite))
	for i, n := range q.NodesToWrite {
		switch {
		case n == nil || n.NodeID == nil:
			results[i] = ua.StatusBadNodeIDInvalid
		case n.NodeID.Namespace() == nsIndex:
			results[i] = r.ns.SetAttribute(n.NodeID, n.AttributeID, n.Value)
		default:
			if dv := r.attribute(n.NodeID, ua.AttributeIDNodeClass); dv.Status == ua.StatusBadNodeIDUnknown {
				results[i] = ua.StatusBadNodeIDUnknown
			} else {
				results[i] = ua.StatusBadNotWritable
			}
		}
	}
	return &ua.WriteResponse{
		ResponseHeader:  responseHeader(q.RequestHeader),
		Results:         results,
		DiagnosticInfos: []*ua.DiagnosticInfo{},
	}, nil
}

// createSubscription revises the client's numbers into ones gopcua's
// subscription loop survives, then lets gopcua serve it.
func (r *run) createSubscription(sc *uasc.SecureChannel, req ua.Request, reqID uint32) (ua.Response, error) {
	q, ok := req.(*ua.CreateSubscriptionRequest)
	switch {
	case !ok:
		return nil, ua.StatusBadRequestTypeInvalid
	case !r.validSession(q.RequestHeader):
		return nil, ua.StatusBadSessionIDInvalid
	}
	q.RequestedPublishingInterval = max(q.RequestedPublishingInterval, minPublishingInterval)
	q.RequestedMaxKeepAliveCount = max(q.RequestedMaxKeepAliveCount, minKeepAliveCount)
	q.RequestedLifetimeCount = max(q.RequestedLifetimeCount, 3*q.RequestedMaxKeepAliveCount)
	return r.srv.SubscriptionService.CreateSubscription(sc, q, reqID)
}

func (r *run) deleteSubscriptions(sc *uasc.SecureChannel, req ua.Request, reqID uint32) (ua.Response, error) {
	q, ok := req.(*ua.DeleteSubscriptionsRequest)
	switch {
	case !ok:
		return nil, ua.StatusBadRequestTypeInvalid
	case !r.validSession(q.RequestHeader):
		return nil, ua.StatusBadSessionIDInvalid
	}
	return r.srv.SubscriptionService.DeleteSubscriptions(sc, q, reqID)
}

// createMonitoredItems replaces gopcua's, which accepts items of nodes
// that do not exist and sends each item's first value from a goroutine of
// its own (10,000 items, 10,000 goroutines fighting for one lock).
func (r *run) createMonitoredItems(_ *uasc.SecureChannel, req ua.Request, _ uint32) (ua.Response, error) {
	q, ok := req.(*ua.CreateMonitoredItemsRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	sub, err := r.itemRequest(q.RequestHeader, q.SubscriptionID, len(q.ItemsToCreate))
	if err != nil {
		return nil, err
	}
	results := make([]*ua.MonitoredItemCreateResult, len(q.ItemsToCreate))
	for i, it := range q.ItemsToCreate {
		results[i] = &ua.MonitoredItemCreateResult{StatusCode: ua.StatusOK, FilterResult: ua.NewExtensionObject(nil)}
		switch {
		case it == nil || it.ItemToMonitor == nil || it.ItemToMonitor.NodeID == nil || it.RequestedParameters == nil:
			results[i].StatusCode = ua.StatusBadNodeIDInvalid
		default:
			switch dv := r.attribute(it.ItemToMonitor.NodeID, it.ItemToMonitor.AttributeID); dv.Status {
			case ua.StatusBadNodeIDUnknown, ua.StatusBadNodeIDInvalid, ua.StatusBadAttributeIDInvalid:
				results[i].StatusCode = dv.Status
			}
		}
	}

	var first []target
	mis := r.srv.MonitoredItemService
	mis.Mu.Lock()
	for i, it := range q.ItemsToCreate {
		if results[i].StatusCode != ua.StatusOK {
			continue
		}
		item := &server.MonitoredItem{ID: mis.NextID(), Sub: sub, Req: it, Mode: it.MonitoringMode}
		key := it.ItemToMonitor.NodeID.String()
		mis.Items[item.ID] = item
		mis.Nodes[key] = append(mis.Nodes[key], item)
		mis.Subs[sub.ID] = append(mis.Subs[sub.ID], item)
		results[i].MonitoredItemID = item.ID
		results[i].RevisedSamplingInterval = sub.RevisedPublishingInterval
		results[i].RevisedQueueSize = 1
		if item.Mode == ua.MonitoringModeReporting {
			first = append(first, targetOf(item))
		}
	}
	mis.Mu.Unlock()
	r.queue(first)

	return &ua.CreateMonitoredItemsResponse{
		ResponseHeader:  responseHeader(q.RequestHeader),
		Results:         results,
		DiagnosticInfos: []*ua.DiagnosticInfo{},
	}, nil
}

// deleteMonitoredItems replaces gopcua's, which panics on an unknown id.
func (r *run) deleteMonitoredItems(_ *uasc.SecureChannel, req ua.Request, _ uint32) (ua.Response, error) {
	q, ok := req.(*ua.DeleteMonitoredItemsRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	sub, err := r.itemRequest(q.RequestHeader, q.SubscriptionID, len(q.MonitoredItemIDs))
	if err != nil {
		return nil, err
	}
	mis := r.srv.MonitoredItemService
	results := make([]ua.StatusCode, len(q.MonitoredItemIDs))
	for i, itemID := range q.MonitoredItemIDs {
		mis.Mu.Lock()
		item := mis.Items[itemID]
		mis.Mu.Unlock()
		if item == nil || item.Sub != sub {
			results[i] = ua.StatusBadMonitoredItemIDInvalid
			continue
		}
		mis.DeleteMonitoredItem(itemID)
		results[i] = ua.StatusOK
	}
	return &ua.DeleteMonitoredItemsResponse{
		ResponseHeader:  responseHeader(q.RequestHeader),
		Results:         results,
		DiagnosticInfos: []*ua.DiagnosticInfo{},
	}, nil
}

// setMonitoringMode replaces gopcua's, which panics on an unknown id; the
// notifier reports only items in Reporting mode.
func (r *run) setMonitoringMode(_ *uasc.SecureChannel, req ua.Request, _ uint32) (ua.Response, error) {
	q, ok := req.(*ua.SetMonitoringModeRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	sub, err := r.itemRequest(q.RequestHeader, q.SubscriptionID, len(q.MonitoredItemIDs))
	if err != nil {
		return nil, err
	}
	var first []target
	mis := r.srv.MonitoredItemService
	results := make([]ua.StatusCode, len(q.MonitoredItemIDs))
	mis.Mu.Lock()
	for i, itemID := range q.MonitoredItemIDs {
		item := mis.Items[itemID]
		if item == nil || item.Sub != sub {
			results[i] = ua.StatusBadMonitoredItemIDInvalid
			continue
		}
		if item.Mode != ua.MonitoringModeReporting && q.MonitoringMode == ua.MonitoringModeReporting {
			first = append(first, targetOf(item))
		}
		item.Mode = q.MonitoringMode
		results[i] = ua.StatusOK
	}
	mis.Mu.Unlock()
	r.queue(first)
	return &ua.SetMonitoringModeResponse{
		ResponseHeader:  responseHeader(q.RequestHeader),
		Results:         results,
		DiagnosticInfos: []*ua.DiagnosticInfo{},
	}, nil
}
