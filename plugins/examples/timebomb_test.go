package examples

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The patched threshold decodes back to the time asked for, the rest of the
// module is byte for byte the fixture, and on a bare wazero the start
// function returns before that time and spins after it.
func TestTimeBombThreshold(t *testing.T) {
	at := time.Unix(0, 1_800_000_000_123_456_789)
	mod, err := TimeBomb(at)
	if err != nil {
		t.Fatal(err)
	}
	orig := []byte(timebombStart)
	i := bytes.Index(orig, []byte(timebombAt))
	if len(mod) != len(orig) || !bytes.Equal(mod[:i+1], orig[:i+1]) || !bytes.Equal(mod[i+len(timebombAt):], orig[i+len(timebombAt):]) {
		t.Fatal("TimeBomb changed more than the threshold")
	}
	var v int64
	for j, b := range mod[i+1 : i+len(timebombAt)] {
		v |= int64(b&0x7f) << (7 * j)
	}
	if v != at.UnixNano() {
		t.Fatalf("threshold decodes to %d, want %d", v, at.UnixNano())
	}
	for _, c := range []struct {
		now  int64
		hang bool
	}{{at.UnixNano() - 1, false}, {at.UnixNano(), true}} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true))
		now := c.now
		_, err := rt.NewHostModuleBuilder("wasmesh").
			NewFunctionBuilder().WithFunc(func(context.Context, api.Module, uint32, uint32) {}).Export("emit").
			NewFunctionBuilder().WithFunc(func(context.Context) int64 { return now }).Export("now").
			Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = rt.Instantiate(ctx, mod)
		if (err != nil) != c.hang {
			t.Fatalf("clock %d: instantiate err = %v, want hang %v", c.now, err, c.hang)
		}
		cancel()
		rt.Close(context.Background())
	}
	if _, err := TimeBomb(time.Unix(0, 1<<62)); err == nil {
		t.Fatal("a threshold that needs 10 bytes was accepted")
	}
}
