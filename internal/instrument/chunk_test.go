package instrument

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// chunkPair is the chunk fixture instantiated plain and instrumented, and
// the memory pattern both start every case from.
type chunkPair struct {
	plain, inst api.Module
	pattern     []byte
}

func newChunkPair(t testing.TB, cfg wazero.RuntimeConfig) chunkPair {
	t.Helper()
	orig := readFile(t, "testdata/chunk.wasm")
	res := mustInstrument(t, orig, Options{})
	r := newRuntime(t, cfg)
	p := chunkPair{plain: instantiate(t, r, orig, "plain"), inst: instantiate(t, r, res.Module, "inst")}
	// Bytes with no period dividing a chunk, so a chunk copied from the
	// wrong place shows.
	p.pattern = make([]byte, p.plain.Memory().Size())
	for i := range p.pattern {
		p.pattern[i] = byte(uint32(i)*31/7 + uint32(i)>>11)
	}
	return p
}

// run calls fn on both modules from the same memory and requires the same
// error (same trap message) and the same memory afterwards.
func (p chunkPair) run(t testing.TB, fn string, args ...uint64) {
	t.Helper()
	p.plain.Memory().Write(0, p.pattern)
	p.inst.Memory().Write(0, p.pattern)
	_, errP := p.plain.ExportedFunction(fn).Call(context.Background(), args...)
	_, errI := p.inst.ExportedFunction(fn).Call(context.Background(), args...)
	if msg(errP) != msg(errI) {
		t.Fatalf("%s%v: plain error %v, instrumented %v", fn, args, errP, errI)
	}
	a, _ := p.plain.Memory().Read(0, p.plain.Memory().Size())
	b, _ := p.inst.Memory().Read(0, p.inst.Memory().Size())
	if bytes.Equal(a, b) {
		return
	}
	if len(a) != len(b) {
		t.Fatalf("%s%v: memory sizes %d and %d", fn, args, len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("%s%v: memory differs first at %d: plain %d, instrumented %d (err %v)", fn, args, i, a[i], b[i], errP)
		}
	}
}

// msg is the trap message, without the stack trace that names different
// functions in the two modules.
func msg(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if i := strings.Index(s, "\n"); i >= 0 {
		s = s[:i]
	}
	return s
}

// TestChunkedSemantics: the $fill and $copy helpers do what memory.fill and
// memory.copy do, byte for byte and trap for trap, over sizes around the
// chunk size, overlaps in both directions, and out-of-bounds ends including
// ones that wrap past 2^32 (nothing written then).
func TestChunkedSemantics(t *testing.T) {
	const C = ChunkBytes
	deltas := []int64{0, 1, -1, -7, C / 2, -C / 2, C + 3, -C - 3, 1 << 31}
	for _, e := range engines {
		if raceEnabled && e.name != "compiler" {
			continue // the detector's memmove checks make the matrix minutes long; the compiler is what the host runs
		}
		if raceEnabled {
			deltas = []int64{0, 1, -C/2 - 1, C + 3, 1 << 31}
		}
		t.Run(e.name, func(t *testing.T) {
			p := newChunkPair(t, e.cfg())
			size := uint64(p.plain.Memory().Size())
			sizes := []uint64{0, 1, 16, 4097, C - 1, C, C + 1, 2*C + 5, size - 1, size, size + 1, 1<<32 - 1}
			if raceEnabled {
				sizes = []uint64{0, 1, C + 1, 2*C + 5, size, size + 1, 1<<32 - 1}
			}
			addrs := func(n uint64) []uint64 {
				a := []uint64{0, 1, 3, C - 1, C + 7, size, size + 1, 1<<32 - 1, 1<<32 - 16, (1<<32 - n) & (1<<32 - 1), (1<<32 - n + 1) & (1<<32 - 1)}
				if n <= size {
					a = append(a, size-n, size-n+1)
				}
				if n <= size+1 && n > 0 {
					a = append(a, size-n+1)
				}
				return a
			}
			for _, n := range sizes {
				for _, d := range addrs(n) {
					p.run(t, "fill", d, 0xab, n)
				}
			}
			for _, n := range sizes {
				for _, d := range addrs(n) {
					for _, delta := range deltas {
						s := uint64(int64(d)+delta) & (1<<32 - 1)
						p.run(t, "copy", d, s, n)
					}
				}
			}
		})
	}
}

// TestChunkedWrapTrapsOutOfBounds: an end wrapping past 2^32 traps with
// wazero's out-of-bounds error, like the native instruction.
func TestChunkedWrapTrapsOutOfBounds(t *testing.T) {
	p := newChunkPair(t, wazero.NewRuntimeConfigCompiler())
	for _, c := range []struct {
		fn   string
		args []uint64
	}{
		{"fill", []uint64{1<<32 - 16, 0, 32}},
		{"copy", []uint64{0, 1<<32 - 16, 32}},
		{"copy", []uint64{1<<32 - 16, 0, 32}},
	} {
		_, err := p.inst.ExportedFunction(c.fn).Call(context.Background(), c.args...)
		if err == nil || !strings.Contains(err.Error(), "out of bounds memory access") {
			t.Fatalf("%s%v: %v, want out of bounds memory access", c.fn, c.args, err)
		}
	}
}

// TestChunkedFillStopsMidway: a stop raised while ONE 256 MiB memory.fill
// runs ends it at the next chunk with the stop trap, leaving its tail
// unwritten. The flag is set once the fill is seen to have written its
// first chunk; should the fill still have finished first (a descheduled
// test goroutine), the attempt is repeated.
func TestChunkedFillStopsMidway(t *testing.T) {
	const total = 256 << 20
	res := mustInstrument(t, readFile(t, "testdata/chunk.wasm"), Options{})
	r := newRuntime(t, wazero.NewRuntimeConfigCompiler())
	m := instantiate(t, r, res.Module, "inst")
	if got := call(t, m, "grow", total>>16)[0]; got != 40 {
		t.Fatalf("grow = %d", got)
	}
	stop := mutable(t, m, res.StopExport)
	for attempt := 0; attempt < 5; attempt++ {
		if !m.Memory().Write(0, make([]byte, total)) {
			t.Fatal("memory not writable")
		}
		done := make(chan error, 1)
		go func() {
			_, err := m.ExportedFunction("fill").Call(context.Background(), 0, 7, total)
			done <- err
		}()
		var err error
	wait:
		for {
			select {
			case err = <-done:
				break wait
			default:
			}
			// Native code writes this byte; the read is a poll, its
			// value only decides when to raise the flag.
			if b, _ := m.Memory().ReadByte(ChunkBytes); b == 7 {
				stop.Set(1)
				err = <-done
				break
			}
		}
		stop.Set(0)
		if err == nil {
			t.Logf("attempt %d: the fill finished before the flag was seen", attempt)
			continue
		}
		if !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("stopped fill: %v, want the stop trap (unreachable)", err)
		}
		if b, _ := m.Memory().ReadByte(total - 1); b != 0 {
			t.Fatalf("last byte = %d after a stop mid-way, want 0 (not written)", b)
		}
		if b, _ := m.Memory().ReadByte(0); b != 7 {
			t.Fatalf("first byte = %d, want 7 (the first chunk ran)", b)
		}
		return
	}
	t.Fatal("the fill finished in every attempt before the stop was raised")
}

// FuzzChunkedSemantics: for any operands, $fill and $copy leave memory and
// the trap exactly as memory.fill and memory.copy do.
func FuzzChunkedSemantics(f *testing.F) {
	const C = ChunkBytes
	for _, c := range [][4]uint64{
		{0, 0, 1, 0}, {0, 5, 2*C + 1, 1}, {5, 0, 2*C + 1, 1}, {1<<32 - 16, 0, 32, 0},
		{0, 1<<32 - 16, 32, 1}, {40 << 16, 0, 0, 0}, {40<<16 + 1, 0, 0, 1}, {C - 1, C + 1, C + 2, 1},
	} {
		f.Add(c[0], c[1], c[2], c[3] == 1)
	}
	p := newChunkPair(f, wazero.NewRuntimeConfigCompiler())
	f.Fuzz(func(t *testing.T, d, s, n uint64, copy bool) {
		d, s, n = d&(1<<32-1), s&(1<<32-1), n%(3*C) // mostly in range
		if copy {
			p.run(t, "copy", d%(3<<20), s%(3<<20), n)
		} else {
			p.run(t, "fill", d%(3<<20), s, n)
		}
	})
}
