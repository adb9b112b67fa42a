package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func fuzzStore(f *testing.F) *Store {
	f.Helper()
	s, err := Open(filepath.Join(f.TempDir(), "store.db"))
	if err != nil {
		f.Fatal(err)
	}
	s.db.NoSync = true // the fuzz writes one entry per input
	f.Cleanup(func() { s.Close() })
	return s
}

func putRaw(t *testing.T, s *Store, bucket []byte, origin uint64, v []byte) {
	t.Helper()
	if err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if err := b.Delete(key(origin)); err != nil {
			return err
		}
		if v == nil {
			return nil
		}
		return b.Put(key(origin), v)
	}); err != nil {
		t.Fatal(err)
	}
}

// A record read back from disk (after a crash, a disk error, or an edit)
// either is refused as ErrCorrupt or decodes to a record that is stable:
// writing it back and reading it again gives the same record.
func FuzzRecord(f *testing.F) {
	good, err := json.Marshal(Record{Origin: 42, Name: "c1", Digest: "sha256:ab", Aliases: []string{"counter"},
		Seed: bytes.Repeat([]byte{1}, 32), Config: []byte("{}"), Limits: Limits{MaxMemoryBytes: 1 << 20, EventTimeout: time.Second},
		Epoch: 3, Created: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"origin":42}`))
	f.Add([]byte(`{"origin":43,"digest":"sha256:ab"}`))
	f.Add([]byte(`{"origin":42,"created":"bad"}`))
	f.Add([]byte(`{"origin":42,"name":"\xff"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	s := fuzzStore(f)
	f.Fuzz(func(t *testing.T, v []byte) {
		const origin = 42
		putRaw(t, s, bucketDaemons, origin, v)
		r, err := s.Get(origin)
		rs, lerr := s.Records()
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !errors.Is(lerr, ErrCorrupt) {
				t.Fatalf("Get: %v, Records: %v; want ErrCorrupt", err, lerr)
			}
			return
		}
		if r.Origin != origin {
			t.Fatalf("record stored under daemon %d read back as daemon %d", origin, r.Origin)
		}
		if lerr != nil || len(rs) != 1 {
			t.Fatalf("Get works but Records gives %d, %v", len(rs), lerr)
		}
		first, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		if err := s.Update(origin, func(*Record) error { return nil }); err != nil {
			t.Fatalf("Update of a readable record: %v", err)
		}
		back, err := s.Get(origin)
		if err != nil {
			t.Fatalf("record rewritten by Update no longer reads: %v", err)
		}
		second, _ := json.Marshal(back)
		var want Record
		if err := json.Unmarshal(first, &want); err != nil {
			t.Fatal(err)
		}
		wantJSON, _ := json.Marshal(want)
		if !bytes.Equal(second, wantJSON) {
			t.Fatalf("record changed across a rewrite:\n%s\n%s", wantJSON, second)
		}
	})
}

// A snapshot entry is seq u64 | taken unix-nanos u64 | data; shorter is
// ErrCorrupt, anything longer reads back exactly, and the next PutSnapshot
// continues its sequence.
func FuzzSnapshotEntry(f *testing.F) {
	entry := binary.BigEndian.AppendUint64(nil, 5)
	entry = binary.BigEndian.AppendUint64(entry, uint64(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()))
	f.Add(append(entry, "snap"...))
	f.Add(entry)
	f.Add(entry[:15])
	f.Add(bytes.Repeat([]byte{0xff}, 20))
	f.Add([]byte{})
	s := fuzzStore(f)
	const origin = 7
	if err := s.Create(Record{Origin: origin, Digest: "sha256:00"}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		putRaw(t, s, bucketSnapshots, origin, v)
		snap, err := s.LatestSnapshot(origin)
		if len(v) < 16 {
			if !errors.Is(err, ErrCorrupt) && !(len(v) == 0 && errors.Is(err, ErrNotFound)) {
				t.Fatalf("%d-byte entry: %v", len(v), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%d-byte entry refused: %v", len(v), err)
		}
		if snap.Seq != binary.BigEndian.Uint64(v) || uint64(snap.Taken.UnixNano()) != binary.BigEndian.Uint64(v[8:]) || !bytes.Equal(snap.Data, v[16:]) {
			t.Fatalf("entry read back as %+v", snap)
		}
		seq, err := s.PutSnapshot(origin, snap.Taken, []byte("next"))
		if err != nil || seq != snap.Seq+1 {
			t.Fatalf("PutSnapshot after seq %d: %d, %v", snap.Seq, seq, err)
		}
	})
}

// TestRecordUnderWrongKey: found by FuzzRecord. A record whose JSON origin
// differs from the key it is stored under used to be returned as daemon 43
// by Get(42) and Records, though Update(43) and Delete(43) cannot reach it.
func TestRecordUnderWrongKey(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	putRaw(t, s, bucketDaemons, 42, []byte(`{"origin":43,"digest":"sha256:ab"}`))
	if _, err := s.Get(42); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get = %v, want ErrCorrupt", err)
	}
	if _, err := s.Records(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Records = %v, want ErrCorrupt", err)
	}
}

// A snapshot-file entry read back from disk is refused as ErrCorrupt
// unless it is well formed, in which case it names files that do not
// exist here, which is ErrCorrupt too: never a snapshot, never "not
// found". A PutSnapshot after it either refuses it or continues its
// sequence.
func FuzzSnapshotFileEntry(f *testing.F) {
	good := filePtr{cur: fileRef{Seq: 3, Taken: 5, Size: 1 << 20, CRC: 7}}
	f.Add(good.encode())
	good.prev, good.hasPrev = fileRef{Seq: 2, Size: 9}, true
	f.Add(good.encode())
	f.Add(good.encode()[:fileRefLen+3])
	f.Add(bytes.Repeat([]byte{0xff}, 2*fileRefLen))
	f.Add(make([]byte, fileRefLen))
	f.Add([]byte{})
	s := fuzzStore(f)
	const origin = 8
	if err := s.Create(Record{Origin: origin, Digest: "sha256:00"}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		putRaw(t, s, bucketSnapshots, origin, nil)
		putRaw(t, s, bucketSnapFiles, origin, v)
		p, derr := decodeFilePtr(origin, v)
		if _, err := s.LatestSnapshot(origin); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("entry %x: LatestSnapshot = %v", v, err)
		}
		seq, err := s.PutSnapshot(origin, time.Unix(0, 0), []byte("next"))
		switch {
		case derr != nil && !errors.Is(err, ErrCorrupt):
			t.Fatalf("undecodable entry: PutSnapshot = %d, %v", seq, err)
		case derr == nil && (err != nil || seq != p.cur.Seq+1):
			t.Fatalf("entry at seq %d: PutSnapshot = %d, %v", p.cur.Seq, seq, err)
		}
	})
}
