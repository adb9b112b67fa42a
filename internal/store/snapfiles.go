package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Large snapshots live in files next to the database, one per checkpoint:
// DATA/snapshots/<origin hex>.<seq>. bbolt never shrinks its file and
// rewriting a large value leaves freed runs of pages it cannot always
// reuse for the next one (measured: 100 checkpoints of a ~64 MiB daemon,
// moved away and back every fourth, grew store.db to 209 MiB, 3.3x; the
// issue saw 5x after a dozen migrations). A replaced file gives its space
// back at once.
//
// A checkpoint is written to a temp file and fsynced, then, inside the
// bbolt transaction that moves the pointer, renamed to its final name and
// the directory fsynced; bbolt's commit fsyncs the pointer. So a pointer
// only ever names a complete, durable file, and a crash at any point
// leaves the previous pointer and its file intact; what the crash left
// behind (temp files, a renamed file whose pointer never committed) is
// removed at the next Open. The pointer also keeps the previous file: a
// newest file found missing or damaged (its CRC disagrees) falls back to
// the one before instead of losing the daemon. The file before that is
// removed before a new one is written, so a daemon never has more than two
// checkpoints on disk, even in the middle of writing one.

// FileThreshold: snapshots larger than this are stored as files; smaller
// ones stay inline in bbolt, where they cost one small value.
const FileThreshold = 256 << 10

// SnapshotDir is the directory of snapshot files, next to the database.
func SnapshotDir(dbPath string) string { return filepath.Join(filepath.Dir(dbPath), "snapshots") }

var bucketSnapFiles = []byte("snapfiles")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// fileRef names one snapshot file: seq u64 | taken unix-nanos u64 | size
// u64 | crc32c u32 on disk.
type fileRef struct {
	Seq   uint64
	Taken int64
	Size  uint64
	CRC   uint32
}

const fileRefLen = 28

// filePtr is a snapshot-file entry: the newest file, and the previous one
// when there is one.
type filePtr struct {
	cur, prev fileRef
	hasPrev   bool
}

func (r fileRef) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Taken))
	b = binary.BigEndian.AppendUint64(b, r.Size)
	return binary.BigEndian.AppendUint32(b, r.CRC)
}

func decodeFileRef(b []byte) fileRef {
	return fileRef{Seq: binary.BigEndian.Uint64(b), Taken: int64(binary.BigEndian.Uint64(b[8:])),
		Size: binary.BigEndian.Uint64(b[16:]), CRC: binary.BigEndian.Uint32(b[24:])}
}

func (p filePtr) encode() []byte {
	b := p.cur.append(make([]byte, 0, 2*fileRefLen))
	if p.hasPrev {
		b = p.prev.append(b)
	}
	return b
}

// decodeFilePtr is strict: one or two refs, the previous one older.
func decodeFilePtr(origin uint64, v []byte) (filePtr, error) {
	var p filePtr
	switch len(v) {
	case fileRefLen:
		p.cur = decodeFileRef(v)
	case 2 * fileRefLen:
		p.cur, p.prev, p.hasPrev = decodeFileRef(v), decodeFileRef(v[fileRefLen:]), true
		if p.prev.Seq >= p.cur.Seq {
			return filePtr{}, fmt.Errorf("%w: snapshot files of %016x: previous %d not before %d", ErrCorrupt, origin, p.prev.Seq, p.cur.Seq)
		}
	default:
		return filePtr{}, fmt.Errorf("%w: snapshot file entry of %016x is %d bytes", ErrCorrupt, origin, len(v))
	}
	if p.cur.Seq == 0 {
		return filePtr{}, fmt.Errorf("%w: snapshot file entry of %016x has sequence 0", ErrCorrupt, origin)
	}
	return p, nil
}

func (s *Store) fileName(origin, seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x.%d", origin, seq))
}

// parseFileName is the inverse of fileName; ok is false for anything else
// (temp files included).
func parseFileName(name string) (origin, seq uint64, ok bool) {
	o, q, found := strings.Cut(name, ".")
	if !found || len(o) != 16 {
		return 0, 0, false
	}
	origin, err := strconv.ParseUint(o, 16, 64)
	if err != nil {
		return 0, 0, false
	}
	seq, err = strconv.ParseUint(q, 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != q {
		return 0, 0, false
	}
	return origin, seq, true
}

// writeTemp writes data to a new temp file in the snapshot directory and
// makes it durable; the caller renames or removes it.
func (s *Store) writeTemp(origin uint64, data []byte) (string, error) {
	f, err := os.CreateTemp(s.dir, fmt.Sprintf("%016x.*.tmp", origin))
	if err != nil {
		return "", fmt.Errorf("store: snapshot file: %w", err)
	}
	name := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("store: snapshot file: %w", err)
	}
	return name, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// putSnapshotFile stores a large snapshot as a file (see the top of this
// file for the order of writes).
func (s *Store) putSnapshotFile(origin uint64, taken time.Time, data []byte) (uint64, error) {
	// The previous file goes before the new one is written, so the disk
	// holds at most two checkpoints of a daemon even mid-write.
	if err := s.dropPrevious(origin); err != nil {
		return 0, err
	}
	tmp, err := s.writeTemp(origin, data)
	if err != nil {
		return 0, err
	}
	var seq uint64
	var renamed string
	var drop []string
	err = s.db.Update(func(tx *bolt.Tx) error {
		renamed, drop = "", nil
		last, ptr, err := lastSeq(tx, origin)
		if err != nil {
			return err
		}
		seq = last + 1
		name := s.fileName(origin, seq)
		if err := os.Rename(tmp, name); err != nil {
			return fmt.Errorf("store: snapshot file: %w", err)
		}
		renamed = name
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("store: snapshot file: %w", err)
		}
		next := filePtr{cur: fileRef{Seq: seq, Taken: taken.UnixNano(), Size: uint64(len(data)), CRC: crc32.Checksum(data, crcTable)}}
		if ptr != nil {
			next.prev, next.hasPrev = ptr.cur, true
			if ptr.hasPrev { // a checkpoint committed since dropPrevious
				drop = append(drop, s.fileName(origin, ptr.prev.Seq))
			}
		}
		if err := tx.Bucket(bucketSnapshots).Delete(key(origin)); err != nil {
			return err
		}
		return tx.Bucket(bucketSnapFiles).Put(key(origin), next.encode())
	})
	if err != nil {
		// Not committed: neither the temp file nor its renamed self is
		// referenced.
		os.Remove(tmp)
		if renamed != "" {
			os.Remove(renamed)
		}
		return 0, err
	}
	s.removeFiles(drop)
	return seq, nil
}

// dropPrevious forgets origin's previous snapshot file, keeping the newest.
func (s *Store) dropPrevious(origin uint64) error {
	var drop []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		drop = nil
		_, ptr, err := lastSeq(tx, origin)
		if err != nil || ptr == nil || !ptr.hasPrev {
			return err
		}
		drop = []string{s.fileName(origin, ptr.prev.Seq)}
		ptr.hasPrev = false
		return tx.Bucket(bucketSnapFiles).Put(key(origin), ptr.encode())
	})
	if err == nil {
		s.removeFiles(drop)
	}
	return err
}

// removeFiles removes snapshot files no pointer names any more. A failure
// leaves an orphan that the next Open removes.
func (s *Store) removeFiles(names []string) {
	for _, n := range names {
		_ = os.Remove(n)
	}
}

// filesOf lists the files a pointer names.
func (s *Store) filesOf(origin uint64, p filePtr) []string {
	out := []string{s.fileName(origin, p.cur.Seq)}
	if p.hasPrev {
		out = append(out, s.fileName(origin, p.prev.Seq))
	}
	return out
}

// lastSeq is origin's latest snapshot sequence, inline or in a file, and
// its file pointer if it has one. The record must exist.
func lastSeq(tx *bolt.Tx, origin uint64) (uint64, *filePtr, error) {
	if tx.Bucket(bucketDaemons).Get(key(origin)) == nil {
		return 0, nil, fmt.Errorf("%w: daemon %016x", ErrNotFound, origin)
	}
	var seq uint64
	if old := tx.Bucket(bucketSnapshots).Get(key(origin)); old != nil {
		if len(old) < 16 {
			return 0, nil, fmt.Errorf("%w: snapshot of %016x", ErrCorrupt, origin)
		}
		seq = binary.BigEndian.Uint64(old)
	}
	v := tx.Bucket(bucketSnapFiles).Get(key(origin))
	if v == nil {
		return seq, nil, nil
	}
	p, err := decodeFilePtr(origin, v)
	if err != nil {
		return 0, nil, err
	}
	return max(seq, p.cur.Seq), &p, nil
}

// readFile reads and checks one snapshot file.
func (s *Store) readFile(origin uint64, r fileRef) (Snapshot, error) {
	data, err := os.ReadFile(s.fileName(origin, r.Seq))
	if err != nil {
		// The pointer says this checkpoint exists: missing is damage.
		return Snapshot{}, fmt.Errorf("%w: snapshot file %d of %016x: %w", ErrCorrupt, r.Seq, origin, err)
	}
	if uint64(len(data)) != r.Size || crc32.Checksum(data, crcTable) != r.CRC {
		return Snapshot{}, fmt.Errorf("%w: snapshot file %d of %016x: %d bytes, or its checksum, differ from the record", ErrCorrupt, r.Seq, origin, len(data))
	}
	return Snapshot{Seq: r.Seq, Taken: time.Unix(0, r.Taken), Data: data}, nil
}

// latestFile reads the newest readable file of p: the newest, or the
// previous one when the newest is missing or damaged.
func (s *Store) latestFile(origin uint64, p filePtr) (Snapshot, error) {
	snap, err := s.readFile(origin, p.cur)
	if err == nil || !p.hasPrev {
		return snap, err
	}
	if prev, perr := s.readFile(origin, p.prev); perr == nil {
		return prev, nil
	}
	return Snapshot{}, err
}

// cleanFiles removes what no pointer names: temp files of writes that
// never committed and files superseded before a crash. Caller is Open,
// which holds bbolt's file lock, so no other process writes here.
func (s *Store) cleanFiles() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	keep := map[string]bool{}
	damaged := map[uint64]bool{} // origins whose pointer is unreadable: keep their files for inspection
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapFiles).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return nil
			}
			origin := binary.BigEndian.Uint64(k)
			p, err := decodeFilePtr(origin, v)
			if err != nil {
				damaged[origin] = true // reported when read
				return nil
			}
			for _, n := range s.filesOf(origin, p) {
				keep[filepath.Base(n)] = true
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || keep[e.Name()] {
			continue
		}
		origin, _, named := parseFileName(e.Name())
		if (named && !damaged[origin]) || strings.HasSuffix(e.Name(), ".tmp") {
			os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
	return nil
}
