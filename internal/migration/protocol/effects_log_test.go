package protocol

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestEffectsLogValue(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	secret := []byte("daemon-state-secret")
	l.Info("step", "effects", Effects{
		TakeSnapshot{Attempt: 2, Seal: true}, FlipRoute{To: "n2"}, Release{Origin: 1},
		RestoreSnapshot{Attempt: 1, Snapshot: secret}, Done{Err: errors.New("boom")},
	})
	got := buf.String()
	want := `"effects":"[TakeSnapshot(attempt=2 seal=true) FlipRoute(to=n2) Release RestoreSnapshot(attempt=1 bytes=19) Done(err=\"boom\")]"`
	if !strings.Contains(got, want) {
		t.Fatalf("log line %s\nwant it to contain %s", got, want)
	}
	if strings.Contains(got, "secret") {
		t.Fatalf("snapshot bytes in the log: %s", got)
	}
	many := make(Effects, maxLoggedEffects+3)
	for i := range many {
		many[i] = GoLive{}
	}
	if s := many.String(); !strings.HasSuffix(s, "…3 more]") || strings.Count(s, "GoLive") != maxLoggedEffects {
		t.Fatalf("long list: %s", s)
	}
}
