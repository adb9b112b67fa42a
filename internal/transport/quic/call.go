package meshquic

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// OpenStream opens a stream to p for a streaming subprotocol and sends its
// header. The caller must Close the stream. ctx bounds the whole stream:
// cancelling it aborts the stream.
func (e *Endpoint) OpenStream(ctx context.Context, p Peer, sub string) (*Stream, error) {
	s, err := e.open(ctx, p, sub)
	if err != nil {
		return nil, err
	}
	if err := s.send(kindHeader, header{Subprotocol: sub, RequestID: e.reqID.Add(1)}); err != nil {
		s.Abort()
		return nil, err
	}
	return s, nil
}

// open connects and opens a raw stream whose reads and writes fail once ctx
// is done; finish unregisters the cancellation hook.
func (e *Endpoint) open(ctx context.Context, p Peer, sub string) (*Stream, error) {
	conn, id, err := e.conn(ctx, p)
	if err != nil {
		return nil, err
	}
	qs, err := conn.OpenStreamSync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxErr(ctx)
		}
		return nil, mapQUICErr(err)
	}
	s := newStream(qs, id, e.cfg.MaxFrame)
	s.sub = sub
	s.ctx = ctx
	if dl, ok := ctx.Deadline(); ok {
		_ = qs.SetDeadline(dl)
	}
	s.stop = context.AfterFunc(ctx, s.Abort)
	return s, nil
}

// Call sends req to p's handler for sub and decodes the single response
// frame into resp (a pointer; nil to discard). Errors: ErrPeerUnavailable,
// ErrUnauthenticated, ErrUnknownPeer, ErrTimeout/context errors, and the
// peer's failure as *RemoteError or *MovedError.
func (e *Endpoint) Call(ctx context.Context, p Peer, sub string, req, resp any) error {
	s, err := e.open(ctx, p, sub)
	if err != nil {
		return err
	}
	defer s.finish()
	// Header and request go out in one write (and usually one packet).
	b, err := appendFrame(s.wbuf[:0], kindHeader, header{Subprotocol: sub, RequestID: e.reqID.Add(1)}, e.cfg.MaxFrame)
	if err == nil {
		b, err = appendFrame(b, kindData, req, e.cfg.MaxFrame)
	}
	if err != nil {
		s.Abort()
		return err
	}
	s.wbuf = b
	_, werr := s.qs.Write(b)
	if werr == nil {
		werr = s.qs.Close()
	}
	// Even if the write failed, the peer may have explained why (e.g. our
	// frame exceeded its limit) before refusing the rest: prefer that.
	var sink struct{}
	if resp == nil {
		resp = &sink
	}
	rerr := s.Recv(resp)
	if werr != nil && (rerr == nil || !isPeerVerdict(rerr)) {
		return s.mapErr(werr)
	}
	if rerr != nil {
		if errors.Is(rerr, io.EOF) {
			return fmt.Errorf("%w: peer closed the stream without a reply", ErrMalformed)
		}
		return rerr
	}
	return s.expectEOF()
}

// isPeerVerdict reports whether err came from the peer's error frame.
func isPeerVerdict(err error) bool {
	var re *RemoteError
	var me *MovedError
	return errors.As(err, &re) || errors.As(err, &me)
}
