package snapshot

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/identity"
)

// Format constants; FORMAT.md is the normative description.
const (
	// Magic starts every snapshot.
	Magic = "WMSNAP"
	// Version is the format of a snapshot without annotations; it is what
	// every earlier build wrote, and an unannotated snapshot still encodes
	// as it, byte for byte.
	Version = 1
	// VersionAnnotated is Version plus the trailing annotations section.
	VersionAnnotated = 2
	// VersionOutbox is VersionAnnotated plus the trailing outbox section;
	// its annotations section may be empty (length 0: no annotations).
	VersionOutbox = 3
	// VersionPublish is VersionOutbox with channel publishes in the outbox
	// (a channel and prev per entry, the channels' last publishes after
	// them); an outbox without publishes is still written as version 3.
	VersionPublish = 4
	// SignatureDomain separates snapshot signatures from every other use of
	// the daemon key: the key signs SignatureDomain || 0x00 || SHA-256(body).
	SignatureDomain = "wasmesh/snapshot/v1"

	headerSize       = 204
	sigSize          = 64
	horizonEntrySize = 16
	ledgerEntryFixed = 8 // u16 publisher len, u16 channel len, u32 token len
	globalEntrySize  = 13
)

// Offsets inside the fixed header.
const (
	offVersion      = 6
	offMode         = 7
	offModuleDigest = 8
	offEntityID     = 40
	offSequence     = 72
	offInputSeq     = 80
	offChainHead    = 88
	offHeadPayload  = 144
	offMemoryPages  = 176
	offHorizonCount = 180
	offLedgerCount  = 184
	offGlobalCount  = 188
	offPageCount    = 192
	offStateLen     = 196
	offEnvelopeLen  = 200
)

// plan is a validated snapshot laid out as the pieces of its body, so that
// the bulk (pages, state) is never copied into an intermediate buffer.
type plan struct {
	prefix   []byte // header, horizon, ledger, globals, page index table
	pages    []Page // non-zero pages only
	state    []byte
	envelope []byte
	ann      []byte // version 2 to 4: u32 length || annotations
	outbox   []byte // version 3 and 4
}

func (p *plan) bodySize() int {
	return len(p.prefix) + len(p.pages)*PageSize + len(p.state) + len(p.envelope) + len(p.ann) + len(p.outbox)
}

// each hands every body piece, in order, to f.
func (p *plan) each(f func([]byte) error) error {
	if err := f(p.prefix); err != nil {
		return err
	}
	for _, pg := range p.pages {
		if err := f(pg.Data); err != nil {
			return err
		}
	}
	if err := f(p.state); err != nil {
		return err
	}
	if err := f(p.envelope); err != nil {
		return err
	}
	if err := f(p.ann); err != nil {
		return err
	}
	return f(p.outbox)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Validate checks the rules Encode enforces and Decode re-checks: a known
// mode, fields consistent with it, the chain head belonging to the entity,
// pages strictly increasing, whole and inside memory, globals strictly
// increasing with a numeric type whose bits fit it, and every length
// representable in the format. Errors match ErrInvalid.
func (s *Snapshot) Validate() error {
	switch s.Mode {
	case Transparent:
		if len(s.State) != 0 {
			return invalid("transparent snapshot carries %d bytes of cooperative state", len(s.State))
		}
	case Cooperative:
		if s.MemoryPages != 0 || len(s.Pages) != 0 || len(s.Globals) != 0 {
			return invalid("cooperative snapshot carries memory (%d pages declared, %d stored, %d globals)",
				s.MemoryPages, len(s.Pages), len(s.Globals))
		}
	default:
		return invalid("unknown mode %d", s.Mode)
	}
	// A sequence at its maximum would wrap to 0 on the next event or output
	// and reuse numbers the daemon already gave out (SPEC: exactly once).
	if s.ChainHead.Sequence == math.MaxUint64 {
		return invalid("chain sequence %d would wrap on the next output", uint64(math.MaxUint64))
	}
	if s.Sequence == math.MaxUint64 {
		return invalid("snapshot sequence %d would wrap on the next snapshot", uint64(math.MaxUint64))
	}
	if s.InputSeq == math.MaxUint64 {
		return invalid("input sequence %d would wrap on the next event", uint64(math.MaxUint64))
	}
	if want := abi.OriginHash(s.EntityID); s.ChainHead.Origin != want {
		return invalid("chain head origin %016x is not the entity's origin %016x", s.ChainHead.Origin, want)
	}
	for i, p := range s.Pages {
		if len(p.Data) != PageSize {
			return invalid("page %d is %d bytes, want %d", p.Index, len(p.Data), PageSize)
		}
		if p.Index >= s.MemoryPages {
			return invalid("page index %d outside memory of %d pages", p.Index, s.MemoryPages)
		}
		if i > 0 && p.Index <= s.Pages[i-1].Index {
			return invalid("page index %d after %d: pages must be strictly increasing", p.Index, s.Pages[i-1].Index)
		}
	}
	for i, g := range s.Globals {
		switch g.Type {
		case abi.I32, abi.F32:
			// wazero hands 32-bit globals back zero-extended; anything in
			// the high half would be silently dropped on restore.
			if g.Bits>>32 != 0 {
				return invalid("global %d is %s but has bits %#x above 32", g.Index, g.Type, g.Bits)
			}
		case abi.I64, abi.F64:
		default:
			return invalid("global %d has type %s (%#x), want i32, i64, f32 or f64", g.Index, g.Type, byte(g.Type))
		}
		if i > 0 && g.Index <= s.Globals[i-1].Index {
			return invalid("global index %d after %d: globals must be strictly increasing", g.Index, s.Globals[i-1].Index)
		}
	}
	for i, sub := range s.Ledger {
		if len(sub.Publisher) > math.MaxUint16 || len(sub.Channel) > math.MaxUint16 || uint64(len(sub.Token)) > math.MaxUint32 {
			return invalid("ledger entry %d: publisher, channel or token too long", i)
		}
	}
	if s.Annotations != nil {
		if err := s.Annotations.validate(); err != nil {
			return err
		}
	}
	if s.Outbox != nil {
		if err := s.Outbox.validate(); err != nil {
			return err
		}
	}
	for _, n := range []int{len(s.Horizon), len(s.Ledger), len(s.Globals), len(s.Pages), len(s.State), len(s.Envelope)} {
		if uint64(n) > math.MaxUint32 {
			return invalid("a count or length of %d does not fit in 32 bits", n)
		}
	}
	return nil
}

// isZeroPage reports whether a page (PageSize bytes, a multiple of 8) is
// all zeros. A page with data almost always has a non-zero word near its
// start, so the common case exits early.
func isZeroPage(p []byte) bool {
	for i := 0; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:]) != 0 {
			return false
		}
	}
	return true
}

func checkIdentity(s *Snapshot, id identity.Identity) error {
	if id.IsZero() {
		return fmt.Errorf("%w: no key", ErrIdentityMismatch)
	}
	if got := id.EntityID(); got != s.EntityID {
		return fmt.Errorf("%w: key is %x, snapshot entity is %x", ErrIdentityMismatch, got[:8], s.EntityID[:8])
	}
	return nil
}

func makePlan(s *Snapshot) (*plan, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	// SPEC R-S3: zero pages are not stored. Copy the page list only when
	// there is something to drop.
	pages := s.Pages
	for i, p := range s.Pages {
		if isZeroPage(p.Data) {
			pages = slices.Clone(s.Pages[:i])
			for _, q := range s.Pages[i+1:] {
				if !isZeroPage(q.Data) {
					pages = append(pages, q)
				}
			}
			break
		}
	}

	senders := make([]uint64, 0, len(s.Horizon))
	for k := range s.Horizon {
		senders = append(senders, k)
	}
	slices.Sort(senders)

	n := headerSize + len(senders)*horizonEntrySize + len(s.Globals)*globalEntrySize + len(pages)*4
	for _, sub := range s.Ledger {
		n += ledgerEntryFixed + len(sub.Publisher) + len(sub.Channel) + len(sub.Token)
	}
	b := make([]byte, 0, n)
	le := binary.LittleEndian
	b = append(b, Magic...)
	version := byte(Version)
	if s.Annotations != nil {
		version = VersionAnnotated
	}
	if s.Outbox != nil {
		version = VersionOutbox
		if s.Outbox.hasPublishes() {
			version = VersionPublish
		}
	}
	b = append(b, version, byte(s.Mode))
	b = append(b, s.ModuleDigest[:]...)
	b = append(b, s.EntityID[:]...)
	b = le.AppendUint64(b, s.Sequence)
	b = le.AppendUint64(b, s.InputSeq)
	b = s.ChainHead.AppendBinary(b)
	b = append(b, s.HeadHash[:]...)
	b = le.AppendUint32(b, s.MemoryPages)
	b = le.AppendUint32(b, uint32(len(senders)))
	b = le.AppendUint32(b, uint32(len(s.Ledger)))
	b = le.AppendUint32(b, uint32(len(s.Globals)))
	b = le.AppendUint32(b, uint32(len(pages)))
	b = le.AppendUint32(b, uint32(len(s.State)))
	b = le.AppendUint32(b, uint32(len(s.Envelope)))
	for _, k := range senders {
		b = le.AppendUint64(b, k)
		b = le.AppendUint64(b, s.Horizon[k])
	}
	for _, sub := range s.Ledger {
		b = le.AppendUint16(b, uint16(len(sub.Publisher)))
		b = le.AppendUint16(b, uint16(len(sub.Channel)))
		b = le.AppendUint32(b, uint32(len(sub.Token)))
		b = append(b, sub.Publisher...)
		b = append(b, sub.Channel...)
		b = append(b, sub.Token...)
	}
	for _, g := range s.Globals {
		b = le.AppendUint32(b, g.Index)
		b = append(b, byte(g.Type))
		b = le.AppendUint64(b, g.Bits)
	}
	for _, p := range pages {
		b = le.AppendUint32(b, p.Index)
	}
	var ann, outbox []byte
	switch {
	case s.Annotations != nil:
		n := s.Annotations.encodedSize()
		ann = appendAnnotations(le.AppendUint32(make([]byte, 0, 4+n), uint32(n)), s.Annotations)
	case s.Outbox != nil:
		ann = le.AppendUint32(nil, 0) // version 3 or 4 without annotations
	}
	if s.Outbox != nil {
		outbox = appendOutbox(make([]byte, 0, s.Outbox.encodedSize()), s.Outbox)
	}
	return &plan{prefix: b, pages: pages, state: s.State, envelope: s.Envelope, ann: ann, outbox: outbox}, nil
}

// signedMessage is what the daemon key signs: the domain, a zero byte and
// the body digest. Signing the 32-byte digest rather than the body keeps
// ed25519 (which hashes its message twice) off the 64 MiB path.
func signedMessage(bodySum []byte) []byte {
	m := make([]byte, 0, len(SignatureDomain)+1+sha256.Size)
	m = append(m, SignatureDomain...)
	m = append(m, 0)
	return append(m, bodySum...)
}

// EncodedSize is the length Encode would produce for s, without encoding.
func EncodedSize(s *Snapshot) (int, error) {
	p, err := makePlan(s)
	if err != nil {
		return 0, err
	}
	return p.bodySize() + sigSize, nil
}

// Encode validates s, lays it out in the format of FORMAT.md and signs it
// with id, which must be the key of s.EntityID. All-zero pages are dropped.
// It sets s.Signature to the new signature.
func Encode(s *Snapshot, id identity.Identity) ([]byte, error) {
	return AppendEncode(nil, s, id)
}

// AppendEncode is Encode appending to dst; it grows dst at most once.
func AppendEncode(dst []byte, s *Snapshot, id identity.Identity) ([]byte, error) {
	if err := checkIdentity(s, id); err != nil {
		return dst, err
	}
	p, err := makePlan(s)
	if err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, p.bodySize()+sigSize)
	h := sha256.New()
	// Hash each piece as it is copied, while it is still in cache.
	_ = p.each(func(piece []byte) error {
		dst = append(dst, piece...)
		h.Write(piece)
		return nil
	})
	sig := sign(h, id)
	s.Signature = sig
	return append(dst, sig...), nil
}

// EncodeTo streams the encoding of s to w without materialising it, and
// returns the bytes written. On a write error w holds a prefix that Decode
// rejects (no valid signature can follow it).
func EncodeTo(w io.Writer, s *Snapshot, id identity.Identity) (int64, error) {
	if err := checkIdentity(s, id); err != nil {
		return 0, err
	}
	p, err := makePlan(s)
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	var n int64
	err = p.each(func(piece []byte) error {
		if len(piece) == 0 {
			return nil
		}
		h.Write(piece)
		m, err := w.Write(piece)
		n += int64(m)
		if err != nil {
			return fmt.Errorf("snapshot: write: %w", err)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	sig := sign(h, id)
	m, err := w.Write(sig)
	n += int64(m)
	if err != nil {
		return n, fmt.Errorf("snapshot: write: %w", err)
	}
	s.Signature = sig
	return n, nil
}

func sign(h hash.Hash, id identity.Identity) []byte {
	var sum [sha256.Size]byte
	return id.Sign(signedMessage(h.Sum(sum[:0])))
}
