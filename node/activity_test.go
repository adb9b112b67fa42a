package node

import "testing"

func TestActivityTracksMigrationsAndDrain(t *testing.T) {
	var a activity
	var seen []MigrateProgress
	progress := func(p MigrateProgress) { seen = append(seen, p) }
	done := a.trackMigration("00000000000000aa", "c1", "alpha", "beta", &progress)
	if got := a.snapshot().Migrations; len(got) != 1 || got[0].Phase != "starting" || got[0].To != "beta" {
		t.Fatalf("after start: %+v", got)
	}
	progress(MigrateProgress{Phase: "transfer", BytesSent: 10, BytesTotal: 40})
	if len(seen) != 1 || seen[0].BytesSent != 10 {
		t.Fatalf("the caller's progress was not called through: %+v", seen)
	}
	if got := a.snapshot().Migrations[0]; got.Phase != "transfer" || got.BytesTotal != 40 || got.Name != "c1" {
		t.Fatalf("after progress: %+v", got)
	}
	done()
	if got := a.snapshot().Migrations; len(got) != 0 {
		t.Fatalf("after done: %+v", got)
	}

	// A nil progress (a drain's migrations) is still recorded.
	var none func(MigrateProgress)
	done = a.trackMigration("00000000000000bb", "", "alpha", "beta", &none)
	none(MigrateProgress{Phase: "complete"})
	if got := a.snapshot().Migrations; len(got) != 1 || got[0].Phase != "complete" {
		t.Fatalf("nil progress: %+v", got)
	}
	done()

	var dp func(DrainProgress)
	doneDrain := a.trackDrain("alpha", &dp)
	dp(DrainProgress{Event: "moved", Total: 3, Moved: 1, Remaining: 2})
	if d := a.snapshot().Drain; d == nil || d.Node != "alpha" || d.Moved != 1 || d.Remaining != 2 {
		t.Fatalf("drain: %+v", d)
	}
	doneDrain()
	if d := a.snapshot().Drain; d != nil {
		t.Fatalf("drain after done: %+v", d)
	}
}
