package meshquic

import (
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestCheckMsgpackAcceptsWhatMsgpackWrites(t *testing.T) {
	values := []any{
		nil, true, false, 0, -1, -33, 127, 128, math.MaxInt64, math.MinInt64, uint64(math.MaxUint64),
		float32(1.5), 2.25, "", "x", strings.Repeat("s", 40), strings.Repeat("s", 300), strings.Repeat("s", 70000),
		[]byte{}, make([]byte, 300), make([]byte, 70000), []int{1, 2, 3}, make([]int, 20), make([]string, 70000),
		map[string]any{"a": 1, "b": []any{map[string]int{"c": 2}}}, time.Unix(1700000000, 5),
		DeliverRequest{Event: Event{Target: math.MaxUint64, Payload: make([]byte, 1000)}},
		DeliverResponse{Outputs: make([]Output, 17)}, wireError{Code: CodeMoved, To: make([]byte, 16), Epoch: 1 << 40},
	}
	for _, v := range values {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkMsgpack(b); err != nil {
			t.Errorf("%T: %v", v, err)
		}
	}
}

func TestCheckMsgpackRefusesLies(t *testing.T) {
	cases := map[string][]byte{
		"bin32 claims 4 GiB":       {0x81, 0xa1, 'p', 0xc6, 0xff, 0xff, 0xff, 0xff, 0},
		"str32 claims 1 GiB":       {0xdb, 0x40, 0, 0, 0},
		"array32 claims 4G items":  {0xdd, 0xff, 0xff, 0xff, 0xff, 1},
		"map16 short":              {0xde, 0, 2, 1, 1, 1},
		"reserved code":            {0xc1},
		"two values":               {1, 2},
		"empty":                    {},
		"ext32 claims 1 GiB":       {0xc9, 0x40, 0, 0, 0, 1},
		"truncated uint64":         {0xcf, 0, 0},
		"nested deeper than limit": []byte(strings.Repeat("\x91", maxMsgDepth+1) + "\x00"),
	}
	for name, b := range cases {
		if err := checkMsgpack(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// And decodeBody refuses without allocating the claimed size (2 GiB).
	// Bytes, not allocation counts: other goroutines of a busy test
	// process allocate too, but nowhere near a gigabyte.
	var req DeliverRequest
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 10; i++ {
		_ = decodeBody([]byte{0x81, 0xa1, 'e', 0x81, 0xa1, 'p', 0xc6, 0x7f, 0xff, 0xff, 0xff}, &req)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("refusing 10 lying frames allocated %d bytes", grew)
	}
}
