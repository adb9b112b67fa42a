package cluster

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// newMemberlistLogger adapts slog to the *log.Logger memberlist insists on.
// memberlist writes one "[LEVEL] memberlist: message" line per Printf; the
// level tag is turned back into a slog level so its DEBUG chatter does not
// flood an INFO log.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(slogWriter{l: l}, "", 0)
}

type slogWriter struct{ l *slog.Logger }

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
	w.l.Log(context.Background(), level, line, slog.String("component", "memberlist"))
	return len(p), nil
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
