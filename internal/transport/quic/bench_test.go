package meshquic

import (
	"bytes"
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// reportP50 records the median of per-op durations alongside ns/op.
func reportP50(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "p50-ns")
}

func BenchmarkRemoteDeliver(b *testing.B) {
	ca := newCA(b)
	a, srv := newEndpoint(b, ca), newEndpoint(b, ca)
	ops := newFakeOps()
	ops.hosted[7] = true
	srv.ServeLocalOps(ops)
	a.SetPeerAddr(srv.ID(), srv.Addr().String())
	ctx := context.Background()
	req := DeliverRequest{Event: Event{Target: 7, Sender: 1, Seq: 1, Payload: bytes.Repeat([]byte{'x'}, 100)}}
	if _, err := a.RemoteDeliver(ctx, srv.ID(), req); err != nil {
		b.Fatal(err)
	}
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := a.RemoteDeliver(ctx, srv.ID(), req); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	reportP50(b, durs)
}

// BenchmarkBareQUICRoundTrip is the baseline: the same mutual-TLS quic-go
// connection, a stream per request, 100 bytes each way, no framing, msgpack
// or dispatch.
func BenchmarkBareQUICRoundTrip(b *testing.B) {
	ca := newCA(b)
	cs, cc := creds(b, ca), creds(b, ca)
	qconf := &quic.Config{MaxIdleTimeout: 5 * time.Second, KeepAlivePeriod: time.Second}
	ln, err := quic.ListenAddr("127.0.0.1:0", serverTLS(cs), qconf)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 100)
				for {
					s, err := conn.AcceptStream(context.Background())
					if err != nil {
						return
					}
					if _, err := io.ReadFull(s, buf); err != nil {
						return
					}
					s.Write(buf)
					s.Close()
				}
			}()
		}
	}()
	conn, err := quic.DialAddr(context.Background(), ln.Addr().String(), clientTLS(cc), qconf)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	payload := bytes.Repeat([]byte{'x'}, 100)
	buf := make([]byte, 101)
	rt := func() {
		s, err := conn.OpenStreamSync(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		s.Write(payload)
		s.Close()
		n, err := io.ReadFull(s, buf[:100])
		if err != nil || n != 100 {
			b.Fatal(err)
		}
		if _, err := s.Read(buf[100:]); err != io.EOF {
			b.Fatal("want EOF", err)
		}
	}
	rt()
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		rt()
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	reportP50(b, durs)
}

func BenchmarkFetchModule2MB(b *testing.B) {
	ca := newCA(b)
	a, srv := newEndpoint(b, ca), newEndpoint(b, ca)
	ops := newFakeOps()
	mod := bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16)
	d := digestOf(mod)
	ops.modules[d] = mod
	srv.ServeLocalOps(ops)
	p := PeerAddr(srv.Addr().String())
	ctx := context.Background()
	b.SetBytes(int64(len(mod)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		got, err := a.FetchModule(ctx, p, d)
		if err != nil || len(got) != len(mod) {
			b.Fatal(err)
		}
	}
}
