package meshquic

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Garbage at the QUIC port is counted, and the log gets a line per reason
// per interval, not one per datagram.
func TestGarbageDatagramsCountedNotLoggedPerPacket(t *testing.T) {
	var logs syncBuf
	var dropped atomic.Int64
	cfg := testConfig(creds(t, newCA(t)))
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Rejected = func(string) { dropped.Add(1) }
	e := listen(t, cfg)

	c, err := net.DialUDP("udp", nil, e.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 3000
	for i := 0; i < n; i++ {
		// Short-header garbage (first bit clear) and long-header garbage.
		b := bytes.Repeat([]byte{byte(i), 0x5a}, 600)
		if i%2 == 0 {
			b[0] = 0xc3
		} else {
			b[0] = 0x43
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for dropped.Load() < n/2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := dropped.Load(); got < n/2 {
		t.Fatalf("%d of %d garbage datagrams counted as rejected", got, n)
	}
	lines := strings.Count(logs.String(), "mesh rejected packets")
	if lines < 1 || lines > len(RejectReasons()) {
		t.Fatalf("%d log lines about %d rejected datagrams, want 1..%d:\n%s", lines, dropped.Load(), len(RejectReasons()), logs.String())
	}
}
