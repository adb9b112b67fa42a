package engine_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

func TestLedgerSetRemoveAndTravel(t *testing.T) {
	ctx := context.Background()
	e := newPubEnv(t, nil)
	id := newID(t)
	d, err := e.rt.Spawn(ctx, "publisher", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Ledger(); len(got) != 0 {
		t.Fatalf("new daemon's ledger %v", got)
	}
	tok := []byte("token")
	for _, s := range []snapshot.Subscription{
		{Publisher: "n1", Channel: "a", Token: tok},
		{Publisher: "n1", Channel: "b"},
		{Publisher: "n2", Channel: "a", Token: []byte("t2")}, // replaces a
	} {
		if err := d.SetLedgerEntry(s); err != nil {
			t.Fatal(err)
		}
	}
	tok[0] = 'X' // SetLedgerEntry copied it
	want := []snapshot.Subscription{{Publisher: "n2", Channel: "a", Token: []byte("t2")}, {Publisher: "n1", Channel: "b"}}
	got := d.Ledger()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ledger %+v, want %+v", got, want)
	}
	got[0].Token[0] = 'Y' // Ledger returned a copy
	if d.Ledger()[0].Token[0] != 't' {
		t.Fatal("Ledger shares its tokens with the caller")
	}
	if !d.RemoveLedgerEntry("b") || d.RemoveLedgerEntry("b") {
		t.Fatal("RemoveLedgerEntry: want true, then false for a repeat")
	}
	if err := d.SetLedgerEntry(snapshot.Subscription{Publisher: "n3", Channel: "c"}); err != nil {
		t.Fatal(err)
	}
	want = []snapshot.Subscription{want[0], {Publisher: "n3", Channel: "c"}}

	b, err := d.EncodeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.Decode(b, snapshot.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	d2 := restorePublisher(t, newPubEnv(t, nil).rt, id, s)
	if got := d2.Ledger(); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored ledger %+v, want %+v", got, want)
	}
}

func TestLedgerBounds(t *testing.T) {
	e := newPubEnv(t, nil)
	d := spawn(t, e.rt, "publisher", engine.SpawnOptions{})
	for _, s := range []snapshot.Subscription{
		{Channel: ""},
		{Channel: "Bad"},
		{Channel: "ok", Publisher: strings.Repeat("p", 1<<16)},
	} {
		if err := d.SetLedgerEntry(s); !errors.Is(err, engine.ErrBadLedgerEntry) {
			t.Fatalf("entry %.20q: got %v, want ErrBadLedgerEntry", s.Channel, err)
		}
	}
	// The byte bound: one token of all of it fits, then nothing more does.
	big := snapshot.Subscription{Channel: "big", Token: make([]byte, snapshot.DefaultMaxLedgerBytes-3)}
	if err := d.SetLedgerEntry(big); err != nil {
		t.Fatalf("an entry of exactly the byte bound: %v", err)
	}
	if err := d.SetLedgerEntry(snapshot.Subscription{Channel: "x"}); !errors.Is(err, engine.ErrLedgerFull) {
		t.Fatalf("past the byte bound: got %v, want ErrLedgerFull", err)
	}
	// Replacing an entry counts its new size, not both.
	big.Token = big.Token[:10]
	if err := d.SetLedgerEntry(big); err != nil {
		t.Fatal(err)
	}
	// The entry bound, on a daemon restored with a full ledger (filling
	// it entry by entry would be quadratic).
	id := newID(t)
	d2, err := e.rt.Spawn(context.Background(), "publisher", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := d2.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Stop(context.Background(), d2.Origin()); err != nil {
		t.Fatal(err)
	}
	s.Ledger = make([]snapshot.Subscription, snapshot.DefaultMaxLedgerEntries)
	for i := range s.Ledger {
		s.Ledger[i].Channel = "c" + itoa(i)
	}
	full := restorePublisher(t, e.rt, id, s)
	if err := full.SetLedgerEntry(snapshot.Subscription{Channel: "one-more"}); !errors.Is(err, engine.ErrLedgerFull) {
		t.Fatalf("entry past the bound: got %v, want ErrLedgerFull", err)
	}
	if err := full.SetLedgerEntry(snapshot.Subscription{Channel: "c7", Publisher: "n"}); err != nil {
		t.Fatalf("replacing an entry of a full ledger: %v", err)
	}
	if !full.RemoveLedgerEntry("c9") {
		t.Fatal("RemoveLedgerEntry(c9) = false")
	}
	if err := full.SetLedgerEntry(snapshot.Subscription{Channel: "one-more"}); err != nil {
		t.Fatalf("after a removal: %v", err)
	}
}

func itoa(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		if i /= 10; i == 0 {
			return string(b)
		}
	}
}
