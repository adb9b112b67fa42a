package netfault

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRelay measures what the relay itself can carry one way (1200-byte
// datagrams, a sink behind it), with no fault and with a 0.5 ms delay (the
// delayed path goes through the per-link queue and timer). Its MB/s is the
// ceiling of any bandwidth a test asks the proxy for.
func BenchmarkRelay(b *testing.B) {
	for _, tc := range []struct {
		name string
		f    Faults
	}{
		{"direct", Faults{}},
		{"delay-0.5ms", Both(Link{Delay: 500 * time.Microsecond})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			_ = sink.SetReadBuffer(4 << 20)
			var got atomic.Int64
			go func() {
				buf := make([]byte, maxPacket)
				for {
					if _, err := sink.Read(buf); err != nil {
						return
					}
					got.Add(1)
				}
			}()
			p, err := New(Options{Target: sink.LocalAddr().String(), Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			if err := p.Set(tc.f); err != nil {
				b.Fatal(err)
			}
			ua, _ := net.ResolveUDPAddr("udp", p.Addr())
			c, err := net.DialUDP("udp", nil, ua)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			pkt := make([]byte, 1200)
			b.SetBytes(int64(len(pkt)))
			b.ResetTimer()
			for i := range b.N {
				_, _ = c.Write(pkt)
				if i%64 == 63 {
					// Let the relay keep up: the figure is what it carries,
					// not what the kernel drops in front of it.
					for got.Load() < int64(i-256) {
						time.Sleep(10 * time.Microsecond)
					}
				}
			}
			deadline := time.Now().Add(500 * time.Millisecond)
			for got.Load() < int64(b.N) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N-int(got.Load()))/float64(b.N)*100, "%lost")
		})
	}
}
