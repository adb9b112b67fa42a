//go:build !wasip1

package rt

import (
	"bytes"
	"testing"
)

func TestPublishPassesChannelPayloadAndResult(t *testing.T) {
	reset(t)
	fake.pubs, fake.publish = nil, 0
	t.Cleanup(func() { fake.pubs, fake.publish = nil, 0 })
	msg := []byte("news")
	if got := Publish("a/b", msg); got != 0 {
		t.Fatalf("Publish = %d, want 0", got)
	}
	msg[0] = 'X' // the host copied it during the call
	if len(fake.pubs) != 1 || fake.pubs[0].channel != "a/b" || !bytes.Equal(fake.pubs[0].payload, []byte("news")) {
		t.Fatalf("host saw %+v", fake.pubs)
	}
	// Every code reaches the caller, not just "failed".
	for _, code := range []int32{1, 2, 3, 4} {
		fake.publish = code
		if got := Publish("a", msg); got != code || len(fake.pubs) != 1 {
			t.Fatalf("host answered %d: Publish = %d, %d publishes queued", code, got, len(fake.pubs))
		}
	}
}
