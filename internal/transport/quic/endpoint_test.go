package meshquic

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

func TestMutualAuthAndPeerID(t *testing.T) {
	ca := newCA(t)
	a, b := newEndpoint(t, ca), newEndpoint(t, ca)
	handleEcho(b, nil)
	ctx := ctxTimeout(t, 5*time.Second)

	var got echo
	if err := a.Call(ctx, PeerAddr(b.Addr().String()), "test/echo", echo{Msg: "hi"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Msg != "hi" || got.From != a.ID().String() {
		t.Fatalf("got %+v, want echo of hi from %s", got, a.ID())
	}

	// By node id through the address book.
	a.SetPeerAddr(b.ID(), b.Addr().String())
	if err := a.Call(ctx, PeerID(b.ID()), "test/echo", echo{Msg: "again"}, &got); err != nil || got.Msg != "again" {
		t.Fatalf("call by id: %v %+v", err, got)
	}
	// An id the address book does not know.
	wantErr(t, a.Call(ctx, PeerID(nodekey.NodeID{1}), "test/echo", echo{}, &got), ErrUnknownPeer)
	// The member at an address is not the node we meant.
	wrong := nodekey.NodeID{9}
	a.SetPeerAddr(wrong, b.Addr().String())
	wantErr(t, a.Call(ctx, PeerID(wrong), "test/echo", echo{}, &got), ErrPeerUnavailable)
	// Unknown subprotocol comes back typed.
	wantErr(t, a.Call(ctx, PeerID(b.ID()), "test/nope", echo{}, nil), ErrUnknownSubprotocol, ErrRemote)
}

func TestConnectionReuse(t *testing.T) {
	ca := newCA(t)
	a, b := newEndpoint(t, ca), newEndpoint(t, ca)
	handleEcho(b, nil)
	ctx := ctxTimeout(t, 5*time.Second)
	p := PeerAddr(b.Addr().String())
	for range 20 {
		if err := a.Call(ctx, p, "test/echo", echo{Msg: "x"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	b.pmu.Lock()
	n := len(b.inbound)
	b.pmu.Unlock()
	if n != 1 {
		t.Fatalf("b has %d inbound connections after 20 calls, want 1", n)
	}
}

func TestOutsiderRefusedBeforeAnyFrame(t *testing.T) {
	ca := newCA(t)
	member := newEndpoint(t, ca)
	var ran atomic.Int64
	handleEcho(member, &ran)
	// A perfectly valid certificate, from another cluster's CA.
	outsider := newEndpoint(t, newCA(t))
	handleEcho(outsider, &ran)
	ctx := ctxTimeout(t, 5*time.Second)

	err := outsider.Call(ctx, PeerAddr(member.Addr().String()), "test/echo", echo{Msg: "let me in"}, nil)
	wantErr(t, err, ErrUnauthenticated)
	// And the other way round: a member refuses a non-member server.
	err = member.Call(ctx, PeerAddr(outsider.Addr().String()), "test/echo", echo{}, nil)
	wantErr(t, err, ErrUnauthenticated)
	// Give any stray stream time to be (wrongly) served.
	time.Sleep(100 * time.Millisecond)
	if n := ran.Load(); n != 0 {
		t.Fatalf("handler ran %d times for a non-member", n)
	}
	member.pmu.Lock()
	n := len(member.inbound)
	member.pmu.Unlock()
	if n != 0 {
		t.Fatalf("member accepted %d connections from a non-member", n)
	}
}

func TestFrameCaps(t *testing.T) {
	ca := newCA(t)
	a := newEndpoint(t, ca)
	cfg := testConfig(creds(t, ca))
	cfg.MaxFrame = 1 << 10
	b := listen(t, cfg)
	var ran atomic.Int64
	handleEcho(b, &ran)
	handleEcho(a, &ran)
	ctx := ctxTimeout(t, 5*time.Second)

	// The receiver's cap: b refuses a 64 KiB request and says why.
	big := echo{Msg: strings.Repeat("x", 64<<10)}
	err := a.Call(ctx, PeerAddr(b.Addr().String()), "test/echo", big, nil)
	wantErr(t, err, ErrFrameTooLarge, ErrRemote)
	// The sender's cap: b will not even send it.
	err = b.Call(ctx, PeerAddr(a.Addr().String()), "test/echo", big, nil)
	wantErr(t, err, ErrFrameTooLarge)
	if errors.Is(err, ErrRemote) {
		t.Fatalf("local cap reported as remote: %v", err)
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("handler ran %d times for oversize frames", n)
	}
	// Small requests still work on the same connection.
	if err := a.Call(ctx, PeerAddr(b.Addr().String()), "test/echo", echo{Msg: "ok"}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestPeerGoneFailsFastThenReconnects(t *testing.T) {
	ca := newCA(t)
	a := newEndpoint(t, ca)
	bcfg := testConfig(creds(t, ca))
	b := listen(t, bcfg)
	handleEcho(b, nil)
	addr := b.Addr().String()
	a.SetPeerAddr(b.ID(), addr)
	ctx := ctxTimeout(t, 10*time.Second)
	if err := a.Call(ctx, PeerID(b.ID()), "test/echo", echo{}, nil); err != nil {
		t.Fatal(err)
	}
	b.Close()

	for i := range 3 {
		start := time.Now()
		err := a.Call(ctx, PeerID(b.ID()), "test/echo", echo{}, nil)
		wantErr(t, err, ErrPeerUnavailable)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("call %d to a gone peer took %v", i, d)
		}
	}

	// The peer comes back on the same address with the same key.
	bcfg.Addr = addr
	b2 := listen(t, bcfg)
	handleEcho(b2, nil)
	deadline := time.Now().Add(3 * time.Second)
	for {
		err := a.Call(ctx, PeerID(b.ID()), "test/echo", echo{Msg: "back"}, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrPeerUnavailable) || time.Now().After(deadline) {
			t.Fatalf("no reconnection: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUnreachablePeerBacksOff(t *testing.T) {
	ca := newCA(t)
	a := newEndpoint(t, ca)
	// A bound UDP port nobody answers on.
	silent := newEndpoint(t, ca)
	addr := silent.Addr().String()
	silent.Close()
	ctx := ctxTimeout(t, 5*time.Second)

	start := time.Now()
	err := a.Call(ctx, PeerAddr(addr), "test/echo", echo{}, nil)
	wantErr(t, err, ErrPeerUnavailable)
	// The dial gave up on its own DialTimeout, not on the caller's 5 s.
	if ctx.Err() != nil {
		t.Fatalf("the first dial ran into the caller's deadline (%v): DialTimeout is 500ms", time.Since(start))
	}
	// Inside the backoff window the next call does not dial at all: a dial
	// to a silent port takes the whole DialTimeout (500ms), failing fast
	// takes next to nothing, so anything under the timeout proves it (a
	// generous bound: the machine may be busy).
	start = time.Now()
	err = a.Call(ctx, PeerAddr(addr), "test/echo", echo{}, nil)
	wantErr(t, err, ErrPeerUnavailable)
	if d := time.Since(start); d >= 500*time.Millisecond {
		t.Fatalf("call during backoff took %v: it dialed", d)
	}
}

func TestContextCancel(t *testing.T) {
	ca := newCA(t)
	a, b := newEndpoint(t, ca), newEndpoint(t, ca)
	handlerSawCancel := make(chan struct{})
	b.Handle("test/block", func(ctx context.Context, s *Stream) error {
		<-ctx.Done()
		close(handlerSawCancel)
		return ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := a.Call(ctx, PeerAddr(b.Addr().String()), "test/block", echo{}, nil)
	wantErr(t, err, context.Canceled)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancelled call returned after %v", d)
	}
	select {
	case <-handlerSawCancel:
	case <-time.After(2 * time.Second):
		t.Fatal("handler context was not cancelled when the caller gave up")
	}

	// A deadline maps to ErrTimeout as well as DeadlineExceeded.
	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	err = a.Call(dctx, PeerAddr(b.Addr().String()), "test/block", echo{}, nil)
	wantErr(t, err, ErrTimeout, context.DeadlineExceeded)
}

func TestStreamingSubprotocol(t *testing.T) {
	ca := newCA(t)
	a, b := newEndpoint(t, ca), newEndpoint(t, ca)
	// Sums numbers until the caller closes its side, then answers once.
	b.Handle("test/sum", func(ctx context.Context, s *Stream) error {
		var sum, n int
		for {
			err := s.Recv(&n)
			if errors.Is(err, io.EOF) {
				return s.Send(sum)
			}
			if err != nil {
				return err
			}
			sum += n
		}
	})
	ctx := ctxTimeout(t, 5*time.Second)
	s, err := a.OpenStream(ctx, PeerAddr(b.Addr().String()), "test/sum")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Peer() != b.ID() {
		t.Fatalf("stream peer %s, want %s", s.Peer(), b.ID())
	}
	for i := 1; i <= 100; i++ {
		if err := s.Send(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := s.Recv(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != 5050 {
		t.Fatalf("sum %d, want 5050", sum)
	}
	if err := s.Recv(&sum); !errors.Is(err, io.EOF) {
		t.Fatalf("after the answer: %v, want EOF", err)
	}
}

func TestHandlerPanicIsContained(t *testing.T) {
	ca := newCA(t)
	a, b := newEndpoint(t, ca), newEndpoint(t, ca)
	b.Handle("test/panic", func(ctx context.Context, s *Stream) error { panic("boom") })
	handleEcho(b, nil)
	ctx := ctxTimeout(t, 5*time.Second)
	p := PeerAddr(b.Addr().String())
	var re *RemoteError
	if err := a.Call(ctx, p, "test/panic", echo{}, nil); !errors.As(err, &re) || re.Code != CodeInternal {
		t.Fatalf("panic answered with %v, want internal RemoteError", err)
	}
	if err := a.Call(ctx, p, "test/echo", echo{}, nil); err != nil {
		t.Fatalf("endpoint unusable after a handler panic: %v", err)
	}
}
