package wire

import (
	"fmt"
	"unicode/utf8"
)

const digestPrefix = "sha256:"

// ValidDigest reports whether s is a module digest in canonical form:
// "sha256:" and 64 lowercase hex digits.
func ValidDigest(s string) bool {
	if len(s) != len(digestPrefix)+64 || s[:len(digestPrefix)] != digestPrefix {
		return false
	}
	for i := len(digestPrefix); i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func tooLarge(what string, n, limit int) error {
	return fmt.Errorf("%w: %w: %s is %d, limit %d", ErrMalformed, ErrTooLarge, what, n, limit)
}

func validNode(what string, n NodeID, lim Limits) error {
	switch {
	case n == "":
		return malformed("%s node id is empty", what)
	case len(n) > lim.MaxNodeID:
		return tooLarge(what+" node id", len(n), lim.MaxNodeID)
	case !utf8.ValidString(string(n)):
		return malformed("%s node id is not UTF-8", what)
	}
	return nil
}

func validPlan(p Plan, lim Limits) error {
	if !ValidDigest(p.KindDigest) {
		return malformed("kind digest %q is not sha256:<hex>", p.KindDigest)
	}
	for _, n := range []struct {
		what string
		id   NodeID
	}{{"source", p.Source}, {"target", p.Target}, {"orchestrator", p.Orchestrator}} {
		if err := validNode(n.what, n.id, lim); err != nil {
			return err
		}
	}
	if p.Source == p.Target {
		return malformed("source and target are both %q", p.Source)
	}
	return nil
}

// Validate checks a message's content against lim: the same rules Decode
// enforces, so Encode never produces a frame a peer would refuse.
func Validate(m Message, lim Limits) error {
	h := m.Hdr()
	if h.Attempt == 0 {
		return malformed("%s: attempt 0", m.Kind())
	}
	switch m := m.(type) {
	case Start:
		return validPlan(m.Plan, lim)
	case Prepare:
		if err := validPlan(m.Plan, lim); err != nil {
			return err
		}
		if len(m.Envelope) > lim.MaxEnvelope {
			return tooLarge("envelope", len(m.Envelope), lim.MaxEnvelope)
		}
		if m.TransportIdentity != (len(m.Envelope) > 0) {
			return malformed("prepare: transport identity %v with %d-byte envelope", m.TransportIdentity, len(m.Envelope))
		}
		return validChunkShape(m.ChunkCount, m.TotalBytes)
	case NeedModule:
		if !ValidDigest(m.Digest) {
			return malformed("need module: bad digest")
		}
	case ModuleDigest:
		if !ValidDigest(m.Digest) {
			return malformed("module digest: bad digest")
		}
	case SnapshotChunk:
		if len(m.Data) > lim.MaxChunkData {
			return tooLarge("chunk data", len(m.Data), lim.MaxChunkData)
		}
		if err := validChunkShape(m.Count, m.TotalBytes); err != nil {
			return err
		}
		if m.Index >= m.Count {
			return malformed("chunk index %d of %d", m.Index, m.Count)
		}
		if uint64(len(m.Data)) > m.TotalBytes {
			return malformed("chunk of %d bytes in a %d-byte snapshot", len(m.Data), m.TotalBytes)
		}
	case ReplayBatch:
		if len(m.Events) == 0 {
			return malformed("empty replay batch")
		}
		if len(m.Events) > lim.MaxEvents {
			return tooLarge("replay batch", len(m.Events), lim.MaxEvents)
		}
		for i, ev := range m.Events {
			if len(ev.Payload) > lim.MaxEventPayload {
				return tooLarge("event payload", len(ev.Payload), lim.MaxEventPayload)
			}
			if ev.Seq == 0 {
				return malformed("event input sequence 0")
			}
			// Consecutive sequences: replay is in order and the target
			// treats a gap as an error, so a batch may not contain one.
			if i > 0 && ev.Seq != m.Events[i-1].Seq+1 {
				return malformed("replay batch not consecutive at %d", i)
			}
		}
	case Abort:
		if !m.Phase.Valid() {
			return malformed("abort: phase %d", m.Phase)
		}
		if !m.Reason.Valid() {
			return malformed("abort: reason %d", m.Reason)
		}
		if len(m.Text) > lim.MaxText {
			return tooLarge("abort text", len(m.Text), lim.MaxText)
		}
		if !utf8.ValidString(m.Text) {
			return malformed("abort text is not UTF-8")
		}
	case RestoreComplete, ReplayAck, Cutover, Activate, ActivateAck, Complete, NotReady:
	default:
		return malformed("unknown message type %T", m)
	}
	return nil
}

// validChunkShape: at least one chunk (an empty snapshot is one empty chunk,
// so stateless daemons take the same path), and no more chunks than bytes
// could fill, so a count cannot claim more reassembly slots than the data
// justifies.
func validChunkShape(count uint32, total uint64) error {
	if count == 0 {
		return malformed("chunk count 0")
	}
	if uint64(count) > total && !(count == 1 && total == 0) {
		return malformed("%d chunks for %d bytes", count, total)
	}
	return nil
}
