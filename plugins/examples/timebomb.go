package examples

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"time"
)

//go:embed testdata/timebomb_start.wasm
var timebombStart string

// timebombAt is the start function's threshold in timebomb_start.wasm:
// `i64.const 1000000000000000000` (opcode 0x42, then 1e18 ns as 9 bytes of
// signed LEB128), found in the module exactly once.
const timebombAt = "\x42\x80\x80\x90\xbb\xba\xd6\xad\xf0\x0d"

// TimeBomb returns timebomb_start.wasm with its threshold moved to at: a
// module that instantiates normally until the host clock reads at, and
// whose start function spins forever from then on. Tests on a real clock
// use it to make a daemon that spawns fine and blows its CPU budget at the
// next re-instantiation (rollback, restart recovery, migration arrival).
// The threshold keeps its 9-byte encoding, so at must lie between 2001
// (2^55 ns) and 2116 (2^62 ns).
func TimeBomb(at time.Time) ([]byte, error) {
	ns := at.UnixNano()
	if ns < 1<<55 || ns >= 1<<62 {
		return nil, fmt.Errorf("examples: time bomb threshold %v outside 2001..2116", at)
	}
	mod := []byte(timebombStart)
	i := bytes.Index(mod, []byte(timebombAt))
	if i < 0 || bytes.Count(mod, []byte(timebombAt)) != 1 {
		return nil, errors.New("examples: timebomb_start.wasm does not hold its threshold constant once")
	}
	leb := mod[i+1 : i+len(timebombAt)]
	v := uint64(ns)
	for j := range leb {
		leb[j] = byte(v & 0x7f)
		v >>= 7
		if j < len(leb)-1 {
			leb[j] |= 0x80
		}
	}
	return mod, nil
}
