//go:build !wasip1

package rt

import (
	"errors"
	"strings"
	"testing"
)

func reset(t *testing.T) {
	t.Helper()
	handler, onInit, snapshot, restore, in = nil, nil, nil, nil, nil
	fake.emits, fake.fails, fake.logs, fake.state = nil, nil, nil, nil
}

// deliver plays the host: ask for a buffer, write the payload, process.
func deliver(payload string) int32 {
	p := Input(uint32(len(payload)))
	copy(in[p-addr(in):], payload)
	return Process(7, 9, p, uint32(len(payload)))
}

func TestInputGrowsOnlyAndKeepsAddress(t *testing.T) {
	reset(t)
	a := Input(0)
	if a == 0 || len(in) < minInput {
		t.Fatalf("first buffer: ptr %d len %d", a, len(in))
	}
	if b := Input(10); b != a {
		t.Fatalf("small request moved the buffer: %d -> %d", a, b)
	}
	c := Input(minInput + 1)
	if len(in) < minInput+1 {
		t.Fatalf("buffer %d bytes after asking for %d", len(in), minInput+1)
	}
	if d := Input(1); d != c {
		t.Fatalf("buffer shrank or moved after a smaller request: %d -> %d", c, d)
	}
}

func TestProcessEmitsReturnedOutputsInOrder(t *testing.T) {
	reset(t)
	var got struct{ sender, seq uint64 }
	SetHandler(func(sender, seq uint64, p []byte) ([][]byte, error) {
		got.sender, got.seq = sender, seq
		Emit([]byte("streamed"))
		return [][]byte{p, {}}, nil
	})
	if rc := deliver("hi"); rc != 0 {
		t.Fatalf("rc %d, fails %q", rc, fake.fails)
	}
	if got.sender != 7 || got.seq != 9 {
		t.Fatalf("event origin/seq = %d/%d, want 7/9", got.sender, got.seq)
	}
	want := []string{"streamed", "hi", ""}
	if len(fake.emits) != len(want) {
		t.Fatalf("emits %q, want %q", fake.emits, want)
	}
	for i, w := range want {
		if string(fake.emits[i]) != w {
			t.Fatalf("emit %d = %q, want %q", i, fake.emits[i], w)
		}
	}
}

func TestPayloadAppendDoesNotOverwriteBuffer(t *testing.T) {
	reset(t)
	SetHandler(func(_, _ uint64, p []byte) ([][]byte, error) {
		_ = append(p, "XXXX"...)
		return nil, nil
	})
	p := Input(8)
	copy(in, "abcdefgh")
	if rc := Process(0, 0, p, 2); rc != 0 {
		t.Fatalf("rc %d", rc)
	}
	if string(in[:8]) != "abcdefgh" {
		t.Fatalf("append through the payload wrote into the input buffer: %q", in[:8])
	}
}

func TestProcessFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    Handler
		want string
	}{
		{"no handler", nil, "no handler"},
		{"error", func(uint64, uint64, []byte) ([][]byte, error) {
			return [][]byte{[]byte("dropped")}, errors.New("bad input")
		}, "bad input"},
		{"panic", func(uint64, uint64, []byte) ([][]byte, error) { panic("boom") }, "panic: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reset(t)
			SetHandler(tc.h)
			if rc := deliver("x"); rc != 1 {
				t.Fatalf("rc %d, want 1", rc)
			}
			if len(fake.fails) != 1 || !strings.Contains(fake.fails[0], tc.want) {
				t.Fatalf("fail messages %q, want one containing %q", fake.fails, tc.want)
			}
			if len(fake.emits) != 0 {
				t.Fatalf("a failed event emitted its return value: %q", fake.emits)
			}
		})
	}
}

func TestProcessRejectsPointerOutsideBuffer(t *testing.T) {
	reset(t)
	SetHandler(func(uint64, uint64, []byte) ([][]byte, error) {
		t.Fatal("handler called with a bad pointer")
		return nil, nil
	})
	p := Input(4)
	for _, bad := range []struct{ ptr, n uint32 }{
		{p - 1, 1},
		{p + uint32(len(in)), 1},
		{p, uint32(len(in)) + 1},
		{p + 1, ^uint32(0)},
	} {
		if rc := Process(0, 0, bad.ptr, bad.n); rc != 1 {
			t.Fatalf("ptr %d len %d: rc %d, want 1", bad.ptr, bad.n, rc)
		}
	}
	if len(fake.fails) != 4 {
		t.Fatalf("fails %q", fake.fails)
	}
}

func TestInitCopiesConfigAndDefaultsToSuccess(t *testing.T) {
	reset(t)
	p := Input(3)
	copy(in, "cfg")
	if rc := Init(p, 3); rc != 0 {
		t.Fatalf("init without hook: rc %d", rc)
	}
	var kept []byte
	SetInit(func(c []byte) error { kept = c; return nil })
	if rc := Init(p, 3); rc != 0 {
		t.Fatalf("rc %d", rc)
	}
	copy(in, "zzz")
	if string(kept) != "cfg" {
		t.Fatalf("config kept by the hook changed with the buffer: %q", kept)
	}
	SetInit(func([]byte) error { return errors.New("no") })
	if rc := Init(p, 3); rc != 1 || !strings.Contains(fake.fails[0], "init: no") {
		t.Fatalf("rc %d fails %q", rc, fake.fails)
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	reset(t)
	if rc := Snapshot(); rc != 1 {
		t.Fatalf("snapshot without hook: rc %d, want 1", rc)
	}
	if rc := Restore(Input(0), 0); rc != 1 {
		t.Fatalf("restore without hook: rc %d, want 1", rc)
	}
	count := 41
	SetSnapshot(func() ([]byte, error) { return []byte{byte(count)}, nil })
	SetRestore(func(s []byte) error {
		if len(s) != 1 {
			return errors.New("bad state")
		}
		count = int(s[0])
		return nil
	})
	if rc := Snapshot(); rc != 0 || string(fake.state) != "\x29" {
		t.Fatalf("rc %d state %q", rc, fake.state)
	}
	count = 0
	p := Input(1)
	in[p-addr(in)] = fake.state[0]
	if rc := Restore(p, 1); rc != 0 || count != 41 {
		t.Fatalf("rc %d count %d", rc, count)
	}
	if rc := Restore(p, 0); rc != 1 {
		t.Fatalf("restore hook error not reported: rc %d", rc)
	}
	SetSnapshot(func() ([]byte, error) { panic("snap") })
	if rc := Snapshot(); rc != 1 || !strings.Contains(fake.fails[len(fake.fails)-1], "panic: snap") {
		t.Fatalf("rc %d fails %q", rc, fake.fails)
	}
}
