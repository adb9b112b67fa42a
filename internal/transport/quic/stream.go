package meshquic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/quic-go/quic-go"
)

// Stream is one request's bidirectional stream, framed. The caller side gets
// it from OpenStream, the serving side in its StreamHandler. A Stream is not
// safe for concurrent Sends or concurrent Recvs, but one goroutine may Send
// while another Recvs.
type Stream struct {
	qs       *quic.Stream
	peer     NodeID
	sub      string
	maxFrame int
	rbuf     []byte
	wbuf     []byte
	// ctx, when set (caller side), explains local cancellations.
	ctx context.Context
	// stop unregisters the caller side's cancellation hook.
	stop func() bool
}

func newStream(qs *quic.Stream, peer NodeID, maxFrame int) *Stream {
	return &Stream{qs: qs, peer: peer, maxFrame: maxFrame}
}

// Peer is the authenticated node at the other end.
func (s *Stream) Peer() NodeID { return s.peer }

// Subprotocol is the stream's subprotocol.
func (s *Stream) Subprotocol() string { return s.sub }

// Send writes v as one data frame.
func (s *Stream) Send(v any) error { return s.send(kindData, v) }

// SendError writes err as an error frame; the other side's Recv returns it
// as a *RemoteError (or *MovedError).
func (s *Stream) SendError(err error) error { return s.send(kindError, toWire(err)) }

func (s *Stream) send(kind byte, v any) error {
	b, err := appendFrame(s.wbuf[:0], kind, v, s.maxFrame)
	if err != nil {
		return err
	}
	s.wbuf = b
	if _, err := s.qs.Write(b); err != nil {
		return s.mapErr(err)
	}
	return nil
}

// Recv reads the next frame into v. It returns io.EOF when the peer closed
// its side cleanly, and the peer's error when it sent an error frame.
func (s *Stream) Recv(v any) error { return s.recvKind(kindData, v) }

// recvRaw is Recv without decoding the data frame's body.
func (s *Stream) recvRaw(raw *rawBody) error { return s.recvKind(kindData, raw) }

func (s *Stream) recvKind(want byte, v any) error {
	frame, err := ReadFrame(s.qs, s.rbuf[:0], s.maxFrame)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrTruncatedFrame) {
			return err
		}
		return s.mapErr(err)
	}
	// Keep a modest buffer for reuse; do not pin a one-off 16 MiB frame.
	if cap(frame) <= 64<<10 {
		s.rbuf = frame[:0]
	}
	kind, body, err := splitFrame(frame)
	if err != nil {
		return err
	}
	if kind == kindError && want != kindHeader {
		var w wireError
		if err := decodeBody(body, &w); err != nil {
			return err
		}
		return fromWire(s.peer, w)
	}
	if kind != want {
		return fmt.Errorf("%w: frame kind %d, want %d", ErrMalformed, kind, want)
	}
	if raw, ok := v.(*rawBody); ok {
		raw.b = body
		return nil
	}
	return decodeBody(body, v)
}

// expectEOF checks that the peer sent nothing more and closed its side.
func (s *Stream) expectEOF() error {
	var one [1]byte
	n, err := io.ReadFull(s.qs, one[:])
	if n == 0 && errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("%w: unexpected data after the last frame", ErrMalformed)
	}
	return s.mapErr(err)
}

// CloseSend tells the peer we will send nothing more; Recv still works.
func (s *Stream) CloseSend() error { return s.qs.Close() }

// Close ends the stream: it finishes our side and discards whatever the
// peer still sends.
func (s *Stream) Close() error {
	s.finish()
	return nil
}

// Abort resets both directions; the peer sees its reads and writes fail.
func (s *Stream) Abort() {
	s.qs.CancelWrite(streamCodeCanceled)
	s.qs.CancelRead(streamCodeCanceled)
}

// SetDeadline bounds future Send and Recv calls.
func (s *Stream) SetDeadline(t time.Time) error { return s.qs.SetDeadline(t) }

func (s *Stream) finish() {
	if s.stop != nil {
		s.stop()
	}
	_ = s.qs.Close()
	s.qs.CancelRead(streamCodeDone)
}

// mapErr turns quic-go's errors into this package's vocabulary.
func (s *Stream) mapErr(err error) error {
	if s.ctx != nil && s.ctx.Err() != nil {
		return ctxErr(s.ctx)
	}
	if s.ctx != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// The stream deadline is the context's, and may fire a moment
		// before the context notices.
		if _, ok := s.ctx.Deadline(); ok {
			return fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded)
		}
	}
	return mapQUICErr(err)
}

func ctxErr(ctx context.Context) error {
	err := context.Cause(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

func mapQUICErr(err error) error {
	var (
		te *quic.TransportError
		ae *quic.ApplicationError
		se *quic.StreamError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.As(err, &te) && te.ErrorCode.IsCryptoError():
		return fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	case errors.As(err, &ae) && !ae.Remote && ae.ErrorCode == appCodeShutdown:
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.As(err, &se) && se.Remote:
		return fmt.Errorf("%w: stream aborted by peer: %w", ErrRemote, err)
	default:
		// Idle timeout, stateless reset, peer shutdown, closed socket:
		// whatever the detail, the peer cannot be reached right now.
		return fmt.Errorf("%w: %w", ErrPeerUnavailable, err)
	}
}
