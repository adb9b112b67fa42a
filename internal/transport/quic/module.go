package meshquic

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// moduleChunk is the size of one module frame: big enough to amortise
// framing, small enough that a stream never holds a large frame buffer.
const moduleChunk = 256 << 10

type moduleRequest struct {
	Digest string `msgpack:"d"`
}

type moduleHeader struct {
	Size uint64 `msgpack:"n"`
}

// ParseDigest accepts a module digest as "sha256:<64 hex>" or "<64 hex>"
// and returns the raw hash.
func ParseDigest(s string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	h := strings.TrimPrefix(s, "sha256:")
	if len(h) != 2*sha256.Size {
		return d, fmt.Errorf("%w: %q", ErrBadDigest, s)
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, fmt.Errorf("%w: %q", ErrBadDigest, s)
	}
	return d, nil
}

// serveModule streams a module: a header frame with its size, then chunks,
// then end of stream.
func (e *Endpoint) serveModule(ops LocalOps) StreamHandler {
	return func(ctx context.Context, s *Stream) error {
		var req moduleRequest
		if err := s.Recv(&req); err != nil {
			return err
		}
		if err := s.expectEOF(); err != nil {
			return err
		}
		if _, err := ParseDigest(req.Digest); err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		mod, err := ops.ModuleBytes(ctx, req.Digest)
		if err != nil {
			return err
		}
		if err := s.Send(moduleHeader{Size: uint64(len(mod))}); err != nil {
			return err
		}
		for len(mod) > 0 {
			n := min(len(mod), moduleChunk)
			if err := s.SendBytes(mod[:n]); err != nil {
				return err
			}
			mod = mod[n:]
		}
		return nil
	}
}

// FetchModule downloads the module with the given digest from p and returns
// it only if its SHA-256 matches (ErrDigestMismatch otherwise) and it fits
// MaxModuleSize (ErrModuleTooLarge). A peer lacking it answers ErrNotFound.
func (e *Endpoint) FetchModule(ctx context.Context, p Peer, digest string) ([]byte, error) {
	want, err := ParseDigest(digest)
	if err != nil {
		return nil, err
	}
	s, err := e.OpenStream(ctx, p, SubModule)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := s.Send(moduleRequest{Digest: digest}); err != nil {
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, s.mapErr(err)
	}
	var hdr moduleHeader
	if err := s.Recv(&hdr); err != nil {
		return nil, noEOF(err)
	}
	if hdr.Size > uint64(e.cfg.MaxModuleSize) {
		// Refuse before allocating or reading anything.
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrModuleTooLarge, hdr.Size, e.cfg.MaxModuleSize)
	}
	mod := make([]byte, 0, hdr.Size)
	for uint64(len(mod)) < hdr.Size {
		if mod, err = s.RecvBytes(mod); err != nil {
			return nil, noEOF(err)
		}
		if uint64(len(mod)) > hdr.Size {
			return nil, fmt.Errorf("%w: module longer than announced %d bytes", ErrMalformed, hdr.Size)
		}
	}
	if err := s.expectEOF(); err != nil {
		return nil, err
	}
	if got := sha256.Sum256(mod); !bytes.Equal(got[:], want[:]) {
		return nil, fmt.Errorf("%w: from %s: want %x, got %x", ErrDigestMismatch, s.Peer(), want, got)
	}
	return mod, nil
}

// noEOF turns an early end of stream into a protocol error.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: stream ended early", ErrTruncatedFrame)
	}
	return err
}
