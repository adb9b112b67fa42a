package cluster

import (
	"context"
	"log"
	"log/slog"
	"strings"

	"github.com/wasmesh/wasmesh/internal/ratelog"
)

// Reasons a gossip packet or stream from outside was rejected, the label
// values Config.Rejected is called with. A fixed set: the label must not
// take values from the attacker's bytes.
const (
	RejectDecrypt  = "decrypt"
	RejectLabel    = "label"
	RejectChecksum = "checksum"
	RejectDecode   = "decode"
	RejectMsgType  = "msg_type"
	RejectStream   = "stream"
	RejectOther    = "other"
)

// RejectReasons lists every reason, so a metric can be pre-created with all
// of them at zero.
func RejectReasons() []string {
	return []string{RejectDecrypt, RejectLabel, RejectChecksum, RejectDecode, RejectMsgType, RejectStream, RejectOther}
}

// newMemberlistLogger adapts slog to the *log.Logger memberlist insists on.
// memberlist writes one "[LEVEL] memberlist: message" line per Printf; the
// level tag is turned back into a slog level so its DEBUG chatter does not
// flood an INFO log.
//
// memberlist logs one ERROR line per undecryptable or malformed packet, so
// anyone who can reach the gossip port could fill the disk: such lines
// (WARN/ERROR naming a remote "from=" address) are counted through
// rejected and written at most once per reason per interval, with the
// number suppressed since.
func newMemberlistLogger(l *slog.Logger, rejected func(reason string)) *log.Logger {
	return log.New(slogWriter{l: l, limit: ratelog.New(0, 0), rejected: rejected}, "", 0)
}

type slogWriter struct {
	l        *slog.Logger
	limit    *ratelog.Limiter
	rejected func(reason string)
}

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\r\n")
	level := slog.LevelInfo
	if strings.HasPrefix(line, "[") {
		if end := strings.IndexByte(line, ']'); end > 0 {
			level = parseMemberlistLevel(line[1:end])
			line = strings.TrimSpace(line[end+1:])
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	// "lib", not "component": the logger given already names the component
	// (gossip), and a JSON reader keeps only one of two equal keys.
	attrs := []any{slog.String("lib", "memberlist")}
	if level >= slog.LevelWarn {
		if i := strings.LastIndex(line, "from="); i >= 0 {
			reason := rejectReason(line)
			if w.rejected != nil {
				w.rejected(reason)
			}
			_, suppressed, ok := w.limit.Allow(reason)
			if !ok {
				return len(p), nil
			}
			attrs = append(attrs, slog.String("reason", reason), slog.Uint64("suppressed", suppressed))
		}
	}
	w.l.Log(context.Background(), level, line, attrs...)
	return len(p), nil
}

// rejectReason classifies one of memberlist's per-packet error lines.
func rejectReason(line string) string {
	l := strings.ToLower(line)
	switch {
	case strings.Contains(l, "decrypt"):
		return RejectDecrypt
	case strings.Contains(l, "label"):
		return RejectLabel
	case strings.Contains(l, "checksum"):
		return RejectChecksum
	case strings.Contains(l, "msg type"), strings.Contains(l, "msgtype"), strings.Contains(l, "message type"):
		return RejectMsgType
	case strings.Contains(l, "decode"), strings.Contains(l, "decompress"), strings.Contains(l, "truncated"):
		return RejectDecode
	case strings.Contains(l, "receive"), strings.Contains(l, "stream"), strings.Contains(l, "read remote state"):
		return RejectStream
	default:
		return RejectOther
	}
}

func parseMemberlistLevel(tag string) slog.Level {
	switch strings.ToUpper(tag) {
	case "TRACE", "DEBUG":
		return slog.LevelDebug
	case "WARN", "WARNING":
		return slog.LevelWarn
	case "ERR", "ERROR":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
