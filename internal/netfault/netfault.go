// Package netfault is a UDP relay that puts a faulty network between the
// clients of a UDP server (a QUIC listener) and the server: fixed delay,
// jitter, loss, duplication, a bandwidth cap and partitions, set per
// direction and per client, changeable while traffic flows.
//
// A node announces the proxy's address instead of its own (wasmesh node
// --advertise), so every packet its peers send it crosses the proxy, and so
// do its answers. A node dials its peers from its listening socket, so the
// client address a proxy sees for a peer node is that node's listen address:
// SetFor on that address reaches every packet between the two nodes.
//
// Randomness (loss, duplication, jitter) comes from a PCG seeded by
// Options.Seed, one stream per direction of each flow (numbered in the order
// the flows appear), so a run with the same seed and the same packets draws
// the same faults.
package netfault

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBadFaults is returned for a fault setting out of range.
var ErrBadFaults = errors.New("netfault: bad faults")

// ErrClosed is returned by calls on a closed proxy.
var ErrClosed = errors.New("netfault: proxy closed")

// Bandwidth units, in bits per second.
const (
	Kbit int64 = 1000
	Mbit int64 = 1000 * Kbit
	Gbit int64 = 1000 * Mbit
)

// DefaultQueue is the backlog a capped link holds before it drops packets:
// the buffer of a router in front of a slow link.
const DefaultQueue = 50 * time.Millisecond

// maxPacket is the largest UDP payload read (QUIC stays far below).
const maxPacket = 64 << 10

// Link is what one direction of the path does to packets. The zero Link
// forwards every packet at once.
type Link struct {
	Delay     time.Duration // fixed one-way delay of every packet
	Jitter    time.Duration // extra delay, uniform in [0, Jitter); it reorders packets
	Loss      float64       // probability that a packet is dropped, in [0, 1]
	Duplicate float64       // probability that a packet is delivered twice, in [0, 1]
	Bandwidth int64         // bits per second each flow may send this way; 0 is unlimited
	Queue     time.Duration // with Bandwidth: tail-drop a packet that would wait longer; 0 is DefaultQueue
	Blocked   bool          // drop every packet: a partition of this direction
}

// Faults are the two directions of a path: In carries packets from a client
// to the server behind the proxy, Out the server's packets back.
type Faults struct {
	In, Out Link
}

// Both applies l to both directions.
func Both(l Link) Faults { return Faults{In: l, Out: l} }

// Partitioned drops every packet both ways.
func Partitioned() Faults { return Both(Link{Blocked: true}) }

func (l Link) validate() error {
	switch {
	case l.Delay < 0 || l.Jitter < 0 || l.Queue < 0:
		return fmt.Errorf("%w: negative delay, jitter or queue", ErrBadFaults)
	case !(l.Loss >= 0 && l.Loss <= 1) || !(l.Duplicate >= 0 && l.Duplicate <= 1):
		return fmt.Errorf("%w: loss and duplicate are probabilities in [0, 1] (got %v, %v)", ErrBadFaults, l.Loss, l.Duplicate)
	case l.Bandwidth < 0:
		return fmt.Errorf("%w: negative bandwidth", ErrBadFaults)
	}
	return nil
}

// Validate reports whether f is usable.
func (f Faults) Validate() error {
	if err := f.In.validate(); err != nil {
		return fmt.Errorf("in: %w", err)
	}
	if err := f.Out.validate(); err != nil {
		return fmt.Errorf("out: %w", err)
	}
	return nil
}

// Counters count the packets of one direction.
type Counters struct {
	Packets    uint64 // delivered (a duplicate counts twice)
	Bytes      uint64 // delivered bytes
	Lost       uint64 // dropped by Loss
	Blocked    uint64 // dropped by a partition
	Duplicated uint64 // extra copies made
	Overflow   uint64 // dropped because the bandwidth queue was full
}

// Stats are a proxy's counters since it started.
type Stats struct {
	In, Out  Counters
	NoTarget uint64 // packets that arrived before SetTarget
	Flows    int    // clients seen
}

type counters struct {
	packets, bytes, lost, blocked, duplicated, overflow atomic.Uint64
}

func (c *counters) snapshot() Counters {
	return Counters{Packets: c.packets.Load(), Bytes: c.bytes.Load(), Lost: c.lost.Load(), Blocked: c.blocked.Load(),
		Duplicated: c.duplicated.Load(), Overflow: c.overflow.Load()}
}

// Options configure a proxy.
type Options struct {
	Listen string // address the proxy listens on; "" is 127.0.0.1:0
	Target string // the server's address; "" until SetTarget
	Seed   uint64 // seed of the fault draws
}

type config struct {
	def Faults
	per map[netip.AddrPort]Faults
}

func (c *config) faults(client netip.AddrPort) Faults {
	if f, ok := c.per[client]; ok {
		return f
	}
	return c.def
}

// Proxy relays UDP between clients and one server. Each client gets its own
// socket towards the server, so the server sees one address per client.
type Proxy struct {
	conn   *net.UDPConn
	seed   uint64
	cfg    atomic.Pointer[config]
	target atomic.Pointer[net.UDPAddr]
	stats  [2]counters
	noTgt  atomic.Uint64
	done   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex // guards flows, cfg writes and closed
	flows  map[netip.AddrPort]*flow
	closed bool
}

const (
	dirIn = iota
	dirOut
)

// New starts a proxy.
func New(opts Options) (*Proxy, error) {
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	la, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("netfault: listen %s: %w", listen, err)
	}
	conn, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, fmt.Errorf("netfault: listen %s: %w", listen, err)
	}
	// Large buffers so that the relay, not the kernel, decides what is lost.
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	p := &Proxy{conn: conn, seed: opts.Seed, done: make(chan struct{}), flows: map[netip.AddrPort]*flow{}}
	p.cfg.Store(&config{})
	if opts.Target != "" {
		if err := p.SetTarget(opts.Target); err != nil {
			conn.Close()
			return nil, err
		}
	}
	p.wg.Add(1)
	go p.readClients()
	return p, nil
}

// Addr is the address clients send to: what the server should announce.
func (p *Proxy) Addr() string { return p.conn.LocalAddr().String() }

// SetTarget sets the server's address; flows that already exist keep theirs.
func (p *Proxy) SetTarget(addr string) error {
	ta, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return fmt.Errorf("netfault: target %s: %w", addr, err)
	}
	p.target.Store(ta)
	return nil
}

// Set replaces the faults of every client without its own (SetFor).
func (p *Proxy) Set(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	p.update(func(c *config) { c.def = f })
	return nil
}

// SetFor gives the packets from and to one client address their own faults.
func (p *Proxy) SetFor(client string, f Faults) error {
	ap, err := parseAddr(client)
	if err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return err
	}
	p.update(func(c *config) { c.per[ap] = f })
	return nil
}

// ClearFor makes a client follow the proxy's faults (Set) again.
func (p *Proxy) ClearFor(client string) error {
	ap, err := parseAddr(client)
	if err != nil {
		return err
	}
	p.update(func(c *config) { delete(c.per, ap) })
	return nil
}

// Heal drops every fault: Set(Faults{}) and every SetFor cleared.
func (p *Proxy) Heal() { p.update(func(c *config) { *c = config{per: map[netip.AddrPort]Faults{}} }) }

// Faults returns the faults of clients without their own.
func (p *Proxy) Faults() Faults { return p.cfg.Load().def }

func (p *Proxy) update(fn func(*config)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.cfg.Load()
	c := &config{def: old.def, per: make(map[netip.AddrPort]Faults, len(old.per)+1)}
	for k, v := range old.per {
		c.per[k] = v
	}
	fn(c)
	p.cfg.Store(c)
}

func parseAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		ua, rerr := net.ResolveUDPAddr("udp", s)
		if rerr != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: client address %q: %w", ErrBadFaults, s, err)
		}
		ap = ua.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	n := len(p.flows)
	p.mu.Unlock()
	return Stats{In: p.stats[dirIn].snapshot(), Out: p.stats[dirOut].snapshot(), NoTarget: p.noTgt.Load(), Flows: n}
}

// Close stops the proxy; packets still delayed are dropped.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	err := p.conn.Close()
	for _, f := range p.flows {
		f.up.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// flow is one client's path to the server.
type flow struct {
	client netip.AddrPort
	up     *net.UDPConn // connected to the server
	links  [2]*link
}

func (p *Proxy) readClients() {
	defer p.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. an ICMP error surfaced on the socket
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		f := p.flow(from)
		if f == nil {
			continue
		}
		f.links[dirIn].handle(buf[:n], p.cfg.Load().faults(from).In)
	}
}

// flow returns the client's flow, creating it (and its socket towards the
// server) on its first packet; nil when there is no target yet or the proxy
// closed.
func (p *Proxy) flow(client netip.AddrPort) *flow {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.flows[client]; f != nil {
		return f
	}
	if p.closed {
		return nil
	}
	ta := p.target.Load()
	if ta == nil {
		p.noTgt.Add(1)
		return nil
	}
	up, err := net.DialUDP("udp", nil, ta)
	if err != nil {
		p.noTgt.Add(1)
		return nil
	}
	_ = up.SetReadBuffer(4 << 20)
	_ = up.SetWriteBuffer(4 << 20)
	idx := uint64(len(p.flows))
	f := &flow{client: client, up: up}
	f.links[dirIn] = p.newLink(dirIn, 2*idx, func(b []byte) { _, _ = up.Write(b) })
	f.links[dirOut] = p.newLink(dirOut, 2*idx+1, func(b []byte) { _, _ = p.conn.WriteToUDPAddrPort(b, client) })
	p.flows[client] = f
	p.wg.Add(3)
	go f.links[dirIn].run()
	go f.links[dirOut].run()
	go p.readServer(f)
	return f
}

func (p *Proxy) readServer(f *flow) {
	defer p.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, err := f.up.Read(buf)
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP port unreachable while the server is down
		}
		f.links[dirOut].handle(buf[:n], p.cfg.Load().faults(f.client).Out)
	}
}

// link is one direction of one flow: it draws the faults of each packet and
// holds delayed packets until they are due.
type link struct {
	p     *Proxy
	c     *counters
	send  func([]byte)
	wake  chan struct{}
	mu    sync.Mutex
	rng   *rand.Rand
	queue pktHeap
	seq   uint64
	busy  time.Time // when the capped link finishes sending what it holds
}

func (p *Proxy) newLink(dir int, stream uint64, send func([]byte)) *link {
	return &link{p: p, c: &p.stats[dir], send: send, wake: make(chan struct{}, 1),
		rng: rand.New(rand.NewPCG(p.seed, stream))}
}

type pkt struct {
	at  time.Time
	seq uint64
	b   []byte
}

type pktHeap []pkt

func (h pktHeap) Len() int { return len(h) }
func (h pktHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h pktHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pktHeap) Push(x any)   { *h = append(*h, x.(pkt)) }
func (h *pktHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// handle applies l to one packet; b is only valid during the call.
func (k *link) handle(b []byte, l Link) {
	if l.Blocked {
		k.c.blocked.Add(1)
		return
	}
	k.mu.Lock()
	if l.Loss > 0 && k.rng.Float64() < l.Loss {
		k.mu.Unlock()
		k.c.lost.Add(1)
		return
	}
	copies := 1
	if l.Duplicate > 0 && k.rng.Float64() < l.Duplicate {
		copies = 2
		k.c.duplicated.Add(1)
	}
	now := time.Now()
	direct := 0
	queued := false
	for range copies {
		at := now
		if l.Bandwidth > 0 {
			start := now
			if k.busy.After(now) {
				start = k.busy
			}
			limit := l.Queue
			if limit == 0 {
				limit = DefaultQueue
			}
			if start.Sub(now) > limit {
				k.c.overflow.Add(1)
				continue
			}
			tx := time.Duration(math.Ceil(float64(len(b)) * 8 * float64(time.Second) / float64(l.Bandwidth)))
			k.busy = start.Add(tx)
			at = k.busy
		}
		at = at.Add(l.Delay)
		if l.Jitter > 0 {
			at = at.Add(time.Duration(k.rng.Int64N(int64(l.Jitter))))
		}
		if !at.After(now) && len(k.queue) == 0 {
			direct++
			continue
		}
		k.seq++
		heap.Push(&k.queue, pkt{at: at, seq: k.seq, b: append([]byte(nil), b...)})
		queued = true
	}
	k.mu.Unlock()
	for range direct {
		k.deliver(b)
	}
	if queued {
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
}

func (k *link) deliver(b []byte) {
	k.send(b)
	k.c.packets.Add(1)
	k.c.bytes.Add(uint64(len(b)))
}

// run delivers delayed packets when they are due.
func (k *link) run() {
	defer k.p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		k.mu.Lock()
		var due [][]byte
		now := time.Now()
		for len(k.queue) > 0 && !k.queue[0].at.After(now) {
			due = append(due, heap.Pop(&k.queue).(pkt).b)
		}
		wait := time.Hour
		if len(k.queue) > 0 {
			wait = k.queue[0].at.Sub(now)
		}
		k.mu.Unlock()
		for _, b := range due {
			k.deliver(b)
		}
		if len(due) > 0 {
			continue // time passed while sending
		}
		timer.Reset(wait)
		select {
		case <-k.p.done:
			return
		case <-k.wake:
		case <-timer.C:
		}
	}
}
