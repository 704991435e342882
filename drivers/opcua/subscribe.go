package opcua

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/edgeagent/edgeagent/drivers"
)

// The driver runs its own subscriptions instead of gopcua's: gopcua's
// subscriptions stop delivering after a network blip while the client
// says it is connected, and its publish loop hides keep-alives, the only
// proof that a silent subscription is alive. Here every publish response
// is seen: keep-alives reset a per-subscription watchdog, a gap in
// sequence numbers is filled by Republish, and a subscription the server
// dropped ends Subscribe so the scanner reconnects.

// subState is a session's subscriptions; it lives as long as the session,
// across a broken link that the session survived.
type subState struct {
	subs []*sub
	// acks are notifications delivered but not yet acknowledged to the
	// server (the next publish request carries them).
	acks []*ua.SubscriptionAcknowledgement
}

// sub is one subscription.
type sub struct {
	id        uint32
	interval  time.Duration // revised publishing interval
	keepAlive uint32        // revised max keep-alive count
	items     []int32       // tags whose items it holds
	next      uint32        // sequence number of the next notification; 0 before the first
	heard     time.Time     // last publish response for it, data or keep-alive
	// resumed is set while a subscription that outlived a broken link
	// delivers what the server queued meanwhile: all of it in its first
	// message after the reconnect, and the next ones while the server says
	// it has more. Their samples are marked Late.
	resumed bool
}

// silentAfter is how long a subscription may go without a publish
// response before it counts as dead: two keep-alive periods, and the
// device's timeout for the network.
func (d *Driver) silentAfter(s *sub) time.Duration {
	return 2*time.Duration(s.keepAlive)*s.interval + d.timeout
}

// Subscribe creates the subscriptions (unless the session kept them
// across a broken link) and delivers changes until ctx ends or the link
// or a subscription fails.
func (d *subscriber) Subscribe(ctx context.Context, out chan<- []drivers.Sample) error {
	c := d.c
	if c == nil {
		return fmt.Errorf("%q: %w", d.id, drivers.ErrNotConnected)
	}
	resumed := d.subs != nil
	if !resumed {
		st, err := d.createSubscriptions(ctx)
		if err != nil {
			return err
		}
		d.subs = st
	}
	st := d.subs
	now := time.Now()
	for _, s := range st.subs {
		s.heard, s.resumed = now, resumed
	}
	for ctx.Err() == nil {
		wait := time.Duration(0)
		for _, s := range st.subs {
			wait = max(wait, d.silentAfter(s))
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		var res *ua.PublishResponse
		err := d.c.Send(pctx, &ua.PublishRequest{SubscriptionAcknowledgements: st.acks}, func(r ua.Response) error {
			var ok bool
			if res, ok = r.(*ua.PublishResponse); !ok {
				return fmt.Errorf("the server answered a publish request with %T", r)
			}
			return nil
		})
		expired := pctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var sc ua.StatusCode
		switch {
		case errors.As(err, &sc) && sc == ua.StatusBadNoSubscription:
			// The server lost them (a node vanished, a restart the
			// session survived): make them again on the next connect.
			d.subs = nil
			d.broken.Store(true)
			return fmt.Errorf("the server has no subscription of this session any more: %w", drivers.ErrNotConnected)
		case errors.As(err, &sc) && sc == ua.StatusBadTooManyPublishRequests:
			time.Sleep(100 * time.Millisecond)
			continue
		case errors.As(err, &sc) && sc == ua.StatusBadTimeout && !expired:
			// The server expired the request (its timeout hint) without
			// a keep-alive: a silent subscription, checked below.
		case err != nil && expired:
			d.broken.Store(true)
			return fmt.Errorf("no publish response or keep-alive within %v: the link or the server is stalled: %w", wait, drivers.ErrNotConnected)
		case err != nil:
			return d.link("publishing", err)
		default:
			st.acks = st.acks[:0]
			if err := d.handle(ctx, st, res, out); err != nil {
				return err
			}
		}
		now := time.Now()
		for _, s := range st.subs {
			if silent := now.Sub(s.heard); silent > d.silentAfter(s) {
				d.subs = nil
				d.broken.Store(true)
				return fmt.Errorf("subscription %d sent neither data nor keep-alive for %v: %w", s.id, silent.Round(time.Millisecond), drivers.ErrNotConnected)
			}
		}
	}
	return ctx.Err()
}

// handle delivers one publish response: the messages it skipped first
// (Republish), then its own.
func (d *subscriber) handle(ctx context.Context, st *subState, res *ua.PublishResponse, out chan<- []drivers.Sample) error {
	var s *sub
	for _, x := range st.subs {
		if x.id == res.SubscriptionID {
			s = x
		}
	}
	msg := res.NotificationMessage
	if s == nil || msg == nil {
		return nil // not ours (an old subscription): the server drops it when it expires
	}
	s.heard = time.Now()
	keepAlive := len(msg.NotificationData) == 0
	seq := msg.SequenceNumber
	if s.next != 0 {
		// Messages still held for us before this one were delivered
		// before the link broke or are delivered now: acknowledge the
		// former so the server can let them go.
		for _, a := range res.AvailableSequenceNumbers {
			if a < s.next && a != seq {
				st.acks = append(st.acks, &ua.SubscriptionAcknowledgement{SubscriptionID: s.id, SequenceNumber: a})
			}
		}
		if seq > s.next {
			if err := d.fill(ctx, st, s, s.next, seq, res.AvailableSequenceNumbers, out); err != nil {
				return err
			}
		}
	}
	if keepAlive {
		// A keep-alive carries the number the next message will have,
		// and says the server holds nothing more from before it.
		s.next = max(s.next, seq)
		s.resumed = false
		return nil
	}
	if s.next != 0 && seq < s.next {
		st.acks = append(st.acks, &ua.SubscriptionAcknowledgement{SubscriptionID: s.id, SequenceNumber: seq})
		return nil // delivered already (a republished copy)
	}
	if err := d.deliver(ctx, msg, s.resumed, out); err != nil {
		return err
	}
	s.resumed = s.resumed && res.MoreNotifications
	s.next = seq + 1
	st.acks = append(st.acks, &ua.SubscriptionAcknowledgement{SubscriptionID: s.id, SequenceNumber: seq})
	return nil
}

// fill recovers the messages from..to-1 of a subscription that never
// arrived (they were in flight when a link broke): by Republish where the
// server still holds them. What it cannot recover is replaced by the
// current values of the subscription's tags, read now, so no change stays
// unknown; none is invented.
func (d *subscriber) fill(ctx context.Context, st *subState, s *sub, from, to uint32, avail []uint32, out chan<- []drivers.Sample) error {
	lost := 0
	for seq := from; seq < to; seq++ {
		if !slices.Contains(avail, seq) {
			lost++
			continue
		}
		cctx, cancel := d.call(ctx)
		var res *ua.RepublishResponse
		err := d.c.Send(cctx, &ua.RepublishRequest{SubscriptionID: s.id, RetransmitSequenceNumber: seq}, func(r ua.Response) error {
			var ok bool
			if res, ok = r.(*ua.RepublishResponse); !ok {
				return fmt.Errorf("the server answered a republish request with %T", r)
			}
			return nil
		})
		cancel()
		var sc ua.StatusCode
		switch {
		case err == nil && res.NotificationMessage != nil:
			if err := d.deliver(ctx, res.NotificationMessage, true, out); err != nil {
				return err
			}
			st.acks = append(st.acks, &ua.SubscriptionAcknowledgement{SubscriptionID: s.id, SequenceNumber: seq})
		case err == nil, errors.As(err, &sc) && (sc == ua.StatusBadMessageNotAvailable || sc == ua.StatusBadServiceUnsupported):
			lost++
		default:
			return d.link("republishing", err)
		}
	}
	if lost == 0 {
		return nil
	}
	d.log.Warn("notifications lost in transit and no longer held by the server; publishing the current values instead",
		"subscription", s.id, "lost", lost)
	ids := make([]*ua.ReadValueID, 0, len(s.items))
	var tags []int32
	for _, i := range s.items {
		if d.reads[i] != nil {
			ids = append(ids, &ua.ReadValueID{NodeID: d.reads[i], AttributeID: ua.AttributeIDValue})
			tags = append(tags, i)
		}
	}
	dvs, err := d.readAttrs(ctx, ids)
	if err != nil {
		return err
	}
	batch := make([]drivers.Sample, 0, len(tags))
	now := time.Now().UnixMilli()
	for k, i := range tags {
		smp, err := d.sample(i, dvs[k], now)
		if err != nil {
			return err
		}
		batch = append(batch, smp)
	}
	return send(ctx, out, batch)
}

// deliver sends the data changes of one notification message as one
// batch, oldest first as the server queued them; late marks them Late.
func (d *subscriber) deliver(ctx context.Context, msg *ua.NotificationMessage, late bool, out chan<- []drivers.Sample) error {
	var batch []drivers.Sample
	now := time.Now().UnixMilli()
	for _, nd := range msg.NotificationData {
		if nd == nil {
			continue
		}
		switch v := nd.Value.(type) {
		case *ua.DataChangeNotification:
			if batch == nil {
				batch = d.batch(len(v.MonitoredItems))
			}
			for _, it := range v.MonitoredItems {
				if it == nil || it.Value == nil || it.ClientHandle >= uint32(len(d.tags)) {
					continue
				}
				smp, err := d.sample(int32(it.ClientHandle), it.Value, now)
				if err != nil {
					return err
				}
				smp.Late = late
				batch = append(batch, smp)
			}
		case *ua.StatusChangeNotification:
			// The server ended the subscription (its lifetime ran out,
			// or it was deleted): make it again on the next connect.
			d.subs = nil
			d.broken.Store(true)
			return fmt.Errorf("the server ended a subscription: %v: %w", v.Status, drivers.ErrNotConnected)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	return send(ctx, out, batch)
}

// batch is an empty batch with room for n samples: one the scanner
// handed back if there is one (a batch of 10,000 changes a second is
// 320 KB a second less for the collector), else a new one.
func (d *subscriber) batch(n int) []drivers.Sample {
	select {
	case b := <-d.spare:
		if cap(b) >= n {
			return b[:0]
		}
	default:
	}
	return make([]drivers.Sample, 0, n)
}

// Recycle takes back a batch the receiver is done with.
func (d *subscriber) Recycle(b []drivers.Sample) {
	select {
	case d.spare <- b[:0]:
	default:
	}
}

func send(ctx context.Context, out chan<- []drivers.Sample, batch []drivers.Sample) error {
	select {
	case out <- batch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// createSubscriptions makes subscriptions holding a monitored item per
// tag, in calls of at most the server's MaxMonitoredItemsPerCall and
// subscriptions of at most its MaxMonitoredItemsPerSubscription. An item
// the server refuses (a node it lacks) is logged and its tag reads bad;
// the rest are monitored.
func (d *subscriber) createSubscriptions(ctx context.Context) (*subState, error) {
	st := &subState{}
	d.shortQueues = 0
	var pending []int32
	for i, n := range d.nodes {
		if n != nil {
			pending = append(pending, int32(i))
		}
	}
	var cur *sub
	for len(pending) > 0 {
		if cur == nil || (d.lim.itemsPerSub > 0 && len(cur.items) >= d.lim.itemsPerSub) {
			if d.lim.subsPerSession > 0 && len(st.subs) >= d.lim.subsPerSession {
				return nil, fmt.Errorf("the server allows %d subscriptions of at most %d items, fewer than the %d tags need", d.lim.subsPerSession, d.lim.itemsPerSub, len(d.nodes))
			}
			s, err := d.createSubscription(ctx)
			if err != nil {
				return nil, err
			}
			st.subs = append(st.subs, s)
			cur = s
		}
		n := min(len(pending), d.lim.per(d.lim.itemsPerCall))
		if d.lim.itemsPerSub > 0 {
			n = min(n, d.lim.itemsPerSub-len(cur.items))
		}
		full, err := d.monitor(ctx, cur, pending[:n])
		if err != nil {
			if d.lim.shrink(&d.lim.itemsPerCall, n, err) {
				continue
			}
			return nil, err
		}
		pending = append(full, pending[n:]...)
		if len(full) > 0 {
			// The server filled the subscription before its advertised
			// limit: the rest go to another one.
			d.lim.itemsPerSub = len(cur.items)
			if len(cur.items) == 0 {
				return nil, errors.New("the server refuses every monitored item of a new subscription (BadTooManyMonitoredItems)")
			}
		}
	}
	if d.shortQueues > 0 {
		d.log.Warn("the server keeps fewer changes per item than queue_size asks; changes faster than the publishing interval may be lost",
			"items", d.shortQueues, "queue_size", d.set.queueSize, "revised", d.shortQueue)
	}
	d.log.Info("subscribed", "items", len(d.nodes), "subscriptions", len(st.subs), "publishing_interval", st.subs[0].interval, "keepalive", time.Duration(st.subs[0].keepAlive)*st.subs[0].interval)
	return st, nil
}

// createSubscription makes one subscription. Its lifetime covers the
// session timeout, so it outlives a link cut as long as the session does.
func (d *subscriber) createSubscription(ctx context.Context) (*sub, error) {
	ms := float64(d.set.publishing) / float64(time.Millisecond)
	ka := uint32(max(1, math.Ceil(float64(d.set.keepalive)/float64(d.set.publishing))))
	life := max(3*ka, uint32(min(math.MaxUint32/2, math.Ceil(float64(d.set.sessionTimeout)/float64(d.set.publishing)))))
	cctx, cancel := d.call(ctx)
	defer cancel()
	var res *ua.CreateSubscriptionResponse
	err := d.c.Send(cctx, &ua.CreateSubscriptionRequest{
		RequestedPublishingInterval: ms, RequestedLifetimeCount: life, RequestedMaxKeepAliveCount: ka,
		MaxNotificationsPerPublish: 0, PublishingEnabled: true,
	}, func(r ua.Response) error {
		var ok bool
		if res, ok = r.(*ua.CreateSubscriptionResponse); !ok {
			return fmt.Errorf("the server answered CreateSubscription with %T", r)
		}
		return nil
	})
	if err != nil {
		var sc ua.StatusCode
		if errors.As(err, &sc) && sc == ua.StatusBadTooManySubscriptions {
			return nil, fmt.Errorf("the server allows no more subscriptions (BadTooManySubscriptions)")
		}
		return nil, d.link("creating a subscription", err)
	}
	s := &sub{id: res.SubscriptionID, interval: time.Duration(res.RevisedPublishingInterval * float64(time.Millisecond)), keepAlive: max(res.RevisedMaxKeepAliveCount, 1)}
	if s.interval <= 0 {
		s.interval = d.set.publishing
	}
	if s.interval != d.set.publishing {
		d.log.Info("the server revised the publishing interval", "asked", d.set.publishing, "got", s.interval)
	}
	return s, nil
}

// monitor adds items for tags to s. Tags the server refused because the
// subscription is full come back, to go to another subscription.
func (d *subscriber) monitor(ctx context.Context, s *sub, tags []int32) (full []int32, err error) {
	reqs := make([]*ua.MonitoredItemCreateRequest, len(tags))
	for k, i := range tags {
		reqs[k] = d.itemRequest(i, true)
	}
	res, err := d.createItems(ctx, s, reqs)
	if err != nil {
		return nil, err
	}
	var retry []int32
	for k, r := range res.Results {
		i := tags[k]
		switch st := r.StatusCode; {
		case st == ua.StatusOK || quality(st) == drivers.QualityGood:
			s.items = append(s.items, i)
			if r.RevisedQueueSize < d.queueOf(i) && r.RevisedQueueSize > 0 {
				d.shortQueues++
				d.shortQueue = r.RevisedQueueSize
			}
		case st == ua.StatusBadTooManyMonitoredItems:
			full = append(full, i)
		case st == ua.StatusBadFilterNotAllowed || st == ua.StatusBadMonitoredItemFilterUnsupported || st == ua.StatusBadDeadbandFilterInvalid:
			d.log.Warn("the server refuses the tag's deadband filter (a percent deadband needs the node's EURange); monitoring it without one",
				"tag", d.tags[i].Name, "node", d.specs[i].node.text, "status", st)
			retry = append(retry, i)
		default:
			d.log.Warn("the server refuses to monitor the tag; it keeps the value read at connect until the next connect", "tag", d.tags[i].Name, "node", d.specs[i].node.text, "status", st)
		}
	}
	if len(retry) > 0 {
		reqs = reqs[:0]
		for _, i := range retry {
			reqs = append(reqs, d.itemRequest(i, false))
		}
		res, err := d.createItems(ctx, s, reqs)
		if err != nil {
			return nil, err
		}
		for k, r := range res.Results {
			if quality(r.StatusCode) == drivers.QualityGood {
				s.items = append(s.items, retry[k])
			} else {
				d.log.Warn("the server refuses to monitor the tag; it keeps the value read at connect until the next connect", "tag", d.tags[retry[k]].Name, "status", r.StatusCode)
			}
		}
	}
	return full, nil
}

func (d *subscriber) createItems(ctx context.Context, s *sub, reqs []*ua.MonitoredItemCreateRequest) (*ua.CreateMonitoredItemsResponse, error) {
	cctx, cancel := d.call(ctx)
	defer cancel()
	var res *ua.CreateMonitoredItemsResponse
	err := d.c.Send(cctx, &ua.CreateMonitoredItemsRequest{
		SubscriptionID: s.id, TimestampsToReturn: ua.TimestampsToReturnBoth, ItemsToCreate: reqs,
	}, func(r ua.Response) error {
		var ok bool
		if res, ok = r.(*ua.CreateMonitoredItemsResponse); !ok {
			return fmt.Errorf("the server answered CreateMonitoredItems with %T", r)
		}
		return nil
	})
	if err == nil && len(res.Results) != len(reqs) {
		err = fmt.Errorf("the server answered %d of %d monitored items", len(res.Results), len(reqs))
	}
	if err != nil {
		var sc ua.StatusCode
		if errors.As(err, &sc) && (sc == ua.StatusBadTooManyOperations || sc == ua.StatusBadRequestTooLarge || sc == ua.StatusBadResponseTooLarge || sc == ua.StatusBadEncodingLimitsExceeded) {
			return nil, err
		}
		return nil, d.link("creating monitored items", err)
	}
	return res, nil
}

func (d *Driver) queueOf(i int32) uint32 {
	if q := d.specs[i].queue; q > 0 {
		return q
	}
	return d.set.queueSize
}

// itemRequest is the monitored item of tag i; its client handle is the
// tag's index. withFilter adds the tag's deadband as a data change filter
// (in raw units: the scanner's deadband is in engineering units).
func (d *Driver) itemRequest(i int32, withFilter bool) *ua.MonitoredItemCreateRequest {
	sampling := d.set.sampling
	if sp := d.specs[i].sampling; sp >= 0 {
		sampling = sp
	}
	p := &ua.MonitoringParameters{
		ClientHandle: uint32(i), SamplingInterval: float64(sampling) / float64(time.Millisecond),
		QueueSize: d.queueOf(i), DiscardOldest: true,
	}
	if withFilter {
		t := &d.tags[i]
		switch {
		case d.specs[i].percent > 0:
			p.Filter = ua.NewExtensionObject(&ua.DataChangeFilter{Trigger: ua.DataChangeTriggerStatusValue, DeadbandType: uint32(ua.DeadbandTypePercent), DeadbandValue: d.specs[i].percent})
		case t.Deadband() > 0:
			db := t.Deadband()
			if sc, ok := t.Scale(); ok && sc != 0 {
				db /= math.Abs(sc)
			}
			p.Filter = ua.NewExtensionObject(&ua.DataChangeFilter{Trigger: ua.DataChangeTriggerStatusValue, DeadbandType: uint32(ua.DeadbandTypeAbsolute), DeadbandValue: db})
		}
	}
	return &ua.MonitoredItemCreateRequest{
		ItemToMonitor:       &ua.ReadValueID{NodeID: d.nodes[i], AttributeID: ua.AttributeIDValue, DataEncoding: &ua.QualifiedName{}},
		MonitoringMode:      ua.MonitoringModeReporting,
		RequestedParameters: p,
	}
}
