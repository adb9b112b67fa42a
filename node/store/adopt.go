package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Adopt stores a daemon's record and its first snapshot in one
// transaction, replacing any earlier record of the same origin (a daemon
// that once lived here and came back). A daemon that arrives by migration
// is thereby recorded with the state it arrived in or not at all: a crash
// can never leave its record without a checkpoint, which a restart would
// bring back as a fresh daemon. The name must be free among other running
// records (ErrNameTaken). It returns the snapshot's store sequence, which
// continues the earlier record's so it strictly increases.
func (s *Store) Adopt(r Record, taken time.Time, snapshot []byte) (uint64, error) {
	var seq uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDaemons)
		if err := nameFree(b, r.Name, r.Origin); err != nil {
			return err
		}
		if err := put(b, r); err != nil {
			return err
		}
		sb := tx.Bucket(bucketSnapshots)
		if old := sb.Get(key(r.Origin)); old != nil {
			if len(old) < 16 {
				return fmt.Errorf("%w: snapshot of %016x", ErrCorrupt, r.Origin)
			}
			seq = binary.BigEndian.Uint64(old)
		}
		seq++
		v := make([]byte, 16, 16+len(snapshot))
		binary.BigEndian.PutUint64(v, seq)
		binary.BigEndian.PutUint64(v[8:], uint64(taken.UnixNano()))
		return sb.Put(key(r.Origin), append(v, snapshot...))
	})
	return seq, err
}
