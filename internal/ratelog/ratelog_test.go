package ratelog

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestOneLinePerClassPerIntervalWithCount(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := NewWithClock(10*time.Second, 8, c.now)
	written := 0
	for i := 0; i < 5000; i++ {
		if _, _, ok := l.Allow("decrypt"); ok {
			written++
		}
	}
	if written != 1 {
		t.Fatalf("5000 lines in one interval: %d written, want 1", written)
	}
	c.advance(10 * time.Second)
	_, n, ok := l.Allow("decrypt")
	if !ok || n != 4999 {
		t.Fatalf("after the interval: ok=%v suppressed=%d, want true 4999", ok, n)
	}
	if _, _, ok := l.Allow("checksum"); !ok {
		t.Fatal("another class is limited separately: its first line must pass")
	}
}

func TestClassTableIsBounded(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := NewWithClock(time.Minute, 4, c.now)
	written := 0
	for i := 0; i < 1000; i++ {
		if used, _, ok := l.Allow(fmt.Sprint("class-", i)); ok {
			written++
			_ = used
		}
	}
	// Four real classes plus one overflow line.
	if written != 5 {
		t.Fatalf("1000 distinct classes: %d lines written, want 5", written)
	}
	if len(l.classes) > 5 {
		t.Fatalf("%d classes tracked, want at most 5", len(l.classes))
	}
	used, _, _ := l.Allow("class-999")
	if used != OverflowClass {
		t.Fatalf("class beyond the table: used %q, want %q", used, OverflowClass)
	}
}
