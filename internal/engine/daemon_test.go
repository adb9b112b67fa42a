package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/host/chain"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

func TestEchoAndCounter(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{
		"echo":    example(t, "echo-wat", "echo-wat.wasm"),
		"counter": example(t, "counter-wat", "counter-wat.wasm"),
	})
	e := spawn(t, rt, "echo", engine.SpawnOptions{})
	if got := send(t, e, "hello"); len(got) != 1 || got[0] != "hello" {
		t.Fatalf("echo = %q", got)
	}
	if got := send(t, e, ""); len(got) != 1 || got[0] != "" {
		t.Fatalf("echo of empty = %q", got)
	}
	c := spawn(t, rt, "counter", engine.SpawnOptions{})
	for i := 1; i <= 5; i++ {
		if got := send(t, c, "x"); len(got) != 1 || got[0] != strconv.Itoa(i) {
			t.Fatalf("counter event %d = %q", i, got)
		}
	}
	if got := send(t, c, "get"); got[0] != "5" {
		t.Fatalf("get = %q", got)
	}
	st := c.Stats()
	if st.EventsProcessed != 6 || st.EventsEmitted != 6 || st.Errors != 0 || st.MemoryBytes != 65536 || st.InputSeq != 6 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestChainValidatesAndDetectsTampering(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"echo": example(t, "echo-wat", "echo-wat.wasm")})
	d := spawn(t, rt, "echo", engine.SpawnOptions{})
	head, hh := d.ChainHead()
	if head != chain.Genesis(d.Origin()) || hh != chain.GenesisHash(d.Origin()) {
		t.Fatalf("fresh head = %+v", head)
	}
	var all []engine.Output
	for i := 0; i < 20; i++ {
		outs, err := d.Deliver(context.Background(), engine.Event{Sender: uint64(100 + i%3), Seq: uint64(i), Payload: []byte{byte(i)}})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, outs...)
	}
	v := chain.NewGenesisValidator(d.Origin())
	for i, o := range all {
		if err := v.Accept(o.Link, o.Payload); err != nil {
			t.Fatalf("output %d: %v", i, err)
		}
	}
	if all[19].Link.Horizon == all[0].Link.Horizon {
		t.Fatal("horizon digest did not move with new senders")
	}
	// A validator must catch a changed payload, a dropped output and a foreign origin.
	bad := chain.NewGenesisValidator(d.Origin())
	_ = bad.Accept(all[0].Link, []byte("tampered"))
	if err := bad.Accept(all[1].Link, all[1].Payload); !errors.Is(err, chain.ErrParentMismatch) {
		t.Fatalf("tampered payload: %v", err)
	}
	gap := chain.NewGenesisValidator(d.Origin())
	if err := gap.Accept(all[1].Link, all[1].Payload); !errors.Is(err, chain.ErrSequenceGap) {
		t.Fatalf("gap: %v", err)
	}
	foreign := chain.NewGenesisValidator(d.Origin() + 1)
	if err := foreign.Accept(all[0].Link, all[0].Payload); !errors.Is(err, chain.ErrOriginMismatch) {
		t.Fatalf("origin: %v", err)
	}
}

func TestNoOutputsDoNotMoveChain(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"hello": fixture(t, "wasi_hello.wasm")})
	d := spawn(t, rt, "hello", engine.SpawnOptions{})
	outs, err := d.Deliver(context.Background(), engine.Event{Payload: []byte("x")})
	if err != nil || len(outs) != 0 {
		t.Fatalf("deliver = %v, %v", outs, err)
	}
	if h, _ := d.ChainHead(); h.Sequence != 0 {
		t.Fatalf("chain moved to %d without outputs", h.Sequence)
	}
	logs := d.Logs()
	if len(logs) != 1 || logs[0].Text != "hello" {
		t.Fatalf("WASI stdout should land in the daemon log, got %+v", logs)
	}
}

func TestTransparentSnapshotHiddenGlobals(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"hg": fixture(t, "hidden_global.wasm"), "counter": example(t, "counter-wat", "counter-wat.wasm")})
	for _, kind := range []string{"hg", "counter"} {
		id := newID(t)
		d, err := rt.Spawn(context.Background(), kind, id, engine.SpawnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var last []string
		for i := 0; i < 7; i++ {
			last = send(t, d, "x")
		}
		data, err := d.EncodeSnapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		head, hh := d.ChainHead()
		hz := d.Horizon()
		if err := rt.Stop(context.Background(), d.Origin()); err != nil {
			t.Fatal(err)
		}
		snap, err := snapshot.Decode(data, snapshot.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		r, err := rt.SpawnFromSnapshot(context.Background(), kind, id, snap, engine.SpawnOptions{})
		if err != nil {
			t.Fatalf("%s: restore: %v", kind, err)
		}
		got := send(t, r, "x")
		if kind == "counter" && got[0] != "8" {
			t.Fatalf("counter after restore = %q, want 8 (before: %q)", got, last)
		}
		if kind == "hg" && got[0] == last[0] {
			t.Fatalf("hidden-global daemon did not continue: %q then %q", last, got)
		}
		if rh := r.Horizon(); rh[7] < hz[7] {
			t.Fatalf("%s: horizon lost: %v vs %v", kind, rh, hz)
		}
		_ = head
		_ = hh
	}
}

func TestHiddenGlobalSnapshotIsExact(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"hg": fixture(t, "hidden_global.wasm")})
	id := newID(t)
	d, err := rt.Spawn(context.Background(), "hg", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		send(t, d, "x")
	}
	snap, err := d.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Globals) < 2 {
		t.Fatalf("snapshot carries %d globals; the fixture keeps its state in two non-exported ones", len(snap.Globals))
	}
	want := send(t, d, "x")
	rt.Stop(context.Background(), d.Origin())
	r, err := rt.SpawnFromSnapshot(context.Background(), "hg", id, snap, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := send(t, r, "x"); got[0] != want[0] {
		t.Fatalf("restored daemon emitted %q, the original %q", got, want)
	}
}

func TestRestoreContinuesChain(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"counter": example(t, "counter-wat", "counter-wat.wasm")})
	id := newID(t)
	d, _ := rt.Spawn(context.Background(), "counter", id, engine.SpawnOptions{})
	v := chain.NewGenesisValidator(d.Origin())
	deliver := func(d *engine.Daemon, sender uint64) {
		outs, err := d.Deliver(context.Background(), engine.Event{Sender: sender, Seq: 1, Payload: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			if err := v.Accept(o.Link, o.Payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	deliver(d, 1)
	deliver(d, 2)
	snap, _ := d.Snapshot(context.Background())
	rt.Stop(context.Background(), d.Origin())
	r, err := rt.SpawnFromSnapshot(context.Background(), "counter", id, snap, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deliver(r, 3)
	if h := r.Horizon(); len(h) != 3 {
		t.Fatalf("horizon after restore = %v, want 3 senders", h)
	}
	if st := r.Stats(); st.InputSeq != 3 {
		t.Fatalf("input seq after restore = %d, want 3", st.InputSeq)
	}
}

func TestCooperativeRoundTrip(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"coop": example(t, "cooperative-wat", "cooperative-wat.wasm")})
	id := newID(t)
	d, err := rt.Spawn(context.Background(), "coop", id, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		send(t, d, "x")
	}
	snap, err := d.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Mode != snapshot.Cooperative || len(snap.State) != 8 || binary.LittleEndian.Uint64(snap.State) != 4 || len(snap.Pages) != 0 {
		t.Fatalf("cooperative snapshot = mode %v state %x pages %d", snap.Mode, snap.State, len(snap.Pages))
	}
	rt.Stop(context.Background(), d.Origin())
	r, err := rt.SpawnFromSnapshot(context.Background(), "coop", id, snap, engine.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := send(t, r, "get"); got[0] != "4" {
		t.Fatalf("after cooperative restore get = %q", got)
	}
}

func TestRestoreRefusals(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{
		"counter": example(t, "counter-wat", "counter-wat.wasm"),
		"echo":    example(t, "echo-wat", "echo-wat.wasm"),
	})
	id := newID(t)
	d, _ := rt.Spawn(context.Background(), "counter", id, engine.SpawnOptions{})
	send(t, d, "x")
	data, err := d.EncodeSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rt.Stop(context.Background(), d.Origin())
	snap, _ := snapshot.Decode(data, snapshot.DefaultLimits())

	if _, err := rt.SpawnFromSnapshot(context.Background(), "counter", newID(t), snap, engine.SpawnOptions{}); !errors.Is(err, engine.ErrSnapshotIdentityMismatch) {
		t.Fatalf("wrong identity: %v", err)
	}
	if _, err := rt.SpawnFromSnapshot(context.Background(), "echo", id, snap, engine.SpawnOptions{}); !errors.Is(err, engine.ErrSnapshotModuleMismatch) {
		t.Fatalf("wrong module: %v", err)
	}
	if n := len(rt.Daemons()); n != 0 {
		t.Fatalf("refused restores left %d daemons", n)
	}
	// Tampered and truncated encodings never decode.
	for i := 0; i < len(data); i += len(data)/97 + 1 {
		bad := bytes.Clone(data)
		bad[i] ^= 0x40
		if _, err := snapshot.Decode(bad, snapshot.DefaultLimits()); err == nil {
			t.Fatalf("byte %d flipped: decoded", i)
		}
	}
	for _, n := range []int{0, 5, len(data) / 2, len(data) - 1} {
		if _, err := snapshot.Decode(data[:n], snapshot.DefaultLimits()); err == nil {
			t.Fatalf("truncated to %d: decoded", n)
		}
	}
}

func TestRunawayLoopStoppedWithinBudget(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"loop": fixture(t, "loop.wasm"), "recurse": fixture(t, "recurse.wasm")})
	for _, kind := range []string{"loop", "recurse"} {
		budget := 50 * time.Millisecond
		d := spawn(t, rt, kind, engine.SpawnOptions{Limits: engine.Limits{EventTimeout: budget}})
		start := time.Now()
		_, err := d.Deliver(context.Background(), engine.Event{Payload: []byte("go")})
		took := time.Since(start)
		var ee *engine.EventError
		if !errors.As(err, &ee) || !errors.Is(err, engine.ErrEventTimeout) {
			t.Fatalf("%s: err = %v, want ErrEventTimeout", kind, err)
		}
		if !ee.RolledBack {
			t.Fatalf("%s: daemon not rolled back: %v", kind, err)
		}
		// Generous upper bound: the machine is shared; the point is that it stopped.
		if took < budget || took > budget+5*time.Second {
			t.Fatalf("%s: stopped after %v with budget %v", kind, took, budget)
		}
		if st := d.Stats(); st.Errors != 1 || st.Failed {
			t.Fatalf("%s: stats after timeout = %+v", kind, st)
		}
	}
}

func TestMemoryGrowthCappedExactly(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"grow": fixture(t, "grow.wasm")})
	for _, pages := range []uint64{1, 3, 16} {
		d := spawn(t, rt, "grow", engine.SpawnOptions{Limits: engine.Limits{MaxMemoryBytes: pages * 65536}})
		got := send(t, d, "x")
		if len(got) != 1 || got[0] != strconv.FormatUint(pages, 10) {
			t.Fatalf("cap %d pages: guest saw memory.size %q", pages, got)
		}
		if st := d.Stats(); st.MemoryBytes != pages*65536 {
			t.Fatalf("cap %d pages: memory %d bytes", pages, st.MemoryBytes)
		}
	}
	// A cap below the module's initial memory is refused at spawn.
	if _, err := rt.Spawn(context.Background(), "grow", newID(t), engine.SpawnOptions{Limits: engine.Limits{MaxMemoryBytes: 100}}); err == nil {
		t.Fatal("a 100-byte memory cap was accepted")
	}
}

func TestOutOfBoundsEmit(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"oob": fixture(t, "oob_emit.wasm")})
	d := spawn(t, rt, "oob", engine.SpawnOptions{})
	_, err := d.Deliver(context.Background(), engine.Event{Payload: []byte("x")})
	if !errors.Is(err, engine.ErrBadPointer) {
		t.Fatalf("err = %v, want ErrBadPointer", err)
	}
}

func TestOutputLimits(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"big": fixture(t, "big_emit.wasm")})
	d := spawn(t, rt, "big", engine.SpawnOptions{Limits: engine.Limits{MaxOutputBytes: 1000}})
	ask := func(n uint32) error {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], n)
		_, err := d.Deliver(context.Background(), engine.Event{Payload: b[:]})
		return err
	}
	if err := ask(1000); err != nil {
		t.Fatalf("1000 bytes at a 1000-byte limit: %v", err)
	}
	if err := ask(1001); !errors.Is(err, engine.ErrOutputLimit) {
		t.Fatalf("1001 bytes: %v", err)
	}
	one := spawn(t, rt, "big", engine.SpawnOptions{Limits: engine.Limits{MaxOutputSize: 500}})
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], 501)
	if _, err := one.Deliver(context.Background(), engine.Event{Payload: b[:]}); !errors.Is(err, engine.ErrOutputLimit) {
		t.Fatalf("one 501-byte output at a 500-byte limit: %v", err)
	}
	big := spawn(t, rt, "big", engine.SpawnOptions{Limits: engine.Limits{MaxInputBytes: 3}})
	if _, err := big.Deliver(context.Background(), engine.Event{Payload: []byte("four")}); !errors.Is(err, engine.ErrInputTooLarge) {
		t.Fatalf("oversize input: %v", err)
	}
}

func TestTrapIsolationAndRollback(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"trap": fixture(t, "trap.wasm"), "counter": example(t, "counter-wat", "counter-wat.wasm")})
	victim := spawn(t, rt, "trap", engine.SpawnOptions{})
	bystander := spawn(t, rt, "counter", engine.SpawnOptions{})
	for i := 0; i < 3; i++ {
		send(t, victim, "x")
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			send(t, bystander, "x")
		}
	}()
	for i := 0; i < 5; i++ {
		_, err := victim.Deliver(context.Background(), engine.Event{Payload: []byte("trap")})
		var ee *engine.EventError
		if !errors.As(err, &ee) || !errors.Is(err, engine.ErrGuestTrap) || !ee.RolledBack {
			t.Fatalf("trap: %v", err)
		}
	}
	wg.Wait()
	if got := send(t, victim, "x"); got[0] != "4" {
		t.Fatalf("after 5 rolled-back traps the count is %q, want 4", got)
	}
	if got := send(t, bystander, "get"); got[0] != "200" {
		t.Fatalf("bystander count %q", got)
	}
	if st := victim.Stats(); st.Errors != 5 || st.EventsProcessed != 4 {
		t.Fatalf("victim stats %+v", st)
	}
}

func TestRollbackAfterManyEvents(t *testing.T) {
	// More events than one checkpoint interval, so rollback replays a journal
	// on top of a refreshed checkpoint.
	rt := readyRuntime(t, map[string][]byte{"trap": fixture(t, "trap.wasm")})
	d := spawn(t, rt, "trap", engine.SpawnOptions{})
	for i := 0; i < 2500; i++ {
		send(t, d, "x")
	}
	if _, err := d.Deliver(context.Background(), engine.Event{Payload: []byte("trap")}); !errors.Is(err, engine.ErrGuestTrap) {
		t.Fatal(err)
	}
	if got := send(t, d, "x"); got[0] != "2501" {
		t.Fatalf("count after rollback = %q, want 2501", got)
	}
}

func TestGuestFailMessage(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"fail": fixture(t, "fail.wasm")})
	d := spawn(t, rt, "fail", engine.SpawnOptions{})
	_, err := d.Deliver(context.Background(), engine.Event{Payload: []byte("x")})
	var ee *engine.EventError
	if !errors.As(err, &ee) || !errors.Is(err, engine.ErrGuestError) || ee.Detail != "bad input" {
		t.Fatalf("err = %v", err)
	}
	if st := d.Stats(); st.LastError == "" {
		t.Fatal("last error not recorded")
	}
}

func TestTableMutationRefusesTransparentSnapshot(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"tm": fixture(t, "table_mut.wasm")})
	d := spawn(t, rt, "tm", engine.SpawnOptions{})
	if _, err := d.Snapshot(context.Background()); err != nil {
		t.Fatalf("snapshot before any table.set: %v", err)
	}
	send(t, d, "x")
	if _, err := d.Snapshot(context.Background()); !errors.Is(err, engine.ErrSnapshotUnsupported) {
		t.Fatalf("snapshot after table.set: %v", err)
	}
}

func TestObservers(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"echo": example(t, "echo-wat", "echo-wat.wasm")})
	d := spawn(t, rt, "echo", engine.SpawnOptions{})
	var mu sync.Mutex
	var seen []string
	o := d.Observe(func(ev engine.Event, outs []engine.Output) {
		// Outside the daemon lock: reading stats must not deadlock.
		_ = d.Stats()
		mu.Lock()
		seen = append(seen, string(ev.Payload)+"="+string(outs[0].Payload))
		mu.Unlock()
	})
	send(t, d, "a")
	send(t, d, "b")
	o.Close()
	send(t, d, "c")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "a=a" || seen[1] != "b=b" {
		t.Fatalf("observer saw %q", seen)
	}
}

// TestInterceptorToggleRace: removing an interceptor while events arrive
// must never crash a delivery (a migration going live does exactly this).
func TestInterceptorToggleRace(t *testing.T) {
	rt := readyRuntime(t, map[string][]byte{"counter": example(t, "counter-wat", "counter-wat.wasm")})
	d := spawn(t, rt, "counter", engine.SpawnOptions{})
	f := func(context.Context, engine.Event) ([]engine.Output, error) { return nil, nil }
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				d.SetInterceptor(f)
				d.SetInterceptor(nil)
			}
		}
	}()
	for i := 0; i < 2000; i++ {
		if _, err := d.Deliver(context.Background(), engine.Event{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
}
