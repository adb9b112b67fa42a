package instrument

import (
	"errors"
	"os"
	"testing"

	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

func TestTableMaxCapped(t *testing.T) {
	withTables := func(ls ...wasmbin.Limits) []byte {
		var tt []wasmbin.TableType
		for _, l := range ls {
			tt = append(tt, wasmbin.TableType{Elem: wasmbin.FuncRef, Limits: l})
		}
		return wasmbin.Encode([]wasmbin.Section{wasmbin.TableSection(tt)})
	}
	cases := []struct {
		in   []wasmbin.Limits
		cap  uint64
		want []wasmbin.Limits
	}{
		{[]wasmbin.Limits{{Min: 1}}, 0, []wasmbin.Limits{{Min: 1}}},
		{[]wasmbin.Limits{{Min: 1}}, 100, []wasmbin.Limits{{Min: 1, Max: 100, HasMax: true}}},
		{[]wasmbin.Limits{{Min: 1, Max: 10, HasMax: true}}, 100, []wasmbin.Limits{{Min: 1, Max: 10, HasMax: true}}},
		{[]wasmbin.Limits{{Min: 1, Max: 1000, HasMax: true}, {Min: 0}}, 100, []wasmbin.Limits{{Min: 1, Max: 50, HasMax: true}, {Max: 50, HasMax: true}}},
	}
	for _, c := range cases {
		res := mustInstrument(t, withTables(c.in...), Options{MaxTableEntries: c.cap})
		m, err := wasmbin.Parse(res.Module)
		if err != nil {
			t.Fatal(err)
		}
		for i, tab := range m.Tables {
			if tab.Limits != c.want[i] {
				t.Errorf("%+v cap %d: table %d is %+v, want %+v", c.in, c.cap, i, tab.Limits, c.want[i])
			}
		}
	}
	_, err := Instrument(withTables(wasmbin.Limits{Min: 101}), Options{MaxTableEntries: 100})
	if !errors.Is(err, ErrTableLimit) || !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("initial table above the cap: %v", err)
	}
}

// FuzzTableCap: for any parseable module and table cap, an instrumented
// module's tables all have a maximum, and together they fit the cap.
func FuzzTableCap(f *testing.F) {
	for _, p := range []string{"../../plugins/examples/testdata/table_bomb.wasm", "../../plugins/examples/testdata/table_mut.wasm"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, uint64(0))
			f.Add(b, uint64(65536))
			f.Add(b, uint64(1))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, limit uint64) {
		res, err := Instrument(b, Options{MaxTableEntries: limit})
		if err != nil {
			return
		}
		m, err := wasmbin.Parse(res.Module)
		if err != nil {
			t.Fatalf("instrumented module does not parse: %v", err)
		}
		if limit == 0 {
			return
		}
		var sum uint64
		for i, tab := range m.Tables {
			if !tab.Limits.HasMax || tab.Limits.Max < tab.Limits.Min {
				t.Fatalf("table %d: limits %+v", i, tab.Limits)
			}
			sum += tab.Limits.Max
		}
		if sum > limit {
			t.Fatalf("tables' maxima sum to %d over the cap %d", sum, limit)
		}
	})
}
