package protocol

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// Reassembly errors (SPEC R-M3); each also matches ErrChunk.
var (
	ErrChunk              = errors.New("migration: snapshot chunk refused")
	ErrStaleChunk         = errors.New("stale snapshot generation")
	ErrGenerationMismatch = errors.New("chunk from another snapshot generation")
	ErrChunkCount         = errors.New("chunk count or total disagrees")
	ErrSnapshotTooLarge   = errors.New("snapshot over the size limit")
	ErrReassemblyFull     = errors.New("pending reassembly memory exhausted")
	ErrChunkConflict      = errors.New("chunk resent with different data")
	ErrNoReassembly       = errors.New("no snapshot expected for this daemon")
)

func chunkErr(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrChunk, kind}, args...)...)
}

// Split cuts a snapshot into chunks of at most size bytes. An empty
// snapshot (a stateless daemon, SPEC R-M11) is one empty chunk, so every
// migration takes the same path. The chunks share snapshot's memory.
func Split(h wire.Header, origin, snapshotSeq uint64, snapshot []byte, size int) []wire.SnapshotChunk {
	if size <= 0 {
		size = DefaultLimits().ChunkSize
	}
	count := max(1, (len(snapshot)+size-1)/size)
	out := make([]wire.SnapshotChunk, count)
	for i := range out {
		lo, hi := i*size, min((i+1)*size, len(snapshot))
		out[i] = wire.SnapshotChunk{
			Header: h, Origin: origin, SnapshotSeq: snapshotSeq,
			Index: uint32(i), Count: uint32(count), TotalBytes: uint64(len(snapshot)),
			Data: snapshot[lo:hi:hi],
		}
	}
	return out
}

// Reassembler rebuilds snapshots from chunks, keyed by (origin, snapshot
// sequence). A generation must be announced with Begin (from Prepare) before
// its chunks count, which is what lets it refuse stale and mixed
// generations and reserve memory up front against a cap.
type Reassembler struct {
	maxSnapshot uint64
	maxPending  uint64
	reserved    uint64
	pending     map[uint64]*partial
	completed   map[uint64]uint64 // origin → highest completed sequence
}

type partial struct {
	seq    uint64
	total  uint64
	chunks [][]byte
	have   []bool
	n      int
	bytes  uint64
}

// NewReassembler caps one snapshot at maxSnapshot bytes and all pending
// reassemblies together at maxPending bytes.
func NewReassembler(maxSnapshot, maxPending uint64) *Reassembler {
	return &Reassembler{maxSnapshot: maxSnapshot, maxPending: maxPending,
		pending: map[uint64]*partial{}, completed: map[uint64]uint64{}}
}

// Pending is the memory reserved by unfinished reassemblies.
func (r *Reassembler) Pending() uint64 { return r.reserved }

// Begin expects snapshot seq of origin with count chunks and total bytes. A
// newer generation replaces an unfinished older one; an older or already
// completed one is stale.
func (r *Reassembler) Begin(origin, seq uint64, count uint32, total uint64) error {
	if done, ok := r.completed[origin]; ok && seq <= done {
		return chunkErr(ErrStaleChunk, "origin %016x snapshot %d, completed %d", origin, seq, done)
	}
	p := r.pending[origin]
	if p != nil && seq < p.seq {
		return chunkErr(ErrStaleChunk, "origin %016x snapshot %d, pending %d", origin, seq, p.seq)
	}
	if p != nil && seq == p.seq {
		if p.total != total || uint32(len(p.chunks)) != count {
			return chunkErr(ErrChunkCount, "snapshot %d re-announced with %d chunks/%d bytes", seq, count, total)
		}
		return nil
	}
	if total > r.maxSnapshot {
		return chunkErr(ErrSnapshotTooLarge, "%d bytes, limit %d", total, r.maxSnapshot)
	}
	if count == 0 || (uint64(count) > total && !(count == 1 && total == 0)) {
		return chunkErr(ErrChunkCount, "%d chunks for %d bytes", count, total)
	}
	reserved := r.reserved
	if p != nil {
		reserved -= p.total
	}
	if reserved+total > r.maxPending {
		return chunkErr(ErrReassemblyFull, "%d reserved + %d, cap %d", reserved, total, r.maxPending)
	}
	r.reserved = reserved + total
	r.pending[origin] = &partial{seq: seq, total: total, chunks: make([][]byte, count), have: make([]bool, count)}
	return nil
}

// Add stores a chunk. It returns the whole snapshot when c completes it. A
// resent identical chunk is accepted and changes nothing.
func (r *Reassembler) Add(c wire.SnapshotChunk) ([]byte, bool, error) {
	if done, ok := r.completed[c.Origin]; ok && c.SnapshotSeq <= done {
		return nil, false, chunkErr(ErrStaleChunk, "snapshot %d already completed", c.SnapshotSeq)
	}
	p := r.pending[c.Origin]
	switch {
	case p == nil:
		return nil, false, chunkErr(ErrNoReassembly, "origin %016x", c.Origin)
	case c.SnapshotSeq < p.seq:
		return nil, false, chunkErr(ErrStaleChunk, "snapshot %d, expecting %d", c.SnapshotSeq, p.seq)
	case c.SnapshotSeq > p.seq:
		return nil, false, chunkErr(ErrGenerationMismatch, "snapshot %d, expecting %d", c.SnapshotSeq, p.seq)
	case c.Count != uint32(len(p.chunks)) || c.TotalBytes != p.total || c.Index >= c.Count:
		return nil, false, chunkErr(ErrChunkCount, "chunk %d/%d of %d bytes, expecting %d chunks of %d bytes",
			c.Index, c.Count, c.TotalBytes, len(p.chunks), p.total)
	}
	if p.have[c.Index] {
		if !bytes.Equal(p.chunks[c.Index], c.Data) {
			return nil, false, chunkErr(ErrChunkConflict, "chunk %d", c.Index)
		}
		return nil, false, nil
	}
	if p.bytes+uint64(len(c.Data)) > p.total {
		return nil, false, chunkErr(ErrSnapshotTooLarge, "chunks exceed the announced %d bytes", p.total)
	}
	p.chunks[c.Index] = bytes.Clone(c.Data)
	p.have[c.Index] = true
	p.n++
	p.bytes += uint64(len(c.Data))
	if p.n < len(p.chunks) {
		return nil, false, nil
	}
	if p.bytes != p.total {
		r.drop(c.Origin)
		return nil, false, chunkErr(ErrChunkCount, "all chunks hold %d bytes, announced %d", p.bytes, p.total)
	}
	out := make([]byte, 0, p.total)
	for _, ch := range p.chunks {
		out = append(out, ch...)
	}
	r.drop(c.Origin)
	r.completed[c.Origin] = c.SnapshotSeq
	return out, true, nil
}

// Drop forgets an unfinished reassembly and releases its memory.
func (r *Reassembler) Drop(origin uint64) { r.drop(origin) }

func (r *Reassembler) drop(origin uint64) {
	if p := r.pending[origin]; p != nil {
		r.reserved -= p.total
		delete(r.pending, origin)
	}
}
