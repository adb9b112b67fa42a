package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
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
	// A large first checkpoint is a file like any other (snapfiles.go):
	// written aside first, renamed into place inside the transaction.
	var tmp string
	if len(snapshot) > FileThreshold {
		t, err := s.writeTemp(r.Origin, snapshot)
		if err != nil {
			return 0, err
		}
		tmp = t
	}
	var seq uint64
	var renamed string
	var drop []string
	// A file is renamed inside the transaction, which must not run twice:
	// only an inline snapshot shares its commit with other writers.
	update := s.write
	if tmp != "" {
		update = s.db.Update
	}
	err := update(func(tx *bolt.Tx) error {
		renamed, drop = "", nil
		b := tx.Bucket(bucketDaemons)
		if err := nameFree(b, r.Name, r.Origin); err != nil {
			return err
		}
		if err := put(b, r); err != nil {
			return err
		}
		last, ptr, err := lastSeq(tx, r.Origin)
		if err != nil {
			return err
		}
		seq = last + 1
		if ptr != nil {
			// The files of an earlier stay: the arrival supersedes them.
			drop = s.filesOf(r.Origin, *ptr)
			if err := tx.Bucket(bucketSnapFiles).Delete(key(r.Origin)); err != nil {
				return err
			}
		}
		if tmp == "" {
			v := make([]byte, 16, 16+len(snapshot))
			binary.BigEndian.PutUint64(v, seq)
			binary.BigEndian.PutUint64(v[8:], uint64(taken.UnixNano()))
			return tx.Bucket(bucketSnapshots).Put(key(r.Origin), append(v, snapshot...))
		}
		name := s.fileName(r.Origin, seq)
		if err := os.Rename(tmp, name); err != nil {
			return fmt.Errorf("store: snapshot file: %w", err)
		}
		renamed = name
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("store: snapshot file: %w", err)
		}
		if err := tx.Bucket(bucketSnapshots).Delete(key(r.Origin)); err != nil {
			return err
		}
		next := filePtr{cur: fileRef{Seq: seq, Taken: taken.UnixNano(), Size: uint64(len(snapshot)), CRC: crc32.Checksum(snapshot, crcTable)}}
		return tx.Bucket(bucketSnapFiles).Put(key(r.Origin), next.encode())
	})
	if err != nil {
		if tmp != "" {
			os.Remove(tmp)
		}
		if renamed != "" {
			os.Remove(renamed)
		}
		return 0, err
	}
	s.removeFiles(drop)
	return seq, nil
}
