package snapshot

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/identity"
)

// The header layout embeds chain.Link's canonical encoding; this fails to
// compile if the two drift apart.
var _ = [1]struct{}{}[offHeadPayload-offChainHead-chain.LinkSize]

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func tooLarge(what string, n, limit uint64) error {
	return fmt.Errorf("%w: %s is %d, limit %d", ErrTooLarge, what, n, limit)
}

// Decode strictly decodes and verifies a snapshot.
//
// It checks the format (magic, version, exact length, canonical order, no
// stored zero page), the caller's limits before allocating anything they
// bound, the same field rules as Validate, and finally the signature against
// the EntityID inside. A valid signature proves only that the holder of that
// entity's key made the snapshot: the caller must still check that EntityID
// (and ModuleDigest) are the ones it expects (SPEC R-L5).
//
// Aliasing: Pages[i].Data, State, Envelope, Ledger[i].Token,
// Outbox.Entries[i].Payload and Signature
// are sub-slices of b (capacity-capped, so appending to them never writes
// into b). Restore can therefore copy pages straight from the input buffer;
// call Clone to keep the snapshot after b is reused or modified.
func Decode(b []byte, lim Limits) (*Snapshot, error) {
	return decode(b, lim, true)
}

// decode with verify=false lets the fuzz target reach past the signature.
func decode(b []byte, lim Limits, verify bool) (*Snapshot, error) {
	lim = lim.withDefaults()
	le := binary.LittleEndian

	if len(b) < len(Magic) || string(b[:len(Magic)]) != Magic {
		return nil, malformed("bad magic")
	}
	if len(b) <= offVersion {
		return nil, malformed("truncated before version")
	}
	version := b[offVersion]
	if version < Version || version > VersionPublish {
		return nil, fmt.Errorf("%w: %d (this build reads %d to %d)", ErrUnsupportedVersion, version, Version, VersionPublish)
	}
	if len(b) < headerSize+sigSize {
		return nil, malformed("truncated: %d bytes, header and signature alone need %d", len(b), headerSize+sigSize)
	}

	s := &Snapshot{Mode: Mode(b[offMode])}
	if s.Mode != Transparent && s.Mode != Cooperative {
		return nil, malformed("unknown mode %d", b[offMode])
	}
	copy(s.ModuleDigest[:], b[offModuleDigest:])
	copy(s.EntityID[:], b[offEntityID:])
	s.Sequence = le.Uint64(b[offSequence:])
	s.InputSeq = le.Uint64(b[offInputSeq:])
	head, err := chain.DecodeLink(b[offChainHead:offHeadPayload])
	if err != nil {
		return nil, malformed("chain head: %v", err)
	}
	s.ChainHead = head
	copy(s.HeadHash[:], b[offHeadPayload:])
	s.MemoryPages = le.Uint32(b[offMemoryPages:])
	nHorizon := le.Uint32(b[offHorizonCount:])
	nLedger := le.Uint32(b[offLedgerCount:])
	nGlobals := le.Uint32(b[offGlobalCount:])
	nPages := le.Uint32(b[offPageCount:])
	stateLen := le.Uint32(b[offStateLen:])
	envLen := le.Uint32(b[offEnvelopeLen:])

	// Limits first: they are the caller's policy and cheap to check.
	switch {
	case s.MemoryPages > lim.MaxMemoryPages:
		return nil, tooLarge("memory pages", uint64(s.MemoryPages), uint64(lim.MaxMemoryPages))
	case nHorizon > lim.MaxHorizon:
		return nil, tooLarge("horizon entries", uint64(nHorizon), uint64(lim.MaxHorizon))
	case nLedger > lim.MaxLedgerEntries:
		return nil, tooLarge("ledger entries", uint64(nLedger), uint64(lim.MaxLedgerEntries))
	case nGlobals > lim.MaxGlobals:
		return nil, tooLarge("globals", uint64(nGlobals), uint64(lim.MaxGlobals))
	case stateLen > lim.MaxStateBytes:
		return nil, tooLarge("state bytes", uint64(stateLen), uint64(lim.MaxStateBytes))
	case envLen > lim.MaxEnvelopeBytes:
		return nil, tooLarge("envelope bytes", uint64(envLen), uint64(lim.MaxEnvelopeBytes))
	}
	if nPages > s.MemoryPages {
		return nil, malformed("%d pages stored in a memory of %d pages", nPages, s.MemoryPages)
	}
	// Every count must be backed by bytes before anything is allocated for
	// it. Ledger entries count only their fixed part here; their variable
	// part is checked as it is read. Counts are < 2^32, so this cannot
	// overflow a uint64.
	need := uint64(headerSize) + sigSize +
		uint64(nHorizon)*horizonEntrySize +
		uint64(nLedger)*ledgerEntryFixed +
		uint64(nGlobals)*globalEntrySize +
		uint64(nPages)*(4+PageSize) +
		uint64(stateLen) + uint64(envLen)
	switch version {
	case VersionAnnotated:
		need += 4 + annotationsFixed
	case VersionOutbox:
		need += 4 + outboxFixed
	case VersionPublish:
		need += 4 + outboxFixed + publishMarksFixed
	}
	if need > uint64(len(b)) {
		return nil, malformed("truncated: counts need at least %d bytes, have %d", need, len(b))
	}

	off := headerSize
	s.Horizon = make(map[uint64]uint64, nHorizon)
	var prev uint64
	for i := range nHorizon {
		sender, seq := le.Uint64(b[off:]), le.Uint64(b[off+8:])
		off += horizonEntrySize
		if i > 0 && sender <= prev {
			return nil, malformed("horizon sender %016x after %016x: must be strictly increasing", sender, prev)
		}
		prev = sender
		s.Horizon[sender] = seq
	}

	if nLedger > 0 {
		s.Ledger = make([]Subscription, nLedger)
		// Bytes still owed to fixed-size sections after the ledger; a
		// ledger entry may only use what is left beyond them.
		tail := need - uint64(headerSize) - uint64(nHorizon)*horizonEntrySize - uint64(nLedger)*ledgerEntryFixed
		var ledgerBytes uint64
		for i := range s.Ledger {
			pl, cl, tl := uint64(le.Uint16(b[off:])), uint64(le.Uint16(b[off+2:])), uint64(le.Uint32(b[off+4:]))
			off += ledgerEntryFixed
			ledgerBytes += pl + cl + tl
			if ledgerBytes > uint64(lim.MaxLedgerBytes) {
				return nil, tooLarge("ledger bytes", ledgerBytes, uint64(lim.MaxLedgerBytes))
			}
			if uint64(off)+pl+cl+tl+uint64(len(s.Ledger)-1-i)*ledgerEntryFixed+tail > uint64(len(b)) {
				return nil, malformed("truncated in ledger entry %d", i)
			}
			sub := &s.Ledger[i]
			sub.Publisher = string(b[off : off+int(pl)])
			off += int(pl)
			sub.Channel = string(b[off : off+int(cl)])
			off += int(cl)
			if tl > 0 {
				sub.Token = b[off : off+int(tl) : off+int(tl)]
			}
			off += int(tl)
		}
	}

	if nGlobals > 0 {
		s.Globals = make([]Global, nGlobals)
		for i := range s.Globals {
			s.Globals[i] = Global{Index: le.Uint32(b[off:]), Type: abi.ValType(b[off+4]), Bits: le.Uint64(b[off+5:])}
			off += globalEntrySize
		}
	}

	if nPages > 0 {
		s.Pages = make([]Page, nPages)
		data := off + int(nPages)*4
		for i := range s.Pages {
			d := b[data : data+PageSize : data+PageSize]
			s.Pages[i] = Page{Index: le.Uint32(b[off:]), Data: d}
			off += 4
			data += PageSize
			if isZeroPage(d) {
				return nil, malformed("page %d is all zeros; zero pages are not stored", s.Pages[i].Index)
			}
		}
		off = data
	}

	if stateLen > 0 {
		s.State = b[off : off+int(stateLen) : off+int(stateLen)]
		off += int(stateLen)
	}
	if envLen > 0 {
		s.Envelope = b[off : off+int(envLen) : off+int(envLen)]
		off += int(envLen)
	}
	if version >= VersionAnnotated {
		// The length is read only now: everything before it has been
		// accounted for, so the section may use only what remains.
		al := uint64(le.Uint32(b[off:]))
		off += 4
		if al > MaxAnnotationsBytes {
			return nil, tooLarge("annotations bytes", al, MaxAnnotationsBytes)
		}
		if al+sigSize > uint64(len(b)-off) {
			return nil, malformed("truncated in the annotations")
		}
		// Versions 3 and 4 say "no annotations" with an empty section;
		// version 2 exists only to carry them.
		if al > 0 || version == VersionAnnotated {
			a, err := decodeAnnotations(b[off : off+int(al)])
			if err != nil {
				return nil, err
			}
			s.Annotations = a
		}
		off += int(al)
	}
	if version >= VersionOutbox {
		o, n, err := decodeOutbox(b[off:], sigSize, lim, version)
		if err != nil {
			return nil, err
		}
		s.Outbox = o
		off += n
	}
	if rest := len(b) - off; rest != sigSize {
		return nil, malformed("%d bytes after the body, want a %d-byte signature", rest, sigSize)
	}
	s.Signature = b[off:len(b):len(b)]

	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if verify {
		sum := sha256.Sum256(b[:off])
		if !identity.Verify(s.EntityID, signedMessage(sum[:]), s.Signature) {
			return nil, fmt.Errorf("%w: entity %x", ErrBadSignature, s.EntityID[:8])
		}
	}
	return s, nil
}
