package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// recorder stands in for the host's publish import.
type recorder struct {
	sent   []string
	failAt int // fail the publish with this 1-based index; 0: never
	err    error
}

func (r *recorder) publish(channel string, p []byte) error {
	if r.failAt > 0 && len(r.sent)+1 == r.failAt {
		return r.err
	}
	r.sent = append(r.sent, channel+"|"+string(p))
	return nil
}

func self() [32]byte { return [32]byte{0xab, 0xcd, 0x01, 0x23, 0xff} }

func run(t *testing.T, a *aggregator, r *recorder, payload string) ([]string, error) {
	t.Helper()
	outs, err := a.handle([]byte(payload), self, r.publish)
	var s []string
	for _, o := range outs {
		s = append(s, string(o))
	}
	return s, err
}

func mustRun(t *testing.T, a *aggregator, r *recorder, payload string, want ...string) {
	t.Helper()
	got, err := run(t, a, r, payload)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("%q: %q, %v; want %q", payload, got, err, want)
	}
}

func TestAggregate(t *testing.T) {
	a, r := newAggregator(), &recorder{}
	mustRun(t, a, r, "get", "total=0", "anomalies=0")
	for _, m := range []string{"b 1", "a 1", "b 2", "a 2", "a 2", "b 4", "a 3", "b 3", "x", "", "c 0", "c 01", "c -1", "? 1", "c 1 2"} {
		mustRun(t, a, r, m)
	}
	// a: duplicate 2 (1); b: 4 skips 3, then 3 goes back (2); seven unparsable.
	mustRun(t, a, r, "get", "total=15", "anomalies=10", "?=7:0", "a=4:3", "b=4:3")
}

func TestAggregatePublisherCap(t *testing.T) {
	a, r := newAggregator(), &recorder{}
	for i := range maxPublishers + 2 {
		mustRun(t, a, r, fmt.Sprintf("p%05d 1", i))
	}
	got, _ := run(t, a, r, "get")
	if len(got) != 2+maxPublishers+1 || got[1] != "anomalies=2" || got[2] != "?=2:0" {
		t.Fatalf("after %d publishers: %d outputs, head %q", maxPublishers+2, len(got), got[:3])
	}
	mustRun(t, a, r, "p00000 2") // known names still count after the cap
	if got, _ := run(t, a, r, "get"); got[3] != "p00000=2:2" {
		t.Fatalf("got %q", got[3])
	}
}

func TestPub(t *testing.T) {
	a, r := newAggregator(), &recorder{}
	mustRun(t, a, r, "pub orders 2", "published=2 last=2")
	mustRun(t, a, r, "pub  audit  1  t1 ", "published=1 last=3")
	want := []string{"orders|dabcd0123 1", "orders|dabcd0123 2", "audit|t1 3"}
	if !slices.Equal(r.sent, want) {
		t.Fatalf("published %q, want %q", r.sent, want)
	}
	// Its own publishes, delivered back, aggregate like anyone's.
	for _, s := range r.sent {
		mustRun(t, a, r, strings.SplitN(s, "|", 2)[1])
	}
	mustRun(t, a, r, "get", "total=3", "anomalies=1", "dabcd0123=2:2", "t1=1:3")
}

func TestPubErrors(t *testing.T) {
	long := strings.Repeat("t", maxName+1)
	for _, c := range []struct {
		payload string
		want    error
	}{
		{"pub", errUsage},
		{"pub orders 1 t x", errUsage},
		{"pub orders 0", errCount},
		{"pub orders 1001", errCount},
		{"pub orders 01", errCount},
		{"pub orders -1", errCount},
		{"pub orders x", errCount},
		{"pub orders 99999999999999999999999", errCount},
		{"pub orders 1 ?", errTag},
		{"pub orders 1 " + long, errTag},
	} {
		a, r := newAggregator(), &recorder{}
		outs, err := run(t, a, r, c.payload)
		if !errors.Is(err, c.want) || outs != nil || len(r.sent) != 0 {
			t.Errorf("%.40q: outs %q err %v sent %q; want %v", c.payload, outs, err, r.sent, c.want)
		}
	}
	mustRun(t, newAggregator(), &recorder{}, "pub orders 1000", "published=1000 last=1000")
}

// Two fields are a message even when they start like a command, so no
// well-formed channel message can fail its event.
func TestCommandLikeMessages(t *testing.T) {
	a, r := newAggregator(), &recorder{}
	for _, m := range []string{"get 1", "pub 1", "get 2", "pub orders", "get x y"} {
		mustRun(t, a, r, m)
	}
	mustRun(t, a, r, "pub orders 1 get", "published=1 last=1")
	mustRun(t, a, r, "get", "total=5", "anomalies=2", "?=2:0", "get=2:2", "pub=1:1")
	if !slices.Equal(r.sent, []string{"orders|get 1"}) {
		t.Fatalf("published %q", r.sent)
	}
}

// A failing publish fails the event and leaves the seq counter alone, so
// the next batch (the failed one having been withdrawn) has no gap.
func TestPubFailure(t *testing.T) {
	denied := errors.New("denied")
	a, r := newAggregator(), &recorder{failAt: 3, err: denied}
	_, err := run(t, a, r, "pub orders 5")
	if !errors.Is(err, denied) || !errors.Is(err, errPublishing) || !strings.Contains(err.Error(), "error=denied after=2") {
		t.Fatalf("err %v", err)
	}
	r.failAt = 0
	mustRun(t, a, r, "pub orders 1", "published=1 last=1")
}

func FuzzHandle(f *testing.F) {
	for _, s := range []string{"get", "pub c 3", "pub c 2 t", "a 1", "a 2", "? 3", "", "pub", "x 0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		a, r := newAggregator(), &recorder{}
		for range 2 {
			outs, err := a.handle(payload, self, r.publish)
			if err != nil && outs != nil {
				t.Fatalf("error %v with outputs %q", err, outs)
			}
		}
		if len(r.sent) > 2*maxPublish {
			t.Fatalf("published %d", len(r.sent))
		}
		var sum uint64
		for name, p := range a.pubs {
			if len(name) > maxName {
				t.Fatalf("name of %d bytes", len(name))
			}
			sum += p.count
		}
		if sum != a.total || a.anomalies > a.total || len(a.pubs) > maxPublishers+1 {
			t.Fatalf("total %d, sum %d, anomalies %d, %d publishers", a.total, sum, a.anomalies, len(a.pubs))
		}
		if got := len(a.get()); got != 2+len(a.pubs) {
			t.Fatalf("get gave %d outputs for %d publishers", got, len(a.pubs))
		}
	})
}
