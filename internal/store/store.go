// Package store is a node's embedded database (bbolt): the records of the
// daemons it hosts and the latest snapshot of each, plus kind aliases.
//
// The database file is created with mode 0600 because daemon records hold
// each daemon's ed25519 seed at rest: whoever can read store.db can sign as
// every daemon of the node. The seed is what lets a restarted node bring a
// daemon back under the same identity.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors; test with errors.Is.
var (
	ErrNotFound  = errors.New("store: not found")
	ErrExists    = errors.New("store: daemon record already exists")
	ErrNameTaken = errors.New("store: name already used by another daemon on this node")
	ErrCorrupt   = errors.New("store: corrupt entry")
)

var (
	bucketDaemons   = []byte("daemons")
	bucketSnapshots = []byte("snapshots")
	bucketAliases   = []byte("aliases")
)

// FileMode is the database file's mode: it holds daemon seeds.
const FileMode = 0o600

// Limits mirrors host.Limits so this package does not depend on the runtime.
type Limits struct {
	MaxMemoryBytes uint64        `json:"max_memory_bytes,omitempty"`
	EventTimeout   time.Duration `json:"event_timeout,omitempty"`
}

// Record is what the node must remember to bring a daemon back.
type Record struct {
	Origin  uint64    `json:"origin"`
	Name    string    `json:"name,omitempty"`
	Digest  string    `json:"digest"`
	Aliases []string  `json:"aliases,omitempty"`
	Seed    []byte    `json:"seed"` // ed25519 seed: secret
	Config  []byte    `json:"config,omitempty"`
	Limits  Limits    `json:"limits"`
	Epoch   uint64    `json:"epoch"`
	Stopped bool      `json:"stopped,omitempty"`
	Created time.Time `json:"created"`
}

// Snapshot is the latest checkpoint of a daemon. Seq is assigned by the
// store and strictly increases per daemon, independently of the snapshot's
// own sequence (a restored older file must still supersede what is stored).
type Snapshot struct {
	Seq   uint64
	Taken time.Time
	Data  []byte // encoded, signed snapshot
}

// Store is safe for concurrent use.
type Store struct {
	db    *bolt.DB
	dir   string      // snapshot files (snapfiles.go)
	group groupCommit // concurrent writers share a commit (groupcommit.go)
}

// Open opens or creates the database at path, with its directory of
// snapshot files next to it (SnapshotDir), and removes what an interrupted
// checkpoint left there.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, FileMode, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store: %s is locked by another process (is a node already running on this data dir?)", path)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDaemons, bucketSnapshots, bucketAliases, bucketSnapFiles} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: init %s: %w", path, err)
	}
	s := &Store{db: db, dir: SnapshotDir(path)}
	if err := s.cleanFiles(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func key(origin uint64) []byte { return binary.BigEndian.AppendUint64(nil, origin) }

// Create adds a record. A running (not stopped) record with the same
// non-empty name refuses it with ErrNameTaken; the same origin with ErrExists.
func (s *Store) Create(r Record) error {
	return s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDaemons)
		if b.Get(key(r.Origin)) != nil {
			return fmt.Errorf("%w: %016x", ErrExists, r.Origin)
		}
		if err := nameFree(b, r.Name, r.Origin); err != nil {
			return err
		}
		return put(b, r)
	})
}

func nameFree(b *bolt.Bucket, name string, self uint64) error {
	if name == "" {
		return nil
	}
	// Every write of a named daemon checks every record: decoding each
	// one made a node's thousandth spawn (or arrival) cost a thousand
	// JSON decodes. A record is encoded by json.Marshal, so one with this
	// name holds exactly these bytes; only those are decoded and checked.
	tok, err := json.Marshal(name)
	if err != nil {
		return err
	}
	needle := append([]byte(`"name":`), tok...)
	return b.ForEach(func(k, v []byte) error {
		if !bytes.Contains(v, needle) {
			return nil
		}
		o, err := decodeRecord(k, v)
		if err != nil {
			return err
		}
		if !o.Stopped && o.Name == name && o.Origin != self {
			return fmt.Errorf("%w: %q is daemon %016x", ErrNameTaken, name, o.Origin)
		}
		return nil
	})
}

// decodeRecord decodes the record stored under k. The origin inside must be
// the key's: a record that names another daemon than the one it is filed
// under would be listed (and restored) as that daemon, yet Get, Update and
// Delete of its origin could not find it.
func decodeRecord(k, v []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return Record{}, fmt.Errorf("%w: %x: %v", ErrCorrupt, k, err)
	}
	if len(k) != 8 || binary.BigEndian.Uint64(k) != r.Origin {
		return Record{}, fmt.Errorf("%w: %x: record of daemon %016x", ErrCorrupt, k, r.Origin)
	}
	return r, nil
}

func put(b *bolt.Bucket, r Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(key(r.Origin), v)
}

// Update applies fn to the stored record of origin and writes it back.
// Reviving a stopped record re-checks its name.
func (s *Store) Update(origin uint64, fn func(*Record) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDaemons)
		v := b.Get(key(origin))
		if v == nil {
			return fmt.Errorf("%w: daemon %016x", ErrNotFound, origin)
		}
		r, err := decodeRecord(key(origin), v)
		if err != nil {
			return err
		}
		wasStopped := r.Stopped
		if err := fn(&r); err != nil {
			return err
		}
		r.Origin = origin
		if wasStopped && !r.Stopped {
			if err := nameFree(b, r.Name, origin); err != nil {
				return err
			}
		}
		return put(b, r)
	})
}

// Get returns a record.
func (s *Store) Get(origin uint64) (Record, error) {
	var r Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDaemons).Get(key(origin))
		if v == nil {
			return fmt.Errorf("%w: daemon %016x", ErrNotFound, origin)
		}
		var err error
		r, err = decodeRecord(key(origin), v)
		return err
	})
	return r, err
}

// Records lists every record, ordered by origin.
func (s *Store) Records() ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDaemons).ForEach(func(k, v []byte) error {
			r, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Delete removes a record and its snapshot.
func (s *Store) Delete(origin uint64) error {
	var files []string
	err := s.write(func(tx *bolt.Tx) error {
		files = nil
		if err := tx.Bucket(bucketDaemons).Delete(key(origin)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSnapshots).Delete(key(origin)); err != nil {
			return err
		}
		fb := tx.Bucket(bucketSnapFiles)
		if v := fb.Get(key(origin)); v != nil {
			if p, err := decodeFilePtr(origin, v); err == nil {
				files = s.filesOf(origin, p)
			}
		}
		return fb.Delete(key(origin))
	})
	if err == nil {
		s.removeFiles(files)
	}
	return err
}

// PutSnapshot stores data as origin's latest snapshot and returns its
// sequence, one more than the previous one. The record must exist.
// Snapshots above FileThreshold are stored as files (snapfiles.go).
func (s *Store) PutSnapshot(origin uint64, taken time.Time, data []byte) (uint64, error) {
	if len(data) > FileThreshold {
		return s.putSnapshotFile(origin, taken, data)
	}
	var seq uint64
	var files []string
	err := s.write(func(tx *bolt.Tx) error {
		files = nil
		last, ptr, err := lastSeq(tx, origin)
		if err != nil {
			return err
		}
		if ptr != nil {
			files = s.filesOf(origin, *ptr)
			if err := tx.Bucket(bucketSnapFiles).Delete(key(origin)); err != nil {
				return err
			}
		}
		seq = last + 1
		v := make([]byte, 16, 16+len(data))
		binary.BigEndian.PutUint64(v, seq)
		binary.BigEndian.PutUint64(v[8:], uint64(taken.UnixNano()))
		return tx.Bucket(bucketSnapshots).Put(key(origin), append(v, data...))
	})
	if err == nil {
		s.removeFiles(files)
	}
	return seq, err
}

// LatestSnapshot returns origin's latest snapshot (ErrNotFound if none).
func (s *Store) LatestSnapshot(origin uint64) (Snapshot, error) {
	for try := 0; ; try++ {
		var out Snapshot
		var ptr *filePtr
		err := s.db.View(func(tx *bolt.Tx) error {
			if v := tx.Bucket(bucketSnapFiles).Get(key(origin)); v != nil {
				p, err := decodeFilePtr(origin, v)
				if err != nil {
					return err
				}
				ptr = &p
			}
			v := tx.Bucket(bucketSnapshots).Get(key(origin))
			if v == nil {
				if ptr == nil {
					return fmt.Errorf("%w: no snapshot of %016x", ErrNotFound, origin)
				}
				return nil
			}
			if len(v) < 16 {
				return fmt.Errorf("%w: snapshot of %016x", ErrCorrupt, origin)
			}
			out.Seq = binary.BigEndian.Uint64(v)
			out.Taken = time.Unix(0, int64(binary.BigEndian.Uint64(v[8:])))
			// bbolt's memory is only valid inside the transaction.
			out.Data = append([]byte(nil), v[16:]...)
			return nil
		})
		if err != nil || ptr == nil || (out.Data != nil && out.Seq > ptr.cur.Seq) {
			return out, err
		}
		// Read off the transaction: a large file must not hold bbolt's
		// pages. A checkpoint committed meanwhile may have removed the
		// files read here; then the pointer moved, and reading again finds
		// the new ones.
		snap, err := s.latestFile(origin, *ptr)
		if err == nil || try == 2 || !s.pointerMoved(origin, *ptr) {
			return snap, err
		}
	}
}

func (s *Store) pointerMoved(origin uint64, p filePtr) bool {
	moved := true
	_ = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSnapFiles).Get(key(origin))
		moved = v == nil || string(v) != string(p.encode())
		return nil
	})
	return moved
}

// SetAlias points a kind name at a module digest.
func (s *Store) SetAlias(alias, digest string) error {
	return s.write(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAliases).Put([]byte(alias), []byte(digest))
	})
}

// Aliases returns alias → digest, sorted by alias when iterated via Keys.
func (s *Store) Aliases() (map[string]string, error) {
	out := map[string]string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAliases).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	return out, err
}

// SortedAliases is Aliases as a sorted slice of pairs.
func SortedAliases(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
