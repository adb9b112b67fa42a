package meshquic

import (
	"log/slog"

	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"

	"github.com/wasmesh/wasmesh/internal/ratelog"
)

// RejectUnauthenticated is the reason for a connection whose handshake
// completed without a usable cluster certificate.
const RejectUnauthenticated = "unauthenticated"

// RejectReasons lists the reasons Config.Rejected may be called with, so a
// metric can be pre-created with all of them at zero. They are quic-go's
// packet-drop triggers (a fixed set, never bytes from the packet) plus
// RejectUnauthenticated; anything else is "other".
func RejectReasons() []string {
	return []string{
		string(qlog.PacketDropHeaderParseError), string(qlog.PacketDropUnknownConnectionID),
		string(qlog.PacketDropPayloadDecryptError), string(qlog.PacketDropKeysUnavailable),
		string(qlog.PacketDropUnsupportedVersion), string(qlog.PacketDropUnexpectedPacket),
		string(qlog.PacketDropDOSPrevention), string(qlog.PacketDropProtocolViolation),
		RejectUnauthenticated, "other",
	}
}

func rejectReason(t qlog.PacketDropReason) string {
	s := string(t)
	for _, r := range RejectReasons() {
		if r == s {
			return s
		}
	}
	return "other"
}

// rejectCounter sees every packet the transport drops before it belongs
// to a connection (quic-go reports them as qlog events): garbage at the
// port is counted, and logged at most once per reason per interval with
// the count since the last line, never once per packet.
type rejectCounter struct {
	log      *slog.Logger
	limit    *ratelog.Limiter
	rejected func(reason string)
}

var _ qlogwriter.Recorder = (*rejectCounter)(nil)

func newRejectCounter(log *slog.Logger, rejected func(string)) *rejectCounter {
	return &rejectCounter{log: log, limit: ratelog.New(0, 0), rejected: rejected}
}

func (r *rejectCounter) RecordEvent(ev qlogwriter.Event) {
	pd, ok := ev.(qlog.PacketDropped)
	if !ok {
		return
	}
	r.reject(rejectReason(pd.Trigger), "")
}

func (r *rejectCounter) reject(reason, remote string) {
	if r.rejected != nil {
		r.rejected(reason)
	}
	if _, n, ok := r.limit.Allow(reason); ok {
		attrs := []any{"reason", reason, "suppressed", n}
		if remote != "" {
			attrs = append(attrs, "remote", remote)
		}
		r.log.Warn("mesh rejected packets from outside the cluster", attrs...)
	}
}

func (r *rejectCounter) Close() error { return nil }
