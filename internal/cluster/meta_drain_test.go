package cluster

import (
	"bytes"
	"errors"
	"testing"
)

func TestMetaDrainingRoundTrip(t *testing.T) {
	in := sampleMeta()
	in.Draining = true
	b, err := EncodeMeta(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeMeta(b)
	if err != nil || !out.Draining {
		t.Fatalf("draining lost in the round trip: %+v %v", out, err)
	}
	in.Draining = false
	plain, _ := EncodeMeta(in)
	if bytes.Equal(b, plain) {
		t.Fatal("draining does not change the encoding: peers would never hear of it")
	}
}

// TestMetaDrainingFalseRefused: the encoder omits a false flag, so an
// explicit false was not written by it and the strict decoder refuses it.
func TestMetaDrainingFalseRefused(t *testing.T) {
	b := []byte{metaFormatV1, 0x82, 0xa2, 'i', 'd', 0xa1, 'n', 0xa2, 'd', 'r', 0xc2}
	if _, err := DecodeMeta(b); !errors.Is(err, ErrInvalidMeta) {
		t.Fatalf("explicit false accepted: %v", err)
	}
	b[len(b)-1] = 0xc3
	if m, err := DecodeMeta(b); err != nil || !m.Draining {
		t.Fatalf("explicit true refused: %+v %v", m, err)
	}
}

// TestSchedulersSkipDraining: a draining member is never a candidate, so
// neither placement nor a migration target can pick it.
func TestSchedulersSkipDraining(t *testing.T) {
	members := []Member{
		{Name: "a", State: StateAlive, Verified: true, Meta: NodeMeta{NodeID: "a", MigrationSupported: true, Draining: true}},
		{Name: "b", State: StateAlive, Verified: true, Meta: NodeMeta{NodeID: "b", MigrationSupported: true, Load: 50}},
	}
	cs := CandidatesFrom(members)
	if len(cs) != 1 || cs[0].NodeID != "b" {
		t.Fatalf("candidates %+v, want only b", cs)
	}
	if got, err := Schedule(Filter{}, cs, "a"); err != nil || got != "b" {
		t.Fatalf("Schedule picked %q (%v), want b", got, err)
	}
	if got, err := MigrationTarget(Filter{}, cs, "c"); err != nil || got != "b" {
		t.Fatalf("MigrationTarget picked %q (%v), want b", got, err)
	}
}
