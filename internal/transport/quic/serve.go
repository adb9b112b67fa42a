package meshquic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/quic-go/quic-go"
)

// StreamHandler serves one stream of a subprotocol. It may Recv and Send any
// number of frames. A non-nil error is sent to the caller as an error frame
// (see Coder and the Code* constants for how it is classified); the stream
// is closed when the handler returns. ctx is cancelled when the connection
// or the endpoint closes.
type StreamHandler func(ctx context.Context, s *Stream) error

// Unary adapts a request/response function to a StreamHandler: it reads
// exactly one request frame, calls f, and answers with one frame.
func Unary[Req, Resp any](f func(ctx context.Context, peer NodeID, req Req) (Resp, error)) StreamHandler {
	return func(ctx context.Context, s *Stream) error {
		var req Req
		if err := s.Recv(&req); err != nil {
			return err
		}
		if err := s.expectEOF(); err != nil {
			return err
		}
		resp, err := f(ctx, s.Peer(), req)
		if err != nil {
			return err
		}
		return s.Send(resp)
	}
}

func (e *Endpoint) acceptLoop() {
	defer e.wg.Done()
	for {
		conn, err := e.ln.Accept(e.ctx)
		if err != nil {
			// Accept fails only when the listener or endpoint closes.
			return
		}
		// The handshake already verified the peer (serverTLS); a
		// connection only reaches Accept once that succeeded.
		peer, err := peerID(conn.ConnectionState().TLS)
		if err != nil {
			e.reject.reject(RejectUnauthenticated, conn.RemoteAddr().String())
			_ = conn.CloseWithError(0, "unauthenticated")
			continue
		}
		e.pmu.Lock()
		if e.closed {
			e.pmu.Unlock()
			_ = conn.CloseWithError(appCodeShutdown, "shutting down")
			return
		}
		e.inbound[conn] = struct{}{}
		e.pmu.Unlock()
		e.wg.Add(1)
		go e.serveConn(conn, peer)
	}
}

func (e *Endpoint) serveConn(conn *quic.Conn, peer NodeID) {
	defer e.wg.Done()
	defer func() {
		e.pmu.Lock()
		delete(e.inbound, conn)
		e.pmu.Unlock()
	}()
	log := e.cfg.Logger.With("peer", peer.String(), "remote", conn.RemoteAddr().String())
	log.Debug("mesh peer connected")
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	stop := context.AfterFunc(conn.Context(), cancel)
	defer stop()
	for {
		qs, err := conn.AcceptStream(ctx)
		if err != nil {
			log.Debug("mesh peer disconnected", "cause", context.Cause(conn.Context()))
			return
		}
		e.wg.Add(1)
		go e.serveStream(ctx, peer, qs)
	}
}

func (e *Endpoint) serveStream(ctx context.Context, peer NodeID, qs *quic.Stream) {
	defer e.wg.Done()
	s := newStream(qs, peer, e.cfg.MaxFrame)
	defer s.finish()
	// A peer must name the subprotocol promptly; after that the handler
	// owns timing.
	_ = qs.SetReadDeadline(time.Now().Add(e.cfg.HeaderTimeout))
	var h header
	if err := s.recvKind(kindHeader, &h); err != nil {
		if !errors.Is(err, io.EOF) {
			_ = s.SendError(err)
		}
		return
	}
	_ = qs.SetReadDeadline(time.Time{})
	s.sub = h.Subprotocol
	handler := e.handler(h.Subprotocol)
	if handler == nil {
		_ = s.SendError(fmt.Errorf("%w: %q", ErrUnknownSubprotocol, h.Subprotocol))
		return
	}
	// The handler's context also ends when the caller gives up on the
	// stream (reset / stop-sending), so abandoned work stops.
	ctx, cancel := context.WithCancelCause(withPeer(ctx, peer))
	defer cancel(nil)
	stop := context.AfterFunc(qs.Context(), func() {
		if cause := context.Cause(qs.Context()); !errors.Is(cause, quic.ErrStreamClosed) {
			cancel(fmt.Errorf("%w: caller abandoned the request: %w", ErrRemote, cause))
		}
	})
	defer stop()
	if err := e.runHandler(ctx, handler, s); err != nil {
		_ = s.SendError(err)
	}
}

// runHandler turns a handler panic into an internal error for that one
// request: a bug in one subprotocol must not take the node off the mesh.
func (e *Endpoint) runHandler(ctx context.Context, h StreamHandler, s *Stream) (err error) {
	defer func() {
		if r := recover(); r != nil {
			e.cfg.Logger.Error("mesh handler panicked", "subprotocol", s.sub, "peer", s.peer.String(),
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("handler for %q failed", s.sub)
		}
	}()
	return h(ctx, s)
}
