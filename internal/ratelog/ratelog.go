// Package ratelog limits log lines caused by outside input: garbage sent to
// an open port must cost a counter increment, never a log line per packet.
// A Limiter lets one line per class through per interval and reports how
// many were suppressed since the last line, so the log still says how much
// happened.
package ratelog

import (
	"sync"
	"time"
)

// Defaults for New with zero arguments.
const (
	DefaultInterval   = 10 * time.Second
	DefaultMaxClasses = 256
)

// OverflowClass is the class every line falls into once MaxClasses distinct
// classes are tracked: an attacker who varies the class must not grow the
// limiter's memory without bound.
const OverflowClass = "other"

// Limiter decides, per class, whether a line may be written now.
type Limiter struct {
	interval   time.Duration
	maxClasses int
	now        func() time.Time

	mu      sync.Mutex
	classes map[string]*class
}

type class struct {
	last       time.Time
	suppressed uint64
}

// New returns a limiter allowing one line per class per interval, tracking
// at most maxClasses classes. Zero values take the defaults.
func New(interval time.Duration, maxClasses int) *Limiter {
	return NewWithClock(interval, maxClasses, time.Now)
}

// NewWithClock is New with an injected clock (tests).
func NewWithClock(interval time.Duration, maxClasses int, now func() time.Time) *Limiter {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if maxClasses <= 0 {
		maxClasses = DefaultMaxClasses
	}
	return &Limiter{interval: interval, maxClasses: maxClasses, now: now, classes: make(map[string]*class)}
}

// Allow reports whether a line of class key may be written now and, if so,
// how many lines of that class were suppressed since the last one written.
// The class actually used is returned too (OverflowClass when the table is
// full).
func (l *Limiter) Allow(key string) (used string, suppressed uint64, ok bool) {
	t := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, found := l.classes[key]
	if !found {
		if len(l.classes) >= l.maxClasses {
			l.expire(t)
		}
		if len(l.classes) >= l.maxClasses {
			key = OverflowClass
			c = l.classes[key]
		}
		if c == nil {
			c = &class{}
			l.classes[key] = c
			c.last = t
			return key, 0, true
		}
	}
	if t.Sub(c.last) < l.interval {
		c.suppressed++
		return key, 0, false
	}
	n := c.suppressed
	c.suppressed = 0
	c.last = t
	return key, n, true
}

// expire forgets classes that have been quiet for a whole interval and hold
// no suppressed count, making room for new ones.
func (l *Limiter) expire(t time.Time) {
	for k, c := range l.classes {
		if c.suppressed == 0 && t.Sub(c.last) >= l.interval {
			delete(l.classes, k)
		}
	}
}
