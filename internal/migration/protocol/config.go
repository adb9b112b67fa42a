package protocol

import (
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// Limits bound memory per migration.
type Limits struct {
	ChunkSize          int    // snapshot chunk size; default 256 KiB
	MaxSnapshotBytes   uint64 // largest snapshot accepted; default 1 GiB
	MaxReassemblyBytes uint64 // pending reassembly memory cap; default 1 GiB
	MaxBufferedEvents  int    // events the source buffers; default 65536
	MaxBufferedBytes   int    // payload bytes the source buffers; default 64 MiB
	MaxBatchEvents     int    // events per ReplayBatch; default 256
	MaxBatchBytes      int    // payload bytes per ReplayBatch; default 1 MiB
	Wire               wire.Limits
}

// Timing drives retransmission and liveness; all of it is measured on the
// clock the caller passes in.
type Timing struct {
	// Retransmit: resend unanswered control messages after this long.
	Retransmit time.Duration // default 1 s
	// ChunkRetransmit: resend the whole snapshot after this long without
	// RestoreComplete. Longer than Retransmit because it is bulk.
	ChunkRetransmit time.Duration // default 10 s
	// PeerTimeout: give up on a silent peer (before the point of no return).
	PeerTimeout time.Duration // default 30 s
	// CutoverTimeout: an orchestrator that heard nothing from source or
	// target this long after it ordered the cutover stops waiting and
	// reports Timeout ("the handover may have completed"). It cannot undo
	// anything then; the bound only keeps a migration whose ActivateAck
	// was lost with a crashed node from being held forever.
	CutoverTimeout time.Duration // default 10 × PeerTimeout
}

// DefaultLimits returns the defaults listed on Limits.
func DefaultLimits() Limits {
	return Limits{
		ChunkSize:          256 << 10,
		MaxSnapshotBytes:   1 << 30,
		MaxReassemblyBytes: 1 << 30,
		MaxBufferedEvents:  65536,
		MaxBufferedBytes:   64 << 20,
		MaxBatchEvents:     256,
		MaxBatchBytes:      1 << 20,
		Wire:               wire.DefaultLimits(),
	}
}

// DefaultTiming returns the defaults listed on Timing.
func DefaultTiming() Timing {
	return Timing{Retransmit: time.Second, ChunkRetransmit: 10 * time.Second, PeerTimeout: 30 * time.Second}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.ChunkSize <= 0 {
		l.ChunkSize = d.ChunkSize
	}
	if l.MaxSnapshotBytes == 0 {
		l.MaxSnapshotBytes = d.MaxSnapshotBytes
	}
	if l.MaxReassemblyBytes == 0 {
		l.MaxReassemblyBytes = d.MaxReassemblyBytes
	}
	if l.MaxBufferedEvents <= 0 {
		l.MaxBufferedEvents = d.MaxBufferedEvents
	}
	if l.MaxBufferedBytes <= 0 {
		l.MaxBufferedBytes = d.MaxBufferedBytes
	}
	if l.MaxBatchEvents <= 0 {
		l.MaxBatchEvents = d.MaxBatchEvents
	}
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = d.MaxBatchBytes
	}
	if l.Wire == (wire.Limits{}) {
		l.Wire = d.Wire
	}
	l.MaxBatchEvents = min(l.MaxBatchEvents, l.Wire.MaxEvents)
	return l
}

func (l Limits) check() error {
	if l.ChunkSize > l.Wire.MaxChunkData {
		return fmt.Errorf("%w: chunk size %d over the wire limit %d", ErrConfig, l.ChunkSize, l.Wire.MaxChunkData)
	}
	return nil
}

func (t Timing) withDefaults() Timing {
	d := DefaultTiming()
	if t.Retransmit <= 0 {
		t.Retransmit = d.Retransmit
	}
	if t.ChunkRetransmit <= 0 {
		t.ChunkRetransmit = d.ChunkRetransmit
	}
	if t.PeerTimeout <= 0 {
		t.PeerTimeout = d.PeerTimeout
	}
	if t.CutoverTimeout <= 0 {
		t.CutoverTimeout = 10 * t.PeerTimeout
	}
	return t
}

// RetryPolicy is the NotReady retry (SPEC R-M8).
type RetryPolicy struct {
	Disabled bool          // surface the first NotReady as is
	Budget   time.Duration // total time for retries; default 30 s
	Initial  time.Duration // first backoff; default 500 ms
	Max      time.Duration // backoff cap; default 16 s
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Budget <= 0 {
		p.Budget = 30 * time.Second
	}
	if p.Initial <= 0 {
		p.Initial = 500 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 16 * time.Second
	}
	return p
}

// Backoff is the wait before retry number n (n ≥ 1): Initial doubling per
// retry, capped at Max. With the defaults: 0.5 s, 1 s, 2 s, 4 s, 8 s, 16 s,
// 16 s, ...
func (p RetryPolicy) Backoff(n int) time.Duration {
	p = p.withDefaults()
	d := p.Initial
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}
