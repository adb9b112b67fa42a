package node

import (
	"fmt"

	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// behind refuses a snapshot older than the running daemon it would
// replace: restoring it rolls the daemon's state back and re-opens input
// and output sequence numbers it already used, which only an operator who
// asked for it (--force) may do.
func behind(snap *snapshot.Snapshot, cur engine.Stats, origin uint64) error {
	if snap.InputSeq >= cur.InputSeq && snap.ChainHead.Sequence >= cur.ChainSequence {
		return nil
	}
	return fmt.Errorf("%w: snapshot of daemon %016x is behind the running daemon (input_seq %d vs %d: %d events behind; chain sequence %d vs %d); restoring it rolls the daemon back: restore --force to do that",
		ErrBadRequest, origin, snap.InputSeq, cur.InputSeq, gap(cur.InputSeq, snap.InputSeq), snap.ChainHead.Sequence, cur.ChainSequence)
}

func gap(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return 0
}
