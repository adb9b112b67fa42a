package wal

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmesh/wasmesh/internal/engine"
)

// BenchmarkEngine is the measurement behind the journal's storage engine
// (docs/DECISIONS.md): the same durable appends — `writers` concurrent
// writers, each waiting until its record is on disk — through this
// package's segment files with group commit, and through bbolt's Batch
// (bbolt's own group commit: concurrent Batch calls share one transaction
// and its fsyncs).
//
//	go test -run '^$' -bench Engine -benchtime 5000x ./internal/wal/
func BenchmarkEngine(b *testing.B) {
	payload := make([]byte, 64)
	rec := make([]byte, 16)
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d/segments", writers), func(b *testing.B) {
			j, _, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			ctx := context.Background()
			run(b, writers, func(w int, seq uint64) error {
				j.Record(1, uint64(w), seq, &engine.Event{Seq: seq, Payload: payload}, rec)
				return j.Sync(ctx)
			})
		})
		b.Run(fmt.Sprintf("writers=%d/bbolt-batch", writers), func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "j.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			bucket := []byte("j")
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err })
			var key atomic.Uint64
			run(b, writers, func(w int, seq uint64) error {
				k := binary.BigEndian.AppendUint64(nil, key.Add(1))
				v := append(append([]byte(nil), payload...), rec...)
				return db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(k, v) })
			})
		})
	}
}

func run(b *testing.B, writers int, op func(w int, seq uint64) error) {
	per := max(b.N/writers, 1)
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				if err := op(w, uint64(i+1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(per*writers)/b.Elapsed().Seconds(), "appends/s")
}
