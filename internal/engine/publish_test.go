package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/identity"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// pub is one publish of a publisher command.
type pub struct {
	ch   string
	size uint32
}

// pubCmd is the publisher fixture's event (testdata/publisher.wat).
func pubCmd(fail bool, pubs ...pub) []byte {
	b := []byte{0}
	if fail {
		b[0] = 1
	}
	for _, p := range pubs {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(p.ch)))
		b = binary.LittleEndian.AppendUint32(b, p.size)
		b = append(b, p.ch...)
	}
	return b
}

func pubsTo(size uint32, chs ...string) []pub {
	out := make([]pub, len(chs))
	for i, c := range chs {
		out[i] = pub{c, size}
	}
	return out
}

type pubEnv struct {
	rt    *engine.Runtime
	mu    sync.Mutex
	woken int
}

// newPubEnv is a runtime that grants publish to every daemon by default,
// as the node's is.
func newPubEnv(t *testing.T, j engine.InputJournal) *pubEnv {
	t.Helper()
	e := &pubEnv{}
	cfg := engine.Config{Journal: j, DefaultGrants: engine.Grants{Publish: true}, OnSends: func(uint64) {
		e.mu.Lock()
		e.woken++
		e.mu.Unlock()
	}}
	e.rt = newRuntime(t, cfg)
	registerPublisher(t, e.rt)
	if err := e.rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

func registerPublisher(t *testing.T, rt *engine.Runtime) {
	t.Helper()
	m, err := os.ReadFile(filepath.Join("testdata", "publisher.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RegisterModule(context.Background(), m, "publisher"); err != nil {
		t.Fatal(err)
	}
}

// publishes returns the pending outbox as "seq:channel<prev" strings.
func publishes(ss []engine.Send) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		if s.IsPublish() {
			out[i] = fmt.Sprintf("%d:%s<%d", s.Seq, s.Channel, s.Prev)
		} else {
			out[i] = fmt.Sprintf("%d:send", s.Seq)
		}
	}
	return out
}

func wantPending(t *testing.T, d *engine.Daemon, want ...string) {
	t.Helper()
	if got := publishes(d.PendingSends(0)); !reflect.DeepEqual(got, want) {
		t.Fatalf("pending %q, want %q", got, want)
	}
}

func wantCodes(t *testing.T, d *engine.Daemon, seq uint64, cmd []byte, want ...byte) {
	t.Helper()
	codes, err := run(t, d, seq, cmd)
	if err != nil || !bytes.Equal(codes, want) {
		t.Fatalf("event %d: codes %v err %v, want %v", seq, codes, err, want)
	}
}

func TestPublishQueuedAndChained(t *testing.T) {
	e := newPubEnv(t, nil)
	d := spawn(t, e.rt, "publisher", engine.SpawnOptions{})
	wantCodes(t, d, 1, pubCmd(false, pubsTo(6, "a", "a", "b/c")...), 0, 0, 0)
	wantCodes(t, d, 2, pubCmd(false, pubsTo(4, "b/c", "a")...), 0, 0)
	wantPending(t, d, "1:a<0", "2:a<1", "3:b/c<0", "4:b/c<3", "5:a<2")
	p := d.PendingSends(0)
	if p[0].Target != 0 || len(p[0].Payload) != 6 || binary.LittleEndian.Uint32(p[1].Payload) != 1 || len(p[4].Payload) != 4 {
		t.Fatalf("pending %+v: wrong target or payload", p)
	}
	if got := publishes(d.PendingPublishes("a", 0)); !reflect.DeepEqual(got, []string{"1:a<0", "2:a<1", "5:a<2"}) {
		t.Fatalf("PendingPublishes(a) = %q", got)
	}
	if got := publishes(d.PendingPublishes("a", 2)); len(got) != 2 || got[1] != "2:a<1" {
		t.Fatalf("PendingPublishes(a, 2) = %q, want the oldest two", got)
	}
	if got := d.PendingPublishes("nope", 0); len(got) != 0 {
		t.Fatalf("PendingPublishes of an unknown channel = %v", got)
	}
	if got := d.PublishChannels(); !reflect.DeepEqual(got, []string{"a", "b/c"}) {
		t.Fatalf("PublishChannels = %q, want [a b/c]", got)
	}
	// Publishes are not sends: no target, nothing to the target 0.
	if got := d.SendTargets(); len(got) != 0 {
		t.Fatalf("SendTargets = %x, want none", got)
	}
	if got := d.PendingSendsTo(0, 0); len(got) != 0 {
		t.Fatalf("PendingSendsTo(0) = %v, want none", got)
	}
	e.mu.Lock()
	woken := e.woken
	e.mu.Unlock()
	if woken != 2 {
		t.Fatalf("OnSends called %d times, want once per committing event (2)", woken)
	}
	// Delivery removes a publish; the chain goes on from the last one
	// committed, delivered or not.
	if !d.SentDelivered(5) || !d.SentDelivered(1) || d.SentDelivered(5) {
		t.Fatalf("SentDelivered: want true, true, then false for a repeat")
	}
	wantCodes(t, d, 3, pubCmd(false, pubsTo(1, "a", "new")...), 0, 0)
	wantPending(t, d, "2:a<1", "3:b/c<0", "4:b/c<3", "6:a<5", "7:new<0")
	if d.PublishChannels()[2] != "new" || d.OutSeq() != 7 {
		t.Fatalf("PublishChannels %q OutSeq %d", d.PublishChannels(), d.OutSeq())
	}
}

func TestPublishNeedsGrant(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(t, engine.Config{})
	registerPublisher(t, rt)
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Spawn(ctx, "publisher", newID(t), engine.SpawnOptions{}); !errors.Is(err, engine.ErrNotGranted) {
		t.Fatalf("spawn without a grant: got %v, want ErrNotGranted", err)
	}
	id := newID(t)
	d, err := rt.Spawn(ctx, "publisher", id, engine.SpawnOptions{Grants: engine.Grants{Publish: true}})
	if err != nil {
		t.Fatal(err)
	}
	wantCodes(t, d, 1, pubCmd(false, pub{"x", 1}), 0)
	s, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx, d.Origin()); err != nil {
		t.Fatal(err)
	}
	// A restore is checked as a spawn is: refused without a grant, taken
	// with the runtime's default one (what a migration's arrival gets).
	if _, err := rt.SpawnFromSnapshot(ctx, "publisher", id, s, engine.SpawnOptions{}); !errors.Is(err, engine.ErrNotGranted) {
		t.Fatalf("restore without a grant: got %v, want ErrNotGranted", err)
	}
	e := newPubEnv(t, nil)
	d2 := restorePublisher(t, e.rt, id, s)
	wantPending(t, d2, "1:x<0")
}

func restorePublisher(t *testing.T, rt *engine.Runtime, id identity.Identity, s *snapshot.Snapshot) *engine.Daemon {
	t.Helper()
	d, err := rt.SpawnFromSnapshot(context.Background(), "publisher", id, s, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRolledBackEventPublishesNothing(t *testing.T) {
	e := newPubEnv(t, nil)
	d := spawn(t, e.rt, "publisher", engine.SpawnOptions{})
	wantCodes(t, d, 1, pubCmd(false, pub{"a", 3}), 0)
	_, err := run(t, d, 2, pubCmd(true, pubsTo(3, "a", "c", "c")...))
	var ee *engine.EventError
	if !errors.As(err, &ee) || !ee.RolledBack {
		t.Fatalf("failing event: got %v, want a rolled-back EventError", err)
	}
	wantPending(t, d, "1:a<0")
	if got := d.PublishChannels(); !reflect.DeepEqual(got, []string{"a"}) {
		t.Fatalf("PublishChannels = %q after a rolled-back event", got)
	}
	e.mu.Lock()
	woken := e.woken
	e.mu.Unlock()
	if woken != 1 {
		t.Fatalf("OnSends called %d times, want 1: a rolled-back event must not wake the deliverer", woken)
	}
	// The rolled-back publishes took no seq and left no chain behind.
	wantCodes(t, d, 3, pubCmd(false, pubsTo(3, "c", "a")...), 0, 0)
	wantPending(t, d, "1:a<0", "2:c<0", "3:a<1")
}

func TestPublishBadCalls(t *testing.T) {
	e := newPubEnv(t, nil)
	d := spawn(t, e.rt, "publisher", engine.SpawnOptions{})
	bad := []string{"", "A", "a//b", "/a", "a/", "a/../b", ".", "x y", strings.Repeat("x", 256)}
	cmd := pubCmd(false, pubsTo(1, bad...)...)
	want := bytes.Repeat([]byte{abi.PublishBadChannel}, len(bad))
	wantCodes(t, d, 1, cmd, want...)
	wantCodes(t, d, 2, pubCmd(false, pub{"ok", engine.MaxSendBytes + 1}, pub{strings.Repeat("y", 255), engine.MaxSendBytes}),
		abi.PublishTooLarge, abi.PublishQueued)
	wantPending(t, d, "1:"+strings.Repeat("y", 255)+"<0")
}

func TestPublishChannelBound(t *testing.T) {
	e := newPubEnv(t, nil)
	d := spawn(t, e.rt, "publisher", engine.SpawnOptions{})
	chans := func(from, n int) []string {
		var out []string
		for i := from; i < from+n; i++ {
			out = append(out, fmt.Sprintf("ch%d", i))
		}
		return out
	}
	// A rolled-back event's new channels do not count.
	if _, err := run(t, d, 1, pubCmd(true, pubsTo(1, chans(1000, engine.MaxPublishChannels)...)...)); err == nil {
		t.Fatal("the failing event succeeded")
	}
	// 255 channels in one event, repeats of them not counted twice ...
	first := chans(0, engine.MaxPublishChannels-1)
	cmd := pubCmd(false, pubsTo(1, append(first, first...)...)...)
	wantCodes(t, d, 2, cmd, make([]byte, 2*len(first))...)
	// ... then the 256th is taken and the 257th refused, in the same
	// event, and the event's own new channel is not refused again.
	wantCodes(t, d, 3, pubCmd(false, pubsTo(1, "last", "one-too-many", "last", "ch0")...),
		abi.PublishQueued, abi.PublishTooManyChannels, abi.PublishQueued, abi.PublishQueued)
	// Delivering every publish frees no channel: each keeps its order.
	for _, s := range d.PendingSends(0) {
		d.SentDelivered(s.Seq)
	}
	wantCodes(t, d, 4, pubCmd(false, pubsTo(1, "another", "ch7")...), abi.PublishTooManyChannels, abi.PublishQueued)
	// ch7 went out as seqs 8 and 263 in event 2.
	wantPending(t, d, "514:ch7<263")
}

func TestPublishFull(t *testing.T) {
	e := newPubEnv(t, nil)
	d := spawn(t, e.rt, "publisher", engine.SpawnOptions{})
	names := make([]string, engine.MaxOutboxEntries+2)
	for i := range names {
		names[i] = "q"
	}
	codes, err := run(t, d, 2, pubCmd(false, pubsTo(2, names...)...))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range codes {
		want := byte(abi.PublishQueued)
		if i >= engine.MaxOutboxEntries {
			want = abi.PublishFull
		}
		if c != want {
			t.Fatalf("publish %d answered %d, want %d", i, c, want)
		}
	}
	d.SentDelivered(1)
	wantCodes(t, d, 3, pubCmd(false, pubsTo(2, "q", "q")...), abi.PublishQueued, abi.PublishFull)
}

func TestPublishesTravelInSnapshot(t *testing.T) {
	ctx := context.Background()
	e := newPubEnv(t, nil)
	id := newID(t)
	d, err := e.rt.Spawn(ctx, "publisher", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantCodes(t, d, 1, pubCmd(false, pubsTo(5, "a", "b", "a", "gone")...), 0, 0, 0, 0)
	d.SentDelivered(2)
	d.SentDelivered(4)
	before := d.PendingSends(0)
	b, err := d.EncodeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b[6] != snapshot.VersionPublish {
		t.Fatalf("snapshot version %d, want %d", b[6], snapshot.VersionPublish)
	}
	s, err := snapshot.Decode(b, snapshot.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	e2 := newPubEnv(t, nil)
	d2 := restorePublisher(t, e2.rt, id, s)
	clear(b) // the restored outbox must not alias the encoded bytes
	after := d2.PendingSends(0)
	if !reflect.DeepEqual(publishes(after), publishes(before)) || !bytes.Equal(after[1].Payload[:4], []byte{2, 0, 0, 0}) {
		t.Fatalf("restored %q, want %q", publishes(after), publishes(before))
	}
	// The chains go on where they were, delivered channels included.
	wantCodes(t, d2, 2, pubCmd(false, pubsTo(1, "gone", "b", "a")...), 0, 0, 0)
	wantPending(t, d2, "1:a<0", "3:a<1", "5:gone<4", "6:b<2", "7:a<3")
}

// A daemon that only ever sent keeps writing version 3 snapshots.
func TestSendOnlySnapshotStaysVersion3(t *testing.T) {
	ctx := context.Background()
	e := newSenderEnv(t, nil)
	d := spawn(t, e.rt, "sender", engine.SpawnOptions{})
	if _, err := run(t, d, 1, sendCmd(2, false, 3, 4)); err != nil {
		t.Fatal(err)
	}
	b, err := d.EncodeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b[6] != snapshot.VersionOutbox {
		t.Fatalf("snapshot version %d, want %d", b[6], snapshot.VersionOutbox)
	}
}

// Rollback replays and crash redos hand the guest the recorded answers,
// so they rebuild the live run's outbox: same seqs, channels and chains.
func TestRedoRebuildsPublishes(t *testing.T) {
	ctx := context.Background()
	j := &memJournal{}
	e := newPubEnv(t, j)
	id := newID(t)
	d, err := e.rt.Spawn(ctx, "publisher", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantCodes(t, d, 1, pubCmd(false, pubsTo(4, "a", "b")...), 0, 0)
	ckpt, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ckpt = ckpt.Clone()
	d.SentDelivered(1)
	wantCodes(t, d, 2, pubCmd(false, pubsTo(4, "a", "c", "b", "a")...), 0, 0, 0, 0)
	// A failing event makes the daemon replay event 2 from its rollback
	// point; the chain it continues must be the live one.
	if _, err := run(t, d, 3, pubCmd(true, pub{"a", 1})); err == nil {
		t.Fatal("the failing event succeeded")
	}
	wantCodes(t, d, 4, pubCmd(false, pub{"c", 1}), 0)
	live := publishes(d.PendingSends(0))
	if want := []string{"2:b<0", "3:a<1", "4:c<0", "5:b<2", "6:a<3", "7:c<4"}; !reflect.DeepEqual(live, want) {
		t.Fatalf("live %q, want %q", live, want)
	}

	e2 := newPubEnv(t, nil)
	d2 := restorePublisher(t, e2.rt, id, ckpt)
	for _, je := range j.entries[len(j.entries)-2:] {
		if _, err := d2.Redo(ctx, je.ev, je.rec); err != nil {
			t.Fatalf("redo: %v", err)
		}
	}
	// The checkpoint predates the delivery of seq 1.
	if got := publishes(d2.PendingSends(0)); !reflect.DeepEqual(got, append([]string{"1:a<0"}, live...)) {
		t.Fatalf("redo %q, want 1:a<0 then %q", got, live)
	}
}
