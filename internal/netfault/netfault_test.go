package netfault

import (
	"encoding/binary"
	"errors"
	"math"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// echo is a UDP server that sends every packet back and counts them.
type echo struct {
	conn *net.UDPConn
	got  atomic.Uint64
}

func newEcho(t *testing.T) *echo {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	e := &echo{conn: c}
	go func() {
		buf := make([]byte, maxPacket)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			e.got.Add(1)
			_, _ = c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() { c.Close() })
	return e
}

func (e *echo) addr() string { return e.conn.LocalAddr().String() }

func newProxy(t *testing.T, target string, seed uint64) *Proxy {
	t.Helper()
	p, err := New(Options{Target: target, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) *net.UDPConn {
	t.Helper()
	ua, _ := net.ResolveUDPAddr("udp", p.Addr())
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends n numbered packets of size bytes, in small bursts so
// that no kernel socket buffer overflows, and collects the echoes that
// arrive until quiet has passed without one.
func roundTrip(t *testing.T, c *net.UDPConn, n, size int, quiet time.Duration) []uint32 {
	t.Helper()
	done := make(chan []uint32)
	go func() {
		var got []uint32
		buf := make([]byte, maxPacket)
		for {
			_ = c.SetReadDeadline(time.Now().Add(quiet))
			k, err := c.Read(buf)
			if err != nil {
				done <- got
				return
			}
			got = append(got, binary.BigEndian.Uint32(buf[:k]))
		}
	}()
	for i := range n {
		b := make([]byte, max(size, 4))
		binary.BigEndian.PutUint32(b, uint32(i))
		if _, err := c.Write(b); err != nil {
			t.Error(err)
		}
		if i%20 == 19 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	return <-done
}

func TestPassThrough(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.addr(), 1)
	got := roundTrip(t, dial(t, p), 100, 100, 300*time.Millisecond)
	if len(got) != 100 {
		t.Fatalf("got %d echoes, want 100", len(got))
	}
	s := p.Stats()
	if s.In.Packets != 100 || s.Out.Packets != 100 || s.In.Bytes != 100*100 || s.Flows != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNoTargetDropsUntilSet(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, "", 1)
	c := dial(t, p)
	if got := roundTrip(t, c, 3, 10, 100*time.Millisecond); len(got) != 0 {
		t.Fatalf("echoes without a target: %v", got)
	}
	if s := p.Stats(); s.NoTarget != 3 {
		t.Fatalf("NoTarget = %d, want 3", s.NoTarget)
	}
	if err := p.SetTarget(e.addr()); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, c, 3, 10, 200*time.Millisecond); len(got) != 3 {
		t.Fatalf("after SetTarget got %d echoes, want 3", len(got))
	}
}

// TestLossIsSeeded drives one link directly (no sockets, so no kernel
// drops): the same seed draws the same faults for the same packets.
func TestLossIsSeeded(t *testing.T) {
	run := func(seed uint64) []int {
		p := &Proxy{seed: seed, done: make(chan struct{})}
		var got []int
		k := p.newLink(dirIn, 0, func(b []byte) { got = append(got, int(b[0])|int(b[1])<<8) })
		for i := range 1000 {
			k.handle([]byte{byte(i), byte(i >> 8)}, Link{Loss: 0.3, Duplicate: 0.1})
		}
		return got
	}
	a, b, c := run(7), run(7), run(8)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed delivered different packets")
	}
	if slices.Equal(a, c) {
		t.Fatal("different seeds delivered the same packets")
	}
	// About 700 survive the loss, about 70 of them twice.
	if len(a) < 700 || len(a) > 840 {
		t.Fatalf("loss 0.3, duplicate 0.1 of 1000: %d delivered", len(a))
	}
}

func TestDuplicate(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.addr(), 1)
	if err := p.Set(Faults{Out: Link{Duplicate: 1}}); err != nil {
		t.Fatal(err)
	}
	got := roundTrip(t, dial(t, p), 50, 16, 300*time.Millisecond)
	if len(got) != 100 || e.got.Load() != 50 {
		t.Fatalf("duplicate 1 on the way back: server got %d, client %d; want 50, 100", e.got.Load(), len(got))
	}
	seen := map[uint32]int{}
	for _, v := range got {
		seen[v]++
	}
	for i := range uint32(50) {
		if seen[i] != 2 {
			t.Fatalf("packet %d arrived %d times, want 2", i, seen[i])
		}
	}
	if s := p.Stats(); s.Out.Duplicated != 50 || s.Out.Packets != 100 {
		t.Fatalf("stats %+v", s.Out)
	}
}

func TestDelayAndJitter(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.addr(), 3)
	const delay = 30 * time.Millisecond
	if err := p.Set(Both(Link{Delay: delay})); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	b := make([]byte, 16)
	start := time.Now()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(b); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 2*delay {
		t.Fatalf("round trip %v through %v each way", rtt, delay)
	}

	// Jitter of 20ms on 200 packets sent back to back reorders them, and
	// loses none.
	if err := p.Set(Faults{In: Link{Jitter: 20 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	got := roundTrip(t, c, 200, 16, 300*time.Millisecond)
	if len(got) != 200 {
		t.Fatalf("jitter lost packets: %d of 200", len(got))
	}
	inOrder := true
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			inOrder = false
		}
	}
	if inOrder {
		t.Fatal("jitter did not reorder 200 back-to-back packets")
	}
}

func TestPartitionAndAsymmetry(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.addr(), 1)
	c := dial(t, p)
	if err := p.Set(Partitioned()); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, c, 10, 16, 100*time.Millisecond); len(got) != 0 || e.got.Load() != 0 {
		t.Fatalf("partition let through %d echoes, server got %d", len(got), e.got.Load())
	}
	// Asymmetric: the server hears the client but its answers are lost.
	if err := p.Set(Faults{Out: Link{Blocked: true}}); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, c, 10, 16, 100*time.Millisecond); len(got) != 0 || e.got.Load() != 10 {
		t.Fatalf("out blocked: %d echoes, server got %d; want 0, 10", len(got), e.got.Load())
	}
	p.Heal()
	if got := roundTrip(t, c, 10, 16, 200*time.Millisecond); len(got) != 10 {
		t.Fatalf("healed: %d echoes, want 10", len(got))
	}
	if s := p.Stats(); s.In.Blocked != 10 || s.Out.Blocked != 10 {
		t.Fatalf("blocked counters %+v %+v", s.In, s.Out)
	}
}

func TestSetForOneClient(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.addr(), 1)
	a, b := dial(t, p), dial(t, p)
	if err := p.SetFor(a.LocalAddr().String(), Partitioned()); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, a, 5, 16, 100*time.Millisecond); len(got) != 0 {
		t.Fatalf("partitioned client got %d echoes", len(got))
	}
	if got := roundTrip(t, b, 5, 16, 200*time.Millisecond); len(got) != 5 {
		t.Fatalf("other client got %d echoes, want 5", len(got))
	}
	if err := p.ClearFor(a.LocalAddr().String()); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, a, 5, 16, 200*time.Millisecond); len(got) != 5 {
		t.Fatalf("cleared client got %d echoes, want 5", len(got))
	}
}

func TestBandwidth(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.addr(), 1)
	// 8 Mbit/s is 1000 bytes per millisecond: 100 packets of 1000 bytes
	// need 100 ms on the wire, and a queue of 500 ms holds them all.
	if err := p.Set(Faults{In: Link{Bandwidth: 8 * Mbit, Queue: 500 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	start := time.Now()
	got := roundTrip(t, c, 100, 1000, 200*time.Millisecond)
	if len(got) != 100 {
		t.Fatalf("got %d of 100", len(got))
	}
	if d := time.Since(start) - 200*time.Millisecond; d < 90*time.Millisecond {
		t.Fatalf("100 KB through 8 Mbit/s took %v", d)
	}
	// A 10 ms queue holds about ten of them; the rest of a burst is dropped.
	if err := p.Set(Faults{In: Link{Bandwidth: 8 * Mbit, Queue: 10 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	got = roundTrip(t, c, 100, 1000, 200*time.Millisecond)
	s := p.Stats()
	if len(got) > 20 || s.In.Overflow < 80 || uint64(len(got))+s.In.Overflow != 100 {
		t.Fatalf("10 ms queue: %d delivered, %d overflowed", len(got), s.In.Overflow)
	}
}

func TestBadFaults(t *testing.T) {
	p := newProxy(t, "", 1)
	for _, f := range []Faults{
		{In: Link{Loss: 1.5}}, {Out: Link{Duplicate: -0.1}}, {In: Link{Loss: math.NaN()}},
		{In: Link{Delay: -time.Second}}, {Out: Link{Bandwidth: -1}}, {In: Link{Queue: -1}},
	} {
		if err := p.Set(f); !errors.Is(err, ErrBadFaults) {
			t.Errorf("Set(%+v) = %v, want ErrBadFaults", f, err)
		}
	}
	if err := p.SetFor("not an address", Faults{}); !errors.Is(err, ErrBadFaults) {
		t.Errorf("SetFor(bad) = %v", err)
	}
	if p.Faults() != (Faults{}) {
		t.Errorf("a refused Set changed the faults: %+v", p.Faults())
	}
}
