package meshquic

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestReadFrameStrict(t *testing.T) {
	f, err := appendFrame(nil, kindData, "hello", 64)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadFrame(bytes.NewReader(f), nil, 64)
	if err != nil || got[0] != kindData {
		t.Fatalf("read %v %v", got, err)
	}
	var s string
	if err := decodeBody(got[1:], &s); err != nil || s != "hello" {
		t.Fatalf("decode %q %v", s, err)
	}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty stream", nil, io.EOF},
		{"short prefix", []byte{0, 0}, ErrTruncatedFrame},
		{"short body", f[:len(f)-1], ErrTruncatedFrame},
		{"over cap", []byte{0, 0, 1, 0}, ErrFrameTooLarge},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}, ErrFrameTooLarge},
	}
	for _, c := range cases {
		if _, err := ReadFrame(bytes.NewReader(c.in), nil, 64); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := appendFrame(nil, kindData, string(make([]byte, 100)), 64); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("encoding over cap: %v", err)
	}
	// Trailing bytes after the msgpack value are not ignored.
	if err := decodeBody(append(got[1:len(got):len(got)], 0xc0), &s); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	if _, _, err := splitFrame([]byte{9}); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown kind: %v", err)
	}
}

type codedErr struct{}

func (codedErr) Error() string    { return "daemon is frozen" }
func (codedErr) WireCode() string { return "frozen" }

func TestWireErrorMapping(t *testing.T) {
	peer := NodeID{1}
	round := func(err error) error { return fromWire(peer, toWire(err)) }

	err := round(fmt.Errorf("looking: %w", ErrNotFound))
	wantErr(t, err, ErrNotFound, ErrRemote)
	if errors.Is(err, ErrFrameTooLarge) {
		t.Fatal("not_found matched another sentinel")
	}
	var re *RemoteError
	if err := round(codedErr{}); !errors.As(err, &re) || re.Code != "frozen" || re.Peer != peer {
		t.Fatalf("coded error became %v", err)
	}
	if err := round(errors.New("disk on fire")); !errors.As(err, &re) || re.Code != CodeInternal {
		t.Fatalf("plain error became %v", err)
	}
	moved := round(&MovedError{Origin: 5, To: NodeID{2}, Epoch: 9})
	var me *MovedError
	if !errors.As(moved, &me) || me.To != (NodeID{2}) || me.Epoch != 9 || me.Origin != 5 {
		t.Fatalf("moved became %v", moved)
	}
	if err := fromWire(peer, wireError{Code: CodeMoved, To: []byte{1}}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("moved without node id: %v", err)
	}
}

func TestRoutesEpochs(t *testing.T) {
	r := NewRoutes()
	a, b := NodeID{1}, NodeID{2}
	if !r.Set(1, a, 5) {
		t.Fatal("first set refused")
	}
	if r.Set(1, b, 4) {
		t.Fatal("older announcement won")
	}
	if got, _ := r.Lookup(1); got.Node != a {
		t.Fatalf("route %+v", got)
	}
	// Equal epoch: deterministic tie-break by node id, in either order.
	r.Set(1, b, 5)
	r2 := NewRoutes()
	r2.Set(1, b, 5)
	r2.Set(1, a, 5)
	g1, _ := r.Lookup(1)
	g2, _ := r2.Lookup(1)
	if g1 != g2 || g1.Node != b {
		t.Fatalf("tie-break differs by order: %+v %+v", g1, g2)
	}
	if r.Delete(1, 4) {
		t.Fatal("older delete applied")
	}
	if !r.Delete(1, 6) {
		t.Fatal("newer delete refused")
	}
	if _, ok := r.Lookup(1); ok {
		t.Fatal("deleted route still found")
	}
	if r.Set(1, a, 5) {
		t.Fatal("stale announcement resurrected a deleted route")
	}
	if !r.Set(1, a, 7) {
		t.Fatal("newer placement after delete refused")
	}
	r.SetMoved(3, b, 2)
	if m, ok := r.Moved(3); !ok || m.Node != b {
		t.Fatalf("moved %+v", m)
	}
	if got, _ := r.Lookup(3); got.Node != b {
		t.Fatal("SetMoved did not update the route")
	}
	r.ClearMoved(3)
	if _, ok := r.Moved(3); ok {
		t.Fatal("ClearMoved kept the entry")
	}
}
