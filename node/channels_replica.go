package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wasmesh/wasmesh/internal/channel"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// A channel's home keeps a replica of it on its successor: the member that
// becomes the home when this one is gone (rendezvous order: the heaviest
// of the others). Every input the home's machine took (a subscription
// change, an accepted publish, an ack) is shipped there in order and
// applied to a mirror of the home's machine, and a publish or subscribe is
// answered only once the successor confirmed it. So when the home dies
// (kill -9), the successor takes the channel over from the mirror with its
// queues and publisher table: nothing acknowledged is lost, and the
// subscribers' horizons drop what the dead home had already delivered.
// A graceful shutdown still hands over directly (chanHome.leave).

// subChanRepl carries a home's inputs (and seeds) to its successor.
const subChanRepl = "wasmesh/node/chan-repl/1"

const (
	// replMaxBytes bounds one shipment.
	replMaxBytes = 4 << 20
	// replMaxInputs bounds one shipment's inputs.
	replMaxInputs = 1024
)

type replRequest struct {
	Home    string `msgpack:"h"` // node id
	Inc     uint64 `msgpack:"i"`
	Channel string `msgpack:"c"`
	// Seed, when set, is the channel's state (a Handoff message) at input
	// index From, with its seq; it replaces whatever the replica held.
	Seed    []byte `msgpack:"s,omitempty"`
	SeedSeq uint64 `msgpack:"q,omitempty"`
	From    uint64 `msgpack:"f"`
	// Inputs are channel wire messages, the home's inputs From, From+1, ...
	Inputs [][]byte `msgpack:"n"`
	// Drop asks the replica to forget the channel (it moved, or this node
	// is no longer the successor).
	Drop bool `msgpack:"d,omitempty"`
}

type replResponse struct {
	// NeedSeed: the replica has no copy at From (a restart, a gap): send a
	// seed first.
	NeedSeed bool `msgpack:"n"`
}

// replLog is the home's side for one channel (under chanHome.mu).
type replLog struct {
	to      channel.NodeID
	seeded  bool
	base    uint64   // index of entries[0]
	entries [][]byte // inputs not yet confirmed by the successor
	// ship is a one-slot token: one shipment of this channel at a time,
	// so inputs arrive in order.
	ship chan struct{}
}

func (l *replLog) next() uint64 { return l.base + uint64(len(l.entries)) }

// record appends a machine input that succeeded (under h.mu).
func (h *chanHome) recordLocked(name string, msg channel.Message) {
	l := h.repl[name]
	if l == nil {
		l = &replLog{ship: make(chan struct{}, 1)}
		h.repl[name] = l
	}
	b, err := channel.Encode(msg)
	if err != nil {
		// Unencodable means the replica can no longer follow: reseed.
		l.seeded = false
		return
	}
	l.entries = append(l.entries, b)
}

// successor is the member that would home name if this node were gone.
func (n *Node) successor(name string) channel.NodeID {
	var others []channel.NodeID
	for _, p := range n.peers() {
		others = append(others, p.id)
	}
	if len(others) == 0 {
		return channel.NodeID{}
	}
	return channel.Home(name, others)
}

// replicate returns once the successor confirmed every input of name
// recorded so far (at once when there is no successor).
func (h *chanHome) replicate(ctx context.Context, name string) error {
	h.mu.Lock()
	l := h.repl[name]
	if l == nil {
		h.mu.Unlock()
		return nil
	}
	upTo := l.next()
	h.mu.Unlock()
	select {
	case l.ship <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.ship }()
	for {
		h.mu.Lock()
		succ := h.n.successor(name)
		if _, err := h.m.Stats(name); err != nil || succ.IsZero() {
			// Gone from here, or nobody to replicate to.
			l.base, l.entries, l.to = l.next(), nil, succ
			h.mu.Unlock()
			return nil
		}
		if l.seeded && l.base >= upTo && succ == l.to {
			h.mu.Unlock()
			return nil
		}
		if succ != l.to {
			if !l.to.IsZero() {
				h.dropReplica(l.to, name)
			}
			l.to, l.seeded = succ, false
		}
		req := replRequest{Home: h.n.id.String(), Inc: h.inc, Channel: name}
		var sent int
		if !l.seeded {
			st, _ := h.m.Export(name)
			seq, _ := h.m.Seq(name)
			b, err := channel.Encode(channel.HandoffMsg{State: st})
			if err != nil {
				h.mu.Unlock()
				return err
			}
			req.Seed, req.SeedSeq = b, seq
			// The seed holds everything recorded so far.
			l.base, l.entries = l.next(), nil
			req.From = l.base
		} else {
			req.From = l.base
			size := 0
			for _, e := range l.entries {
				if sent == replMaxInputs || (sent > 0 && size+len(e) > replMaxBytes) {
					break
				}
				req.Inputs = append(req.Inputs, e)
				size += len(e)
				sent++
			}
		}
		h.mu.Unlock()

		cctx, cancel := context.WithTimeout(ctx, chanCallTimeout)
		var resp replResponse
		err := h.n.ep.Call(cctx, meshquic.PeerID(succ), subChanRepl, req, &resp)
		cancel()
		h.mu.Lock()
		switch {
		case err != nil:
		case resp.NeedSeed:
			l.seeded = false
		case req.Seed != nil:
			l.seeded = l.to == succ
		default:
			if l.base == req.From && sent <= len(l.entries) {
				l.entries = l.entries[sent:]
				l.base += uint64(sent)
			}
		}
		h.mu.Unlock()
		if err != nil {
			return fmt.Errorf("%w: channel %q: replica on %s: %w", ErrUnavailable, name, h.n.peerName(succ), err)
		}
	}
}

// flush ships what the lanes' acks recorded, in the background, for every
// channel not shipping already.
func (h *chanHome) flush() {
	h.mu.Lock()
	var names []string
	for name, l := range h.repl {
		if len(l.entries) > 0 || !l.seeded {
			names = append(names, name)
		}
	}
	h.mu.Unlock()
	for _, name := range names {
		h.n.wg.Add(1)
		go func() {
			defer h.n.wg.Done()
			ctx, cancel := context.WithTimeout(h.n.ctx, chanCallTimeout)
			defer cancel()
			_ = h.replicate(ctx, name)
		}()
	}
}

func (h *chanHome) dropReplica(to channel.NodeID, name string) {
	h.n.wg.Add(1)
	go func() {
		defer h.n.wg.Done()
		ctx, cancel := context.WithTimeout(h.n.ctx, chanCallTimeout)
		defer cancel()
		req := replRequest{Home: h.n.id.String(), Inc: h.inc, Channel: name, Drop: true}
		_ = h.n.ep.Call(ctx, meshquic.PeerID(to), subChanRepl, req, nil)
	}()
}

// shadows are the replicas this node keeps for other homes: per home, a
// machine with the home's id and incarnation (so it computes the home's
// stream ids) and the next input index per channel.
type shadows struct {
	mu    sync.Mutex
	homes map[channel.NodeID]*shadowHome
}

type shadowHome struct {
	inc  uint64
	m    *channel.Machine
	next map[string]uint64
}

// allowAll: the home verified every input before it took it.
var _ channel.Authorizer = channel.AuthorizerFunc(nil)

func allowAll(channel.Definition, [32]byte, channel.Scope, []byte, time.Time) error { return nil }

func (s *shadows) apply(req replRequest) (replResponse, error) {
	home, err := nodekey.ParseNodeID(req.Home)
	if err != nil {
		return replResponse{}, fmt.Errorf("%w: replica home %q", ErrBadRequest, req.Home)
	}
	if len(req.Inputs) > replMaxInputs {
		return replResponse{}, fmt.Errorf("%w: %d inputs in one shipment", ErrTooLarge, len(req.Inputs))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.homes == nil {
		s.homes = map[channel.NodeID]*shadowHome{}
	}
	sh := s.homes[home]
	if req.Drop {
		if sh != nil && sh.inc == req.Inc {
			_ = sh.m.Remove(req.Channel)
			delete(sh.next, req.Channel)
		}
		return replResponse{}, nil
	}
	if sh == nil || sh.inc != req.Inc {
		// A new incarnation of the home: what it had before is gone.
		sh = &shadowHome{inc: req.Inc, next: map[string]uint64{},
			m: channel.New(home, req.Inc, channel.Config{QueueBound: 1 << 30}, channel.AuthorizerFunc(allowAll))}
		s.homes[home] = sh
	}
	if req.Seed != nil {
		msg, err := channel.Decode(req.Seed)
		if err != nil {
			return replResponse{}, wrap(ErrBadRequest, err)
		}
		hm, ok := msg.(channel.HandoffMsg)
		if !ok || hm.State.Def.Name != req.Channel {
			return replResponse{}, fmt.Errorf("%w: a replica seed must be the channel's state", ErrBadRequest)
		}
		_ = sh.m.Remove(req.Channel)
		if err := sh.m.Mirror(hm.State, req.SeedSeq); err != nil {
			return replResponse{NeedSeed: true}, nil
		}
		sh.next[req.Channel] = req.From
		return replResponse{}, nil
	}
	next, ok := sh.next[req.Channel]
	if !ok || next != req.From {
		return replResponse{NeedSeed: true}, nil
	}
	now := time.Now()
	for _, b := range req.Inputs {
		msg, err := channel.Decode(b)
		if err == nil {
			err = applyInput(sh.m, msg, now)
		}
		if err != nil {
			// The copy no longer matches the home's: start over from a seed.
			_ = sh.m.Remove(req.Channel)
			delete(sh.next, req.Channel)
			return replResponse{NeedSeed: true}, nil
		}
		sh.next[req.Channel]++
	}
	return replResponse{}, nil
}

// applyInput runs one of a home's inputs on its mirror; the deliveries a
// mirror would send are dropped (the home sends them).
func applyInput(m *channel.Machine, msg channel.Message, now time.Time) error {
	var err error
	switch x := msg.(type) {
	case channel.CreateMsg:
		err = m.Create(x.Def)
	case channel.SubscribeMsg:
		_, _, err = m.Subscribe(x.Channel, x.Sub, now)
	case channel.UnsubscribeMsg:
		err = m.Unsubscribe(x.Channel, x.Origin, x.From)
	case channel.MoveMsg:
		_, err = m.Move(x.Channel, x.Origin, x.Node, now)
	case channel.PublishMsg:
		var res channel.PublishResult
		res, _, err = m.Publish(x.Channel, x.Pub, now)
		if err == nil && res.Outcome != channel.Accepted {
			err = errors.New("a replicated publish was not accepted by the mirror")
		}
	case channel.AckMsg:
		_, err = m.Delivered(x.Channel, x.Ack, now)
	default:
		err = fmt.Errorf("%w: a %T is not a home input", channel.ErrBadMessage, msg)
	}
	return err
}

// takeOver moves the mirrors of channels whose home is gone to the new
// home: into this node's machine when it is that home, else to it by
// handoff. It returns the names taken.
func (h *chanHome) takeOver(ctx context.Context, members []channel.NodeID) {
	alive := map[channel.NodeID]bool{}
	for _, m := range members {
		alive[m] = true
	}
	type orphan struct {
		st channel.State
		to channel.NodeID
	}
	var orphans []orphan
	s := &h.n.chShadows
	s.mu.Lock()
	for home, sh := range s.homes {
		if alive[home] {
			continue
		}
		for _, st := range sh.m.List() {
			name := st.Definition.Name
			exp, err := sh.m.Export(name)
			if err != nil {
				continue
			}
			orphans = append(orphans, orphan{st: exp, to: channel.Home(name, members)})
		}
		delete(s.homes, home)
	}
	s.mu.Unlock()
	for _, o := range orphans {
		name := o.st.Def.Name
		if o.to == h.n.id {
			h.mu.Lock()
			ans := h.importLocked(o.st, time.Now())
			h.mu.Unlock()
			if ans.Code == channel.CodeOK {
				h.n.log.Warn("channel taken over from its replica: its home is gone", "channel", name, "subscribers", len(o.st.Subscribers))
			} else {
				h.n.log.Error("channel replica not taken over", "channel", name, "err", ans.Err())
			}
			continue
		}
		if err := h.handoff(ctx, o.to, o.st); err != nil {
			h.n.log.Error("channel replica not handed to the new home; its queued messages are lost", "channel", name, "to", h.n.peerName(o.to), "err", err)
		}
	}
}
