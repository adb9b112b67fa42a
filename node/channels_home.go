package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/chanauth"
	"github.com/wasmesh/wasmesh/internal/channel"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// The home side of channels: this node's channel.Machine (every channel
// whose rendezvous home this node is), the lanes that carry its deliveries
// to subscribers' nodes, its clock (Tick) and re-homing when membership
// changes. The machine is pure; this file is its I/O. The machine's lock
// is held only while the machine runs, never across the network.
const (
	// subChan carries requests to a channel's home: one channel wire
	// message (Create, Subscribe, Unsubscribe, Move, Publish, Handoff) in,
	// its Answer out.
	subChan = "wasmesh/node/chan/1"
	// subChanDeliver carries a batch of deliveries from a home to the
	// subscribers' node and one verdict per delivery back.
	subChanDeliver = "wasmesh/node/chan-deliver/1"
	// subChanDefs replicates definitions, so whichever member becomes a
	// channel's home knows it (chandefs.go).
	subChanDefs = "wasmesh/node/chan-defs/1"
	// subChanList lists the channels a node homes.
	subChanList = "wasmesh/node/chan-list/1"
	// subChanOps runs a subscription change on the node hosting the
	// daemon (channels.go).
	subChanOps = "wasmesh/node/chan-ops/1"
	// subChanBatch carries several requests for one channel, run in order;
	// the answers stop after the first refusal (the rest were not run).
	// One publisher's messages go this way: one round trip for many.
	subChanBatch = "wasmesh/node/chan-batch/1"
)

const (
	chanTick = 50 * time.Millisecond
	// chanCallTimeout bounds one request to a home or one delivery batch.
	chanCallTimeout = 5 * time.Second
	// chanBatch is the most deliveries one lane sends in one message, and
	// the most requests in one batch; chanBatchBytes bounds their payloads
	// (well under the transport's frame limit).
	chanBatch      = 256
	chanBatchBytes = 4 << 20
	// handoffGrace: a home that finds a channel it has a definition for
	// but no state waits this long after the last membership change before
	// creating it afresh, so the previous home's handoff can arrive first.
	handoffGrace = 3 * time.Second
)

type chanFrame struct {
	B []byte `msgpack:"b"`
}

type chanBatchFrame struct {
	B [][]byte `msgpack:"b"`
}

// Verdicts of a subscriber node on one delivery.
const (
	verdictAck     = 0 // accepted now or before: the home may drop it
	verdictRetry   = 1 // not now (gap, daemon busy, subscription not settled)
	verdictNotHere = 2 // the daemon does not run there; Moved names where it went
	// verdictGone: the daemon runs there but its ledger has no such
	// subscription (an unsubscribe whose home request was lost).
	verdictGone = 3
)

type deliverVerdict struct {
	V     uint8  `msgpack:"v"`
	Moved string `msgpack:"m,omitempty"` // node id
}

type deliverAnswer struct {
	V []deliverVerdict `msgpack:"v"`
}

type dlaneKey struct {
	channel string
	origin  uint64
}

type dlane struct {
	pending  []channel.Deliver
	running  bool
	locating bool
}

type chanHome struct {
	n *Node

	mu    sync.Mutex
	m     *channel.Machine
	inc   uint64
	lanes map[dlaneKey]*dlane
	// repl is each channel's replication log to its successor
	// (channels_replica.go).
	repl map[string]*replLog
	// changed is when the member set last changed (handoffGrace).
	changed time.Time
	members []channel.NodeID

	kick chan struct{}
	// leaving: the node is shutting down and handed its channels over; it
	// answers NotHome until the members see it gone.
	leaving atomic.Bool

	deliveries *prometheus.CounterVec
}

func newChanHome(n *Node) *chanHome {
	inc := uint64(time.Now().UnixNano())
	return &chanHome{
		n: n, m: channel.New(n.id, inc, channel.Config{QueueBound: n.cfg.ChannelQueue}, chanauth.Tokens{}), inc: inc,
		lanes: map[dlaneKey]*dlane{}, repl: map[string]*replLog{}, kick: make(chan struct{}, 1), changed: time.Now(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmesh_channel_deliveries_total",
			Help: "Channel deliveries this node sent as a home, by the subscriber node's verdict.",
		}, []string{"verdict"}),
	}
}

func (h *chanHome) collectors() []prometheus.Collector {
	stat := func(f func(channel.Stats) float64) func() float64 {
		return func() float64 {
			h.mu.Lock()
			defer h.mu.Unlock()
			total := 0.0
			for _, s := range h.m.List() {
				total += f(s)
			}
			return total
		}
	}
	return []prometheus.Collector{h.deliveries,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wasmesh_channels_homed", Help: "Channels this node is home to."},
			stat(func(channel.Stats) float64 { return 1 })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wasmesh_channel_published_total", Help: "Messages accepted by the channels homed here (since they came here)."},
			stat(func(s channel.Stats) float64 { return float64(s.Counters.Published) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wasmesh_channel_full_total", Help: "Publishes refused because a subscriber's queue was full (the publisher retries or fails with channel_full; nothing is dropped)."},
			stat(func(s channel.Stats) float64 { return float64(s.Counters.Full) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wasmesh_channel_queued", Help: "Undelivered messages queued for subscribers at the channels homed here."},
			stat(func(s channel.Stats) float64 {
				q := 0
				for _, sub := range s.Subscribers {
					q += sub.Queued
				}
				return float64(q)
			})),
	}
}

// memberIDs is the set homes are chosen from, as dirMembers.
func (n *Node) memberIDs() []channel.NodeID {
	ps := n.peers()
	ids := make([]channel.NodeID, 0, len(ps)+1)
	ids = append(ids, n.id)
	for _, p := range ps {
		ids = append(ids, p.id)
	}
	return ids
}

func (n *Node) homeOf(name string) channel.NodeID { return channel.Home(name, n.memberIDs()) }

func (h *chanHome) serve() {
	n := h.n
	n.ep.Handle(subChan, meshquic.Unary(func(ctx context.Context, peer meshquic.NodeID, req chanFrame) (chanFrame, error) {
		msg, err := channel.Decode(req.B)
		if err != nil {
			return chanFrame{}, toWire(wrap(ErrBadRequest, err))
		}
		ans := h.answer(ctx, peer, msg)
		b, err := channel.Encode(ans)
		return chanFrame{B: b}, err
	}))
	n.ep.Handle(subChanBatch, meshquic.Unary(func(ctx context.Context, peer meshquic.NodeID, req chanBatchFrame) (chanBatchFrame, error) {
		if len(req.B) > chanBatch {
			return chanBatchFrame{}, toWire(fmt.Errorf("%w: %d requests in one batch (max %d)", ErrTooLarge, len(req.B), chanBatch))
		}
		msgs := make([]channel.Message, len(req.B))
		for i, b := range req.B {
			m, err := channel.Decode(b)
			if err != nil {
				return chanBatchFrame{}, toWire(wrap(ErrBadRequest, err))
			}
			msgs[i] = m
		}
		var out chanBatchFrame
		for _, ans := range h.answerAll(ctx, peer, msgs) {
			b, err := channel.Encode(ans)
			if err != nil {
				return chanBatchFrame{}, err
			}
			out.B = append(out.B, b)
		}
		return out, nil
	}))
	n.ep.Handle(subChanRepl, meshquic.Unary(func(ctx context.Context, peer meshquic.NodeID, req replRequest) (replResponse, error) {
		if req.Home != peer.String() {
			return replResponse{}, toWire(fmt.Errorf("%w: a node replicates only its own channels", ErrBadRequest))
		}
		resp, err := n.chShadows.apply(req)
		return resp, toWire(err)
	}))
	n.ep.Handle(subChanDeliver, meshquic.Unary(func(ctx context.Context, peer meshquic.NodeID, req chanBatchFrame) (deliverAnswer, error) {
		if len(req.B) > chanBatch {
			return deliverAnswer{}, toWire(fmt.Errorf("%w: %d deliveries in one batch (max %d)", ErrTooLarge, len(req.B), chanBatch))
		}
		ds := make([]channel.Deliver, 0, len(req.B))
		for _, b := range req.B {
			msg, err := channel.Decode(b)
			if err != nil {
				return deliverAnswer{}, toWire(wrap(ErrBadRequest, err))
			}
			dm, ok := msg.(channel.DeliverMsg)
			if !ok {
				return deliverAnswer{}, toWire(fmt.Errorf("%w: a %T in a delivery batch", ErrBadRequest, msg))
			}
			ds = append(ds, dm.D)
		}
		return deliverAnswer{V: n.chSubs.accept(ctx, ds)}, nil
	}))
}

// answerAll runs requests for one channel in order, up to and including
// the first one refused, and answers once the channel's replica confirmed
// what they changed (answering CodeRetry when it could not: the effects
// stay, and a retry is answered as a duplicate once they are safe).
func (h *chanHome) answerAll(ctx context.Context, peer nodekey.NodeID, msgs []channel.Message) []channel.AnswerMsg {
	now := time.Now()
	refuse := func(err error) []channel.AnswerMsg {
		return []channel.AnswerMsg{channel.AnswerFor(channel.PublishResult{}, err)}
	}
	if h.leaving.Load() {
		return refuse(fmt.Errorf("%w: %s is leaving the cluster", channel.ErrNotHome, h.n.name))
	}
	if len(msgs) == 0 {
		return nil
	}
	if hm, ok := msgs[0].(channel.HandoffMsg); ok && len(msgs) == 1 {
		h.mu.Lock()
		defer h.mu.Unlock()
		return []channel.AnswerMsg{h.importLocked(hm.State, now)}
	}
	name := msgChannel(msgs[0])
	for _, m := range msgs {
		if msgChannel(m) != name || name == "" {
			return refuse(fmt.Errorf("%w: one batch, one channel's requests", channel.ErrBadMessage))
		}
	}
	if h.n.homeOf(name) != h.n.id {
		return refuse(fmt.Errorf("%w: %q is homed elsewhere", channel.ErrNotHome, name))
	}
	out := make([]channel.AnswerMsg, 0, len(msgs))
	h.mu.Lock()
	if err := h.ensureLocked(name, now); err != nil {
		h.mu.Unlock()
		return refuse(err)
	}
	for _, m := range msgs {
		a := h.applyLocked(peer, m, now)
		out = append(out, a)
		if a.Code != channel.CodeOK {
			break
		}
	}
	h.mu.Unlock()
	if err := h.replicate(ctx, name); errors.Is(err, meshquic.ErrFrameTooLarge) {
		// A state too large to seed in one message: serve unreplicated
		// rather than refuse every publish (DECISIONS.md, "Limits left").
		h.n.log.Warn("channel too large to replicate; serving it without a replica", "channel", name, "err", err)
	} else if err != nil {
		for i := range out {
			if out[i].Code == channel.CodeOK {
				out[i] = channel.AnswerFor(channel.PublishResult{}, fmt.Errorf("%w: %w", channel.ErrRetry, err))
			}
		}
	}
	return out
}

// answer is answerAll for one request.
func (h *chanHome) answer(ctx context.Context, peer nodekey.NodeID, msg channel.Message) channel.AnswerMsg {
	return h.answerAll(ctx, peer, []channel.Message{msg})[0]
}

// applyLocked runs one request on the machine and records it for the
// replica when it changed something.
func (h *chanHome) applyLocked(peer nodekey.NodeID, msg channel.Message, now time.Time) channel.AnswerMsg {
	var (
		res    channel.PublishResult
		outs   []channel.Deliver
		err    error
		record = true
	)
	switch m := msg.(type) {
	case channel.CreateMsg:
		err = h.m.Create(m.Def)
		if err == nil {
			h.n.chDefs.learn(m.Def)
		}
	case channel.SubscribeMsg:
		var id uint64
		id, outs, err = h.m.Subscribe(m.Channel, m.Sub, now)
		res.Seq = id
	case channel.UnsubscribeMsg:
		if m.From != peer && m.From != h.n.id && !m.From.IsZero() {
			err = fmt.Errorf("%w: a node unsubscribes only as itself", channel.ErrNotPermitted)
			break
		}
		err = h.m.Unsubscribe(m.Channel, m.Origin, m.From)
	case channel.MoveMsg:
		outs, err = h.m.Move(m.Channel, m.Origin, m.Node, now)
	case channel.PublishMsg:
		res, outs, err = h.m.Publish(m.Channel, m.Pub, now)
		record = res.Outcome == channel.Accepted
	default:
		err = fmt.Errorf("%w: a %T is not a request", channel.ErrBadMessage, msg)
	}
	if err == nil && record {
		h.recordLocked(msgChannel(msg), msg)
	}
	h.dispatchLocked(outs)
	return channel.AnswerFor(res, err)
}

// fitBatch is how many of the leading sizes go in one batch: at least
// one, at most chanBatch, and no more than chanBatchBytes after the first.
func fitBatch(n int, size func(i int) int) int {
	total, k := 0, 0
	for k < n && k < chanBatch {
		if k > 0 && total+size(k) > chanBatchBytes {
			break
		}
		total += size(k)
		k++
	}
	return k
}

func msgChannel(msg channel.Message) string {
	switch m := msg.(type) {
	case channel.CreateMsg:
		return m.Def.Name
	case channel.SubscribeMsg:
		return m.Channel
	case channel.UnsubscribeMsg:
		return m.Channel
	case channel.MoveMsg:
		return m.Channel
	case channel.PublishMsg:
		return m.Channel
	}
	return ""
}

// ensureLocked creates a channel this node is home to from its replicated
// definition when the machine does not have it (the home it had left, or
// crashed), once a handoff from a previous home had time to arrive.
func (h *chanHome) ensureLocked(name string, now time.Time) error {
	if _, err := h.m.Stats(name); err == nil {
		return nil
	}
	def, ok := h.n.chDefs.get(name)
	if !ok {
		return nil // the machine answers ChannelNotFound
	}
	if now.Sub(h.changed) < handoffGrace {
		return fmt.Errorf("%w: %q is being re-homed; retry", channel.ErrNotHome, name)
	}
	h.n.log.Warn("channel taken up afresh from its definition: its previous home left without handing it over or a replica (subscribers re-assert themselves)", "channel", name)
	if err := h.m.Create(def); err != nil {
		return err
	}
	h.recordLocked(name, channel.CreateMsg{Def: def})
	return nil
}

// dispatchLocked queues deliveries on their lanes, starting a lane's
// sender when it has none.
func (h *chanHome) dispatchLocked(ds []channel.Deliver) {
	for _, d := range ds {
		k := dlaneKey{d.Channel, d.To}
		l := h.lanes[k]
		if l == nil {
			l = &dlane{}
			h.lanes[k] = l
		}
		l.pending = append(l.pending, d)
		if !l.running {
			l.running = true
			h.n.wg.Add(1)
			go func() {
				defer h.n.wg.Done()
				h.runLane(k, l)
			}()
		}
	}
}

// runLane sends a lane's deliveries in order, a batch at a time, and
// feeds the verdicts back to the machine.
func (h *chanHome) runLane(k dlaneKey, l *dlane) {
	ctx := h.n.ctx
	for {
		h.mu.Lock()
		if len(l.pending) == 0 || ctx.Err() != nil {
			l.running = false
			if len(l.pending) == 0 {
				delete(h.lanes, k)
			}
			h.mu.Unlock()
			return
		}
		// One batch goes to one node: a Move changes it mid-queue.
		to := l.pending[0].Node
		cut := 1
		size := len(l.pending[0].Payload)
		for cut < len(l.pending) && cut < chanBatch && l.pending[cut].Node == to && size+len(l.pending[cut].Payload) <= chanBatchBytes {
			size += len(l.pending[cut].Payload)
			cut++
		}
		batch := slices.Clone(l.pending[:cut])
		l.pending = slices.Delete(l.pending, 0, cut)
		h.mu.Unlock()

		verdicts, err := h.send(ctx, to, batch)
		now := time.Now()
		h.mu.Lock()
		var moved channel.NodeID
		for i, d := range batch {
			v := deliverVerdict{V: verdictRetry}
			if err == nil && i < len(verdicts) {
				v = verdicts[i]
			}
			a := channel.AckOf(d)
			switch v.V {
			case verdictAck:
				h.deliveries.WithLabelValues("ack").Inc()
				outs, err := h.m.Delivered(d.Channel, a, now)
				if err == nil {
					h.recordLocked(d.Channel, channel.AckMsg{Channel: d.Channel, Ack: a})
				}
				h.dispatchLocked(outs)
			case verdictGone:
				h.deliveries.WithLabelValues("gone").Inc()
				if h.m.Unsubscribe(d.Channel, d.To, to) == nil {
					h.recordLocked(d.Channel, channel.UnsubscribeMsg{Channel: d.Channel, Origin: d.To, From: to})
				}
			default:
				h.deliveries.WithLabelValues(map[uint8]string{verdictRetry: "retry", verdictNotHere: "not_here"}[v.V]).Inc()
				_ = h.m.DeliveryFailed(d.Channel, a, now)
				if v.V == verdictNotHere && v.Moved != "" {
					if id, perr := nodekey.ParseNodeID(v.Moved); perr == nil {
						moved = id
					}
				} else if v.V == verdictNotHere && !l.locating {
					l.locating = true
					h.n.wg.Add(1)
					go func() {
						defer h.n.wg.Done()
						h.relocate(k, l)
					}()
				}
			}
		}
		if !moved.IsZero() {
			h.moveLocked(k, moved, now)
		}
		h.mu.Unlock()
	}
}

// relocate finds where a subscriber went when its old node does not know
// (a restart lost the "moved" note) and moves its subscription there.
func (h *chanHome) relocate(k dlaneKey, l *dlane) {
	defer func() {
		h.mu.Lock()
		l.locating = false
		h.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(h.n.ctx, chanCallTimeout)
	defer cancel()
	loc, err := h.n.locate(ctx, abi.FormatOrigin(k.origin))
	if err != nil {
		return
	}
	h.mu.Lock()
	h.moveLocked(k, loc.node.id, time.Now())
	h.mu.Unlock()
}

func (h *chanHome) moveLocked(k dlaneKey, to channel.NodeID, now time.Time) {
	outs, err := h.m.Move(k.channel, k.origin, to, now)
	if err == nil {
		h.recordLocked(k.channel, channel.MoveMsg{Channel: k.channel, Origin: k.origin, Node: to})
	}
	h.dispatchLocked(outs)
}

// send carries one batch to the subscribers' node (this node: directly).
func (h *chanHome) send(ctx context.Context, to channel.NodeID, batch []channel.Deliver) ([]deliverVerdict, error) {
	if to == h.n.id {
		return h.n.chSubs.accept(ctx, batch), nil
	}
	req := chanBatchFrame{B: make([][]byte, len(batch))}
	for i, d := range batch {
		b, err := channel.Encode(channel.DeliverMsg{D: d})
		if err != nil {
			return nil, err
		}
		req.B[i] = b
	}
	ctx, cancel := context.WithTimeout(ctx, chanCallTimeout)
	defer cancel()
	var resp deliverAnswer
	if err := h.n.ep.Call(ctx, meshquic.PeerID(to), subChanDeliver, req, &resp); err != nil {
		return nil, err
	}
	if len(resp.V) != len(batch) {
		return nil, fmt.Errorf("%w: %d verdicts for %d deliveries", ErrBadRequest, len(resp.V), len(batch))
	}
	return resp.V, nil
}

// run is the machine's clock and the re-homing loop.
func (h *chanHome) run(ctx context.Context) {
	t := time.NewTicker(chanTick)
	defer t.Stop()
	rehome := time.NewTicker(time.Second)
	defer rehome.Stop()
	ticks := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.mu.Lock()
			h.dispatchLocked(h.m.Tick(time.Now()))
			h.mu.Unlock()
			if ticks++; ticks%4 == 0 {
				h.flush()
			}
			continue
		case <-h.kick:
		case <-rehome.C:
		}
		h.rehome(ctx)
	}
}

// membersChanged is called on every membership event.
func (h *chanHome) membersChanged() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
	if s := h.n.chSubs; s != nil {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// leave hands every channel homed here to its home among the other
// members, before this node leaves: a graceful shutdown loses no queue.
func (h *chanHome) leave(ctx context.Context) {
	h.leaving.Store(true)
	var others []channel.NodeID
	for _, p := range h.n.peers() {
		others = append(others, p.id)
	}
	if len(others) == 0 {
		return
	}
	h.mu.Lock()
	var moving []channel.State
	for _, st := range h.m.List() {
		s, err := h.m.Export(st.Definition.Name)
		if err == nil && h.m.Remove(st.Definition.Name) == nil {
			moving = append(moving, s)
			h.forgetLogLocked(st.Definition.Name)
		}
	}
	h.mu.Unlock()
	for _, st := range moving {
		to := channel.Home(st.Def.Name, others)
		if err := h.handoff(ctx, to, st); err != nil {
			h.n.log.Warn("channel not handed over on shutdown; its queued messages are lost", "channel", st.Def.Name, "to", h.n.peerName(to), "err", err)
			continue
		}
		h.n.log.Info("channel handed over on shutdown", "channel", st.Def.Name, "to", h.n.peerName(to))
	}
}

// rehome hands every channel homed here whose home moved to the new home.
// The channel leaves the machine before the handoff is sent, so only one
// home answers for it; if the new home does not take it, it comes back.
func (h *chanHome) rehome(ctx context.Context) {
	if h.leaving.Load() {
		return
	}
	members := h.n.memberIDs()
	slices.SortFunc(members, func(a, b channel.NodeID) int { return bytes.Compare(a[:], b[:]) })
	h.takeOver(ctx, members)
	h.mu.Lock()
	if !slices.Equal(members, h.members) {
		h.members, h.changed = members, time.Now()
	}
	var moving []channel.State
	for _, st := range h.m.List() {
		if channel.Home(st.Definition.Name, members) == h.n.id {
			continue
		}
		s, err := h.m.Export(st.Definition.Name)
		if err == nil && h.m.Remove(st.Definition.Name) == nil {
			moving = append(moving, s)
			h.forgetLogLocked(st.Definition.Name)
		}
	}
	h.mu.Unlock()
	h.n.chDefs.push(ctx)
	for _, st := range moving {
		to := channel.Home(st.Def.Name, members)
		err := h.handoff(ctx, to, st)
		if err == nil {
			h.n.log.Info("channel re-homed", "channel", st.Def.Name, "to", h.n.peerName(to))
			continue
		}
		h.n.log.Warn("channel handoff failed; keeping it here and retrying", "channel", st.Def.Name, "to", h.n.peerName(to), "err", err)
		h.mu.Lock()
		ans := h.importLocked(st, time.Now())
		h.mu.Unlock()
		if ans.Code != channel.CodeOK {
			h.n.log.Error("channel state could not be taken back after a failed handoff", "channel", st.Def.Name, "err", ans.Err())
		}
	}
}

func (h *chanHome) handoff(ctx context.Context, to channel.NodeID, st channel.State) error {
	b, err := channel.Encode(channel.HandoffMsg{State: st})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, chanCallTimeout)
	defer cancel()
	var resp chanFrame
	if err := h.n.ep.Call(ctx, meshquic.PeerID(to), subChan, chanFrame{B: b}, &resp); err != nil {
		return err
	}
	msg, err := channel.Decode(resp.B)
	if err != nil {
		return err
	}
	ans, ok := msg.(channel.AnswerMsg)
	if !ok {
		return fmt.Errorf("%w: a %T answering a handoff", channel.ErrBadMessage, msg)
	}
	return ans.Err()
}

// importLocked takes a channel over (a handoff, a failed handoff taken
// back, a replica of a dead home). One this node created afresh in the
// meantime (handoffGrace passed) is replaced only if nothing used it. The
// replica starts over from a seed of the imported state.
func (h *chanHome) importLocked(st channel.State, now time.Time) channel.AnswerMsg {
	if h.leaving.Load() {
		// The sender does not see this node leaving yet: it keeps the
		// channel and tries again once the members settle.
		return channel.AnswerFor(channel.PublishResult{}, fmt.Errorf("%w: %s is leaving the cluster", channel.ErrNotHome, h.n.name))
	}
	if cur, err := h.m.Stats(st.Def.Name); err == nil {
		if cur.Counters.Published > 0 || len(cur.Subscribers) > 0 {
			return channel.AnswerFor(channel.PublishResult{}, fmt.Errorf("%w: %q already has state here", channel.ErrChannelExists, st.Def.Name))
		}
		_ = h.m.Remove(st.Def.Name)
	}
	outs, err := h.m.Import(st, now)
	if err == nil {
		h.n.chDefs.learn(st.Def)
		l := h.repl[st.Def.Name]
		if l == nil {
			l = &replLog{ship: make(chan struct{}, 1)}
			h.repl[st.Def.Name] = l
		}
		l.seeded, l.entries, l.base = false, nil, l.next()
	}
	h.dispatchLocked(outs)
	return channel.AnswerFor(channel.PublishResult{}, err)
}

// forgetLogLocked drops a channel's replication log when the channel
// leaves this node, and its replica with it.
func (h *chanHome) forgetLogLocked(name string) {
	if l := h.repl[name]; l != nil {
		if !l.to.IsZero() {
			h.dropReplica(l.to, name)
		}
		delete(h.repl, name)
	}
}

// callHome sends one request to the channel's home (this node: directly)
// and follows NotHome answers while membership settles, until ctx ends.
func (n *Node) callHome(ctx context.Context, name string, msg channel.Message) (channel.AnswerMsg, channel.NodeID, error) {
	b, err := channel.Encode(msg)
	if err != nil {
		return channel.AnswerMsg{}, channel.NodeID{}, wrap(ErrBadRequest, err)
	}
	backoff := 10 * time.Millisecond
	for {
		home := n.homeOf(name)
		var ans channel.AnswerMsg
		if home == n.id {
			ans = n.chHome.answer(ctx, n.id, msg)
		} else {
			cctx, cancel := context.WithTimeout(ctx, chanCallTimeout)
			var resp chanFrame
			err = n.ep.Call(cctx, meshquic.PeerID(home), subChan, chanFrame{B: b}, &resp)
			cancel()
			if err == nil {
				var m channel.Message
				if m, err = channel.Decode(resp.B); err == nil {
					var ok bool
					if ans, ok = m.(channel.AnswerMsg); !ok {
						err = fmt.Errorf("%w: a %T as an answer", channel.ErrBadMessage, m)
					}
				}
			}
			if err != nil {
				err = fromRemote(err, n.peerName(home))
				if !errors.Is(err, ErrUnavailable) {
					return channel.AnswerMsg{}, home, err
				}
			}
		}
		if err == nil && ans.Code != channel.CodeNotHome && ans.Code != channel.CodeRetry {
			return ans, home, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ans.Err()
			}
			return channel.AnswerMsg{}, home, fmt.Errorf("%w: channel %q: home %s: %w", ErrUnavailable, name, n.peerName(home), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// callHomeBatch sends requests for one channel to its home in one round
// trip and returns the answers of those it ran: all of them, or up to and
// including the first refusal. NotHome is followed as in callHome.
func (n *Node) callHomeBatch(ctx context.Context, name string, msgs []channel.Message) ([]channel.AnswerMsg, channel.NodeID, error) {
	if len(msgs) == 1 {
		ans, home, err := n.callHome(ctx, name, msgs[0])
		if err != nil {
			return nil, home, err
		}
		return []channel.AnswerMsg{ans}, home, nil
	}
	req := chanBatchFrame{B: make([][]byte, len(msgs))}
	for i, m := range msgs {
		b, err := channel.Encode(m)
		if err != nil {
			return nil, channel.NodeID{}, wrap(ErrBadRequest, err)
		}
		req.B[i] = b
	}
	backoff := 10 * time.Millisecond
	for {
		home := n.homeOf(name)
		var (
			answers []channel.AnswerMsg
			err     error
		)
		if home == n.id {
			answers = n.chHome.answerAll(ctx, n.id, msgs)
		} else {
			cctx, cancel := context.WithTimeout(ctx, chanCallTimeout)
			var resp chanBatchFrame
			err = n.ep.Call(cctx, meshquic.PeerID(home), subChanBatch, req, &resp)
			cancel()
			if err == nil && (len(resp.B) == 0 || len(resp.B) > len(msgs)) {
				err = fmt.Errorf("%w: %d answers to %d requests", channel.ErrBadMessage, len(resp.B), len(msgs))
			}
			for _, b := range resp.B {
				if err != nil {
					break
				}
				var m channel.Message
				if m, err = channel.Decode(b); err == nil {
					a, ok := m.(channel.AnswerMsg)
					if !ok {
						err = fmt.Errorf("%w: a %T as an answer", channel.ErrBadMessage, m)
					}
					answers = append(answers, a)
				}
			}
			if err != nil {
				err = fromRemote(err, n.peerName(home))
				if !errors.Is(err, ErrUnavailable) {
					return nil, home, err
				}
			}
		}
		retry := func(a channel.AnswerMsg) bool { return a.Code == channel.CodeNotHome || a.Code == channel.CodeRetry }
		if err == nil && !retry(answers[0]) {
			for i, a := range answers {
				if retry(a) {
					answers = answers[:i] // the rest goes again
					break
				}
			}
			return answers, home, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = answers[0].Err()
			}
			return nil, home, fmt.Errorf("%w: channel %q: home %s: %w", ErrUnavailable, name, n.peerName(home), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// chanErr puts a home's refusal in the node's error classes.
func chanErr(ans channel.AnswerMsg) error {
	err := ans.Err()
	if err == nil {
		return nil
	}
	for _, c := range ErrorClasses() {
		for _, t := range c.twins {
			if errors.Is(err, t) {
				return classed(c.Sentinel, err, "")
			}
		}
	}
	return err
}
