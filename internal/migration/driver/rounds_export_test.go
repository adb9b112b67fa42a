package driver

import "github.com/wasmesh/wasmesh/internal/migration/wire"

// PreCopyFrame says whether frame carries a pre-copy chunk and which:
// round 0 is the base, then the rounds of dirtied pages; index is the
// chunk's place in its transfer.
func PreCopyFrame(frame []byte) (round, index uint32, ok bool) {
	if len(frame) == 0 || (frame[0] != framePrecopy && frame[0] != framePrecopyRound) {
		return 0, 0, false
	}
	msg, err := wire.Decode(frame[1:])
	if err != nil {
		return 0, 0, false
	}
	c, ok := msg.(wire.SnapshotChunk)
	if !ok {
		return 0, 0, false
	}
	if frame[0] == framePrecopy {
		return 0, c.Index, true
	}
	return c.Header.Attempt, c.Index, true
}

// RoundChunk is the frame of chunk 0 of a one-chunk round of migration id.
func RoundChunk(id uint64, round uint32, data []byte) []byte {
	b, _ := wire.Encode(wire.SnapshotChunk{Header: wire.Header{ID: id, Attempt: round}, Origin: id, SnapshotSeq: 1,
		Index: 0, Count: 1, TotalBytes: uint64(len(data)), Data: data})
	return append([]byte{framePrecopyRound}, b...)
}

// BaseChunk is the frame of chunk index of count of a base of total bytes
// of migration id.
func BaseChunk(id uint64, index, count uint32, total uint64, data []byte) []byte {
	b, _ := wire.Encode(wire.SnapshotChunk{Header: wire.Header{ID: id, Attempt: 1}, Origin: id, SnapshotSeq: 1,
		Index: index, Count: count, TotalBytes: total, Data: data})
	return append([]byte{framePrecopy}, b...)
}
