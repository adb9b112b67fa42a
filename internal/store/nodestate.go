package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketNode holds the node's own state (not any daemon's). It is created
// on first write so stores made before it exist open unchanged.
var (
	bucketNode  = []byte("node")
	keyDraining = []byte("draining")
)

// SetDraining persists whether the node is draining, so a restart keeps
// refusing work until an operator undrains it.
func (s *Store) SetDraining(on bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketNode)
		if err != nil {
			return err
		}
		if !on {
			return b.Delete(keyDraining)
		}
		return b.Put(keyDraining, []byte{1})
	})
}

// Draining reports the persisted draining state.
func (s *Store) Draining() (bool, error) {
	on := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNode)
		if b == nil {
			return nil
		}
		v := b.Get(keyDraining)
		switch {
		case v == nil:
		case len(v) == 1 && v[0] == 1:
			on = true
		default:
			return fmt.Errorf("%w: draining flag %x", ErrCorrupt, v)
		}
		return nil
	})
	return on, err
}
