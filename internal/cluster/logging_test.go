package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A flood of undecryptable packets costs counter increments, and one log
// line per reason.
func TestMemberlistLoggerRateLimitsPacketErrors(t *testing.T) {
	var buf bytes.Buffer
	counts := map[string]int{}
	l := newMemberlistLogger(slog.New(slog.NewTextHandler(&buf, nil)), func(r string) { counts[r]++ })
	for i := 0; i < 3000; i++ {
		l.Printf("[ERR] memberlist: Decrypt packet failed: cipher: message authentication failed from=127.0.0.1:%d", 1000+i)
		l.Printf("[ERR] memberlist: discarding packet with unacceptable label %q: from=127.0.0.1:%d", "x", 1000+i)
	}
	l.Printf("[ERR] memberlist: Failed to encode ack: boom")
	if counts[RejectDecrypt] != 3000 || counts[RejectLabel] != 3000 {
		t.Fatalf("counted %v, want 3000 decrypt and 3000 label", counts)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3 (one per reason, plus the unrelated error):\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "reason=decrypt") || !strings.Contains(lines[2], "Failed to encode ack") {
		t.Fatalf("unexpected lines:\n%s", buf.String())
	}
}
