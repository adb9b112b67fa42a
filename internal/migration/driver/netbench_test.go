package driver_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	quicproxy "github.com/quic-go/quic-go/integrationtests/tools/proxy"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/migration/driver"
	"github.com/wasmesh/wasmesh/internal/migration/drivertest"
	"github.com/wasmesh/wasmesh/internal/migration/protocol"
)

// netem shapes the links between the nodes of a test cluster, with one
// UDP proxy (quic-go's integrationtests/tools/proxy) per ordered pair of
// nodes. Each direction between two nodes is one link: a packet waits for
// the link to be free (bandwidth: its size over the rate), then for the
// one-way delay; a packet that would wait longer than the link's buffer
// is dropped, as a router's drop-tail queue does. The two proxies of a
// pair share their links, whichever node dialled.
type netem struct {
	owd    time.Duration // one-way delay: half the RTT
	bps    float64       // bits per second; 0 is unlimited
	buffer time.Duration // queueing past this drops the packet

	mu      sync.Mutex
	busy    map[[2]int]time.Time // link from→to is sending until then
	dropped atomic.Int64
	bytes   atomic.Int64
}

func newNetem(rtt time.Duration, bps float64) *netem {
	return &netem{owd: rtt / 2, bps: bps, buffer: max(rtt, 4*time.Millisecond), busy: map[[2]int]time.Time{}}
}

// admit queues a packet of n bytes on link from→to and says how long it
// takes to arrive, or false if the link's buffer is full.
func (e *netem) admit(from, to, n int) (time.Duration, bool) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	start := now
	if b := e.busy[[2]int{from, to}]; b.After(now) {
		start = b
	}
	if start.Sub(now) > e.buffer {
		e.dropped.Add(1)
		return 0, false
	}
	done := start
	if e.bps > 0 {
		done = start.Add(time.Duration(float64(n) * 8 / e.bps * float64(time.Second)))
	}
	e.busy[[2]int{from, to}] = done
	e.bytes.Add(int64(n))
	// Never 0: the proxy sends a packet without delay at once, which
	// could overtake the packets it holds.
	return max(done.Sub(now)+e.owd, time.Nanosecond), true
}

// peerAddr is a drivertest PeerAddr: node from reaches node to through
// a proxy that shapes both directions.
func (e *netem) peerAddr(b testing.TB) func(from, to int, addr string) string {
	return func(from, to int, addr string) string {
		server, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		// Incoming is from the dialling node (the proxy's client) to the
		// other; outgoing is the answer.
		link := func(dir quicproxy.Direction) (int, int) {
			if dir == quicproxy.DirectionIncoming {
				return from, to
			}
			return to, from
		}
		// The proxy asks DropPacket, then DelayPacket, of each packet in
		// one goroutine; the verdict passes between them here.
		var mu sync.Mutex
		pending := map[quicproxy.Direction]time.Duration{}
		p := &quicproxy.Proxy{
			Conn:       conn,
			ServerAddr: server,
			DropPacket: func(dir quicproxy.Direction, _, _ net.Addr, pkt []byte) bool {
				s, d := link(dir)
				delay, ok := e.admit(s, d, len(pkt))
				mu.Lock()
				pending[dir] = delay
				mu.Unlock()
				return !ok
			},
			DelayPacket: func(dir quicproxy.Direction, _, _ net.Addr, _ []byte) time.Duration {
				mu.Lock()
				defer mu.Unlock()
				return pending[dir]
			},
		}
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = p.Close()
			_ = conn.Close()
		})
		return p.LocalAddr().String()
	}
}

// dirtier sends the dirty fixture events that write to ratePages pages
// per second, to wherever the daemon lives, from a goroutine; it keeps
// count of the events applied so the benchmark can check none was lost
// or applied twice.
type dirtier struct {
	c         *drivertest.Cluster
	origin    uint64
	ratePages float64
	stop      chan struct{}
	done      chan error
	events    atomic.Int64
	pages     atomic.Int64
}

func (w *dirtier) start() {
	w.stop, w.done = make(chan struct{}), make(chan error, 1)
	if w.ratePages == 0 {
		w.done <- nil
		return
	}
	go func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		began := time.Now()
		var sent int64
		for seq := uint64(1); ; seq++ {
			select {
			case <-w.stop:
				w.done <- nil
				return
			case <-t.C:
			}
			// Behind schedule (an event waited out a freeze), the next
			// event catches up: the rate holds over time.
			k := int64(w.ratePages*time.Since(began).Seconds()) - sent
			if k <= 0 {
				continue
			}
			k = min(k, 4096)
			via := w.c.Nodes[0]
			for _, n := range w.c.Nodes {
				if _, err := n.RT.Daemon(w.origin); err == nil {
					via = n
					break
				}
			}
			if _, err := drivertest.Send(context.Background(), via, w.origin,
				engine.Event{Sender: 42, Seq: seq, Payload: dirtyPayload(uint32(k))}); err != nil {
				w.done <- fmt.Errorf("dirty event %d: %w", seq, err)
				return
			}
			sent += k
			w.events.Add(1)
			w.pages.Add(k)
		}
	}()
}

func (w *dirtier) finish() error {
	close(w.stop)
	return <-w.done
}

// BenchmarkMigrationNetwork moves a daemon holding 64 MiB of
// incompressible live state back and forth between two nodes whose QUIC
// traffic goes through an emulated network (RTT × bandwidth), while a
// driver makes it dirty pages at a set rate; loopback without a proxy is
// the baseline of the same run. Per migration: total-ms (from the start
// of the pre-copy to the handover), pause-ms (frozen to handed over) as
// the p50 and p99 of the run's migrations, MB-sent (base, rounds and
// the final delta as they went on the wire), rounds and the
// share of migrations whose rounds converged. The table in
// docs/NETWORK_MIGRATION.md comes from:
//
//	go test ./internal/migration/driver -run '^$' -bench BenchmarkMigrationNetwork -benchtime 3x -timeout 30m
func BenchmarkMigrationNetwork(b *testing.B) {
	const size = 64 << 20
	nets := []struct {
		name string
		rtt  time.Duration
		bps  float64
	}{
		{"loopback", 0, 0},
		{"rtt1ms-1Gbit", time.Millisecond, 1e9},
		{"rtt1ms-100Mbit", time.Millisecond, 100e6},
		{"rtt10ms-1Gbit", 10 * time.Millisecond, 1e9},
		{"rtt10ms-100Mbit", 10 * time.Millisecond, 100e6},
	}
	rates := []struct {
		name  string
		bytes float64 // dirtied per second
	}{
		{"idle", 0},
		{"dirty4MiBps", 4 << 20},
		{"dirty32MiBps", 32 << 20},
	}
	for _, nw := range nets {
		for _, rate := range rates {
			b.Run(nw.name+"/"+rate.name, func(b *testing.B) {
				opts := drivertest.Options{Migrator: driver.Config{Timing: protocol.DefaultTiming()}}
				var em *netem
				if nw.rtt > 0 || nw.bps > 0 {
					em = newNetem(nw.rtt, nw.bps)
					opts.PeerAddr = em.peerAddr(b)
				}
				c := drivertest.NewOpts(b, 2, opts)
				warmUp(b, c)
				d := dirtyDaemonB(b, c.Nodes[0], size)
				w := &dirtier{c: c, origin: d.Origin(), ratePages: rate.bytes / 65536}
				w.start()
				var pauses []time.Duration
				var total time.Duration
				var sent, rounds, converged int
				from, to := c.Nodes[0], c.Nodes[1]
				began := time.Now()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					h, err := from.Mig.StartMigrationWith(context.Background(), d.Origin(), from.ID, to.ID, driver.DefaultOptions())
					if err != nil {
						b.Fatal(err)
					}
					if err := h.WaitTimeout(5 * time.Minute); err != nil {
						b.Fatal(err)
					}
					st := h.Stats()
					if !st.PreCopied {
						b.Fatalf("migration %d was not pre-copied", i)
					}
					if testing.Verbose() {
						b.Logf("migration %d: total %v, pause %v, attempts %d, rounds %d %v, final delta %d bytes, %d events buffered",
							i, h.Duration(), st.Pause, h.Attempt(), st.Rounds, st.PreCopyBytes, st.WireBytes, st.EventsBuffered)
					}
					pauses = append(pauses, st.Pause)
					total += h.Duration()
					sent += st.WireBytes
					for _, n := range st.PreCopyBytes {
						sent += n
					}
					rounds += st.Rounds
					if st.Converged {
						converged++
					}
					from, to = to, from
				}
				b.StopTimer()
				elapsed := time.Since(began)
				if err := w.finish(); err != nil {
					b.Fatal(err)
				}
				// Every dirty event applied exactly once: the count the
				// daemon keeps is theirs, plus this "get".
				outs, err := drivertest.Send(context.Background(), from, d.Origin(), engine.Event{Sender: 43, Seq: 1, Payload: []byte("get")})
				if err != nil || len(outs) != 1 {
					b.Fatalf("get: %v %v", outs, err)
				}
				if got, want := string(outs[0].Payload), strconv.FormatInt(w.events.Load()+1, 10); got != want {
					b.Fatalf("count %s after %s events and a get: an event was lost or applied twice", got, want)
				}
				slices.Sort(pauses)
				n := float64(b.N)
				b.ReportMetric(float64(total.Microseconds())/1000/n, "total-ms")
				b.ReportMetric(float64(pauses[len(pauses)/2].Microseconds())/1000, "pause-p50-ms")
				// Nearest rank: with fewer than 100 migrations, p99 is the
				// longest pause of the run.
				p99 := pauses[(len(pauses)*99+99)/100-1]
				b.ReportMetric(float64(p99.Microseconds())/1000, "pause-p99-ms")
				b.ReportMetric(float64(sent)/1e6/n, "MB-sent")
				b.ReportMetric(float64(rounds)/n, "rounds")
				b.ReportMetric(float64(converged)/n, "converged")
				b.ReportMetric(float64(w.pages.Load())*65536/(1<<20)/elapsed.Seconds(), "dirty-MiB/s")
				if em != nil {
					b.ReportMetric(float64(em.dropped.Load())/n, "drops")
				}
			})
		}
	}
}

// warmUp opens the connections both ways (a QUIC handshake through the
// proxy is not part of a migration's cost) by moving a small daemon there
// and back.
func warmUp(b *testing.B, c *drivertest.Cluster) {
	k, err := c.Nodes[0].RT.RegisterModule(context.Background(), counterModule(b), "")
	if err != nil {
		b.Fatal(err)
	}
	d, err := c.Nodes[0].RT.Spawn(context.Background(), string(k.Digest), newIdentity(b), engine.SpawnOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range [][2]*drivertest.Node{{c.Nodes[0], c.Nodes[1]}, {c.Nodes[1], c.Nodes[0]}} {
		h, err := p[0].Mig.StartMigration(context.Background(), d.Origin(), p[0].ID, p[1].ID)
		if err != nil {
			b.Fatal(err)
		}
		if err := h.WaitTimeout(time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Nodes[0].RT.Stop(context.Background(), d.Origin()); err != nil {
		b.Fatal(err)
	}
}

func dirtyDaemonB(b *testing.B, n *testNode, size int) *engine.Daemon {
	k, err := n.RT.RegisterModule(context.Background(), fixtureBytes(b, "testdata", "dirty.wasm"), "")
	if err != nil {
		b.Fatal(err)
	}
	d, err := n.RT.Spawn(context.Background(), string(k.Digest), newIdentity(b), engine.SpawnOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var p [4]byte
	binary.LittleEndian.PutUint32(p[:], uint32(size))
	if _, err := d.Deliver(context.Background(), engine.Event{Payload: p[:]}); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkPauseUnderLoad: the pause (frozen to handed over) of a daemon
// holding 64 MiB of incompressible state as it moves between two nodes
// over real QUIC on loopback, alone and beside 100 small daemons'
// migrations between the same two nodes, in the same run. Each iteration
// moves the big daemon there and back in each of these settings; the
// metrics are the medians of the pauses and their ratios to alone's:
//   - burst (pause-burst-ms, ratio-burst): the 100 small migrations start,
//     to the same peer, as the big one's handover starts (its pre-copy
//     done), so they overlap its pause — a drain's situation;
//     burst-apart-ms (ratio-burst-apart): the same burst between two other
//     nodes, sharing only the CPU;
//   - loaded (pause-loaded-ms, ratio; the goal is ≤ 1.5): each
//     small daemon always has a migration in flight, back and forth, for
//     as long as the big one moves (small-moves: how many completed
//     meanwhile); this keeps the CPU busy;
//   - apart (pause-apart-ms, ratio-apart): that same load between two
//     other nodes of the process, sharing only the CPU with the big
//     migration, not its migrators, connection or streams: what loaded
//     has over apart is the cost of sharing those.
//
// Run with:
//
//	go test ./internal/migration/driver -run '^$' -bench BenchmarkPauseUnderLoad -benchtime 1x -count 3
func BenchmarkPauseUnderLoad(b *testing.B) {
	const size, smalls = 64 << 20, 100
	c := drivertest.NewOpts(b, 4, drivertest.Options{Migrator: driver.Config{Timing: protocol.DefaultTiming()}})
	warmUp(b, c)
	n0, n1 := c.Nodes[0], c.Nodes[1]
	big := dirtyDaemonB(b, n0, size)
	ld := newSmallLoad(b, n0, n1, smalls)
	apart := newSmallLoad(b, c.Nodes[2], c.Nodes[3], smalls)
	// move moves the big daemon; then, when set, runs as its handover
	// starts (StartMigrationWith returns after the pre-copy).
	move := func(from, to *testNode, then ...func()) time.Duration {
		h, err := from.Mig.StartMigrationWith(context.Background(), big.Origin(), from.ID, to.ID, driver.DefaultOptions())
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range then {
			f()
		}
		if err := h.WaitTimeout(5 * time.Minute); err != nil {
			b.Fatal(err)
		}
		st := h.Stats()
		if !st.PreCopied {
			b.Fatal("the big daemon was not pre-copied")
		}
		if testing.Verbose() {
			b.Logf("big %016x %s→%s: total %v, pause %v, rounds %d %v, delta %d bytes", h.ID(), from.ID[:8], to.ID[:8], h.Duration(), st.Pause, st.Rounds, st.PreCopyBytes, st.SnapshotBytes)
		}
		return st.Pause
	}
	withBurst := func(from, to *testNode, l *smallLoad, fromIdx int) time.Duration {
		var wait func() error
		p := move(from, to, func() { wait = l.burst(fromIdx) })
		if err := wait(); err != nil {
			b.Fatal(err)
		}
		return p
	}
	var alone, burst, burstAway, loaded, away []time.Duration
	var during int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		alone = append(alone, move(n0, n1), move(n1, n0))
		// The small daemons are all on n0 here.
		burst = append(burst, withBurst(n0, n1, ld, 0), withBurst(n1, n0, ld, 1))
		burstAway = append(burstAway, withBurst(n0, n1, apart, 0), withBurst(n1, n0, apart, 1))
		ld.start()
		before := ld.moved.Load()
		loaded = append(loaded, move(n0, n1), move(n1, n0))
		during += ld.moved.Load() - before
		if err := ld.stop(); err != nil {
			b.Fatal(err)
		}
		if err := ld.burst(1)(); err != nil {
			b.Fatal(err)
		}
		apart.start()
		away = append(away, move(n0, n1), move(n1, n0))
		if err := apart.stop(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	med := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	a, u, ua, l, w := med(alone), med(burst), med(burstAway), med(loaded), med(away)
	if testing.Verbose() {
		b.Logf("pauses alone %v, burst %v, burst apart %v, loaded %v, load apart %v", alone, burst, burstAway, loaded, away)
	}
	b.ReportMetric(a, "pause-alone-ms")
	b.ReportMetric(u, "pause-burst-ms")
	b.ReportMetric(u/a, "ratio-burst")
	b.ReportMetric(ua, "burst-apart-ms")
	b.ReportMetric(ua/a, "ratio-burst-apart")
	b.ReportMetric(l, "pause-loaded-ms")
	b.ReportMetric(l/a, "ratio")
	b.ReportMetric(w, "pause-apart-ms")
	b.ReportMetric(w/a, "ratio-apart")
	b.ReportMetric(float64(during)/float64(b.N), "small-moves")
}

// smallLoad keeps one migration in flight for each of its daemons,
// back and forth between two nodes.
type smallLoad struct {
	nodes   [2]*testNode
	origins []uint64
	at      []int // index in nodes of the node each daemon is on
	moved   atomic.Int64
	halt    chan struct{}
	wg      sync.WaitGroup
	errs    chan error
}

// newSmallLoad spawns n counter daemons on x, to move between x and y.
func newSmallLoad(b *testing.B, x, y *testNode, n int) *smallLoad {
	k, err := x.RT.RegisterModule(context.Background(), counterModule(b), "")
	if err != nil {
		b.Fatal(err)
	}
	l := &smallLoad{nodes: [2]*testNode{x, y}}
	for i := 0; i < n; i++ {
		d, err := x.RT.Spawn(context.Background(), string(k.Digest), newIdentity(b), engine.SpawnOptions{})
		if err != nil {
			b.Fatal(err)
		}
		l.origins = append(l.origins, d.Origin())
		l.at = append(l.at, 0)
	}
	return l
}

// burst starts, at once, one migration of every daemon on nodes[from] to
// the other node, and returns a wait for them.
func (l *smallLoad) burst(from int) (wait func() error) {
	var wg sync.WaitGroup
	errs := make(chan error, len(l.origins))
	for i := range l.origins {
		if l.at[i] != from {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			src, dst := l.nodes[from], l.nodes[1-from]
			h, err := src.Mig.StartMigration(context.Background(), l.origins[i], src.ID, dst.ID)
			if err == nil {
				err = h.WaitTimeout(time.Minute)
			}
			if err != nil {
				errs <- fmt.Errorf("small daemon %016x: %w", l.origins[i], err)
				return
			}
			l.at[i] = 1 - from
		}()
	}
	return func() error {
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
			return nil
		}
	}
}

// start returns once every daemon has completed one migration, so the
// load is in full swing.
func (l *smallLoad) start() {
	l.halt, l.errs = make(chan struct{}), make(chan error, len(l.origins))
	var first sync.WaitGroup
	first.Add(len(l.origins))
	for i := range l.origins {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			once := sync.OnceFunc(first.Done)
			defer once()
			for {
				from, to := l.nodes[l.at[i]], l.nodes[1-l.at[i]]
				h, err := from.Mig.StartMigration(context.Background(), l.origins[i], from.ID, to.ID)
				if err == nil {
					err = h.WaitTimeout(time.Minute)
				}
				if err != nil {
					l.errs <- fmt.Errorf("small daemon %016x %s→%s: %w", l.origins[i], from.ID, to.ID, err)
					return
				}
				l.at[i] = 1 - l.at[i]
				l.moved.Add(1)
				once()
				select {
				case <-l.halt:
					return
				default:
				}
			}
		}()
	}
	first.Wait()
}

func (l *smallLoad) stop() error {
	close(l.halt)
	l.wg.Wait()
	select {
	case err := <-l.errs:
		return err
	default:
		return nil
	}
}
