package history

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// builder writes hand-made histories: times are milliseconds from t0.
type builder struct {
	ops []Op
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func (b *builder) op(client string, k Kind, id uint64, from, to int, o Outcome, v uint64) *builder {
	b.ops = append(b.ops, Op{Index: len(b.ops), Client: client, Kind: k, EventID: id, Invoke: ms(from), Complete: ms(to), Outcome: o, Value: v})
	return b
}

func (b *builder) send(c string, id uint64, from, to int, o Outcome, v uint64) *builder {
	return b.op(c, Send, id, from, to, o, v)
}

func (b *builder) read(from, to int, v uint64) *builder { return b.op("r", Read, 0, from, to, OK, v) }

// valid is a history a correct counter can produce: two writers, a
// reader, a retried unknown send answered already applied, another
// retried one answered with its first count after later answers, and an
// unknown send that was never applied.
func valid() *builder {
	b := &builder{}
	b.send("a", 1, 0, 10, OK, 1).
		send("b", 1, 5, 20, OK, 2).       // overlaps a/1
		read(12, 15, 1).                  // after a/1, concurrent with b/1
		send("a", 2, 21, 30, Unknown, 0). // answer lost ...
		send("a", 2, 31, 35, Duplicate, 0).
		read(36, 40, 3).
		send("b", 2, 22, 40, Unknown, 0). // applied as 4, answer lost
		send("a", 3, 41, 45, OK, 5).
		send("b", 2, 46, 50, OK, 4).      // the retry is answered with its first count
		send("b", 3, 51, 60, Unknown, 0). // never applied
		read(61, 62, 5)
	return b
}

func TestValidHistoryPasses(t *testing.T) {
	res := Check(valid().ops, 5)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if res.Events != 6 || res.Acked != 5 || res.Unknown != 1 || res.Sends != 8 || res.Reads != 3 {
		t.Fatalf("counted %s", res)
	}
	// The unknown event b/3 may also have been applied.
	if err := Check(valid().read(63, 64, 6).ops, 6).Err(); err != nil {
		t.Fatalf("unknown event applied: %v", err)
	}
}

func TestViolations(t *testing.T) {
	for _, tc := range []struct {
		name, check string
		b           *builder
		final       uint64
	}{
		{"final below acknowledged", "lost", valid(), 4},
		{"two events one count", "lost", (&builder{}).send("a", 1, 0, 10, OK, 1).send("b", 1, 0, 10, OK, 1), 2},
		{"answer above final", "lost", (&builder{}).send("a", 1, 0, 10, OK, 1).read(11, 12, 2), 1},
		{"final above possible", "duplicate", valid(), 7},
		{"refused event applied", "duplicate", (&builder{}).send("a", 1, 0, 10, OK, 1).send("a", 2, 11, 12, Failed, 0), 2},
		{"one event two counts", "duplicate", (&builder{}).send("a", 1, 0, 10, OK, 1).send("b", 1, 11, 20, OK, 2).send("a", 1, 21, 30, OK, 3), 3},
		{"already applied, never sent", "duplicate", (&builder{}).send("a", 1, 0, 10, Failed, 0).send("a", 1, 11, 20, Duplicate, 0), 1},
		{"read misses a completed send", "stale read", (&builder{}).send("a", 1, 0, 10, OK, 1).send("a", 2, 11, 20, OK, 2).read(21, 25, 1), 2},
		{"read goes back", "stale read", (&builder{}).send("a", 1, 0, 10, OK, 1).send("a", 2, 0, 10, OK, 2).read(11, 12, 2).read(13, 14, 1), 2},
		{"send answers an old count", "stale read", (&builder{}).send("a", 1, 0, 10, OK, 2).send("b", 1, 0, 5, OK, 1).read(11, 12, 2).send("a", 2, 13, 14, OK, 2), 3},
		{"read misses an already-applied ack", "stale read", (&builder{}).send("a", 1, 0, 10, Unknown, 0).send("a", 1, 11, 12, Duplicate, 0).read(13, 14, 0), 1},
		{"read from the future", "future read", (&builder{}).send("a", 1, 0, 10, OK, 1).read(11, 12, 2).send("a", 2, 13, 14, OK, 2), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Check(tc.b.ops, tc.final)
			err := res.Err()
			if !errors.Is(err, ErrViolation) {
				t.Fatalf("passed: %s", res)
			}
			found := false
			for _, v := range res.Violations {
				found = found || v.Check == tc.check
			}
			if !found {
				t.Fatalf("no %q violation: %v", tc.check, err)
			}
		})
	}
}

// TestLoneDuplicateAllowed: a client that resends inside one recorded
// attempt (the CLI) may get "already applied" on its only attempt.
func TestLoneDuplicateAllowed(t *testing.T) {
	b := (&builder{}).send("a", 1, 0, 10, OK, 1).send("cli", 1, 5, 30, Duplicate, 0).read(31, 32, 2)
	if err := Check(b.ops, 2).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestRetryAnsweredLateIsNotStale: a send's answer may be replayed to a
// retry long after later counts were answered; it took effect at its first
// attempt.
func TestRetryAnsweredLateIsNotStale(t *testing.T) {
	b := (&builder{}).send("a", 1, 0, 10, Unknown, 0).send("b", 1, 11, 20, OK, 2).read(21, 22, 2).send("a", 1, 23, 30, OK, 1)
	if err := Check(b.ops, 2).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	r := NewRecorder()
	var wg sync.WaitGroup
	var mu sync.Mutex
	count := uint64(0)
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := uint64(1); id <= 50; id++ {
				call := r.Invoke(fmt.Sprint("c", c), Send, id)
				mu.Lock()
				count++
				v := count
				mu.Unlock()
				call.OK(v)
				call.Fail(errors.New("ignored: a call completes once"))
				rd := r.Invoke("reader", Read, 0)
				mu.Lock()
				v = count
				mu.Unlock()
				rd.OK(v)
			}
		}()
	}
	wg.Wait()
	ops := r.Ops()
	if len(ops) != 800 {
		t.Fatalf("%d ops", len(ops))
	}
	if err := Check(ops, count).Err(); err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		if o.Outcome != OK || o.Complete.Before(o.Invoke) {
			t.Fatalf("op %s completed %v before invoked %v", o, o.Complete, o.Invoke)
		}
	}
	// A lost event is found in the same history.
	if err := Check(ops, count-1).Err(); err == nil || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("final-1: %v", err)
	}
}
