//go:build !wasip1

package rt

import (
	"bytes"
	"testing"
)

func TestSendPassesTargetPayloadAndResult(t *testing.T) {
	reset(t)
	fake.sends, fake.send = nil, 0
	t.Cleanup(func() { fake.sends, fake.send = nil, 0 })
	msg := []byte("ping")
	if got := Send(0x0123456789abcdef, msg); got != 0 {
		t.Fatalf("Send = %d, want 0", got)
	}
	msg[0] = 'X' // the host copied it during the call
	if len(fake.sends) != 1 || fake.sends[0].target != 0x0123456789abcdef || !bytes.Equal(fake.sends[0].payload, []byte("ping")) {
		t.Fatalf("host saw %+v", fake.sends)
	}
	fake.send = 2
	if got := Send(1, msg); got != 2 || len(fake.sends) != 1 {
		t.Fatalf("a full outbox: Send = %d, %d sends queued", got, len(fake.sends))
	}
}
