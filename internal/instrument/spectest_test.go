package instrument

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

// The WebAssembly spec suite ships inside the wazero module
// (internal/integration_test/spectest: per suite a testdata directory of
// wast2json output, a .json command list per .wast and the .wasm files it
// names). TestSpecSuite walks it from the module cache and checks, for every
// file:
//
//   - every binary assert_malformed module is refused by wasmbin.Parse, and
//     so is every binary assert_invalid module but those the suite holds
//     invalid for WebAssembly 2.0 that wasmesh's feature set makes valid
//     (global.get of a defined global in a constant expression, under
//     extended-const) or that the ABI refuses (several memories); no
//     invalid module may pass both the parser and wazero;
//   - every module the suite declares valid is accepted by the parser and
//     the ABI's feature check exactly when wazero, configured with
//     CoreFeatures, compiles it (what wasmesh accepts, wazero runs);
//   - every valid module that Instrument accepts is run twice, original
//     and instrumented, in two runtimes, through the same commands
//     (invoke, get, assert_return, assert_trap, assert_exhaustion,
//     assert_unlinkable, assert_uninstantiable), and the outcomes match
//     exactly: the same result bits (NaN payloads included) or the same
//     trap. The original's results are also checked against the suite's
//     expectations, so the runner cannot agree with itself by misreading.
//
// Suites: v2 (WebAssembly 2.0), tail-call and extended-const are run. v1,
// the 1.0 suite, is checked for refusals and agreement only: v2 runs
// the same commands. threads, exception-handling and
// typed-function-references are features wasmesh refuses: their modules
// enter the refusal and agreement checks (wasmesh may refuse what wazero
// decodes without the feature, but as unsupported, never as malformed), and
// their commands are not run. Spec modules wasmesh cannot snapshot (an
// imported memory, a mutable v128 or reference global) run on the original
// side only and are counted, not compared.
//
// By default a fixed, deterministic subset runs (in v1 and v2 every fourth
// file in name order plus the structural files binary*, custom and names;
// every file of the other suites), so the test stays well under a minute
// with -race on two cores; -spectest.all runs everything.
var specAll = flag.Bool("spectest.all", false, "run every file of the spec suite, not the default subset")

// The parser lets through these many assert_invalid binaries of wazero
// v1.12.0's suite, in the default subset and with -spectest.all: the
// extended-const and multi-memory cases described above. The test fails
// when the count grows.
const invalidAcceptedSubset, invalidAcceptedAll = 2, 11

type specCommand struct {
	Type       string      `json:"type"`
	Line       int         `json:"line"`
	Name       string      `json:"name"`
	Filename   string      `json:"filename"`
	As         string      `json:"as"`
	Text       string      `json:"text"`
	ModuleType string      `json:"module_type"`
	Action     specAction  `json:"action"`
	Expected   []specValue `json:"expected"`
}

type specAction struct {
	Type   string      `json:"type"`
	Module string      `json:"module"`
	Field  string      `json:"field"`
	Args   []specValue `json:"args"`
}

type specValue struct {
	Type     string          `json:"type"`
	LaneType string          `json:"lane_type"`
	Value    json.RawMessage `json:"value"`
}

type specTally struct {
	files, modules, instrumented, compared, checked int
	malformed, malformedAccepted                    int
	invalid, invalidAccepted                        int
	skippedText, notInstrumentable, agreement       int
	notInstrumentableWhy                            map[string]int
}

func spectestDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tetratelabs/wazero").Output()
	if err != nil {
		t.Fatalf("locating wazero in the module cache (run go mod download): %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "internal", "integration_test", "spectest")
	if _, err := os.Stat(filepath.Join(dir, "v2", "testdata")); err != nil {
		t.Fatalf("spec suite not found in the wazero module: %v", err)
	}
	return dir
}

func TestSpecSuite(t *testing.T) {
	dir := spectestDir(t)
	hostWasm, err := os.ReadFile(filepath.Join(dir, "testdata", "spectest.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	tally := &specTally{notInstrumentableWhy: map[string]int{}}
	ctx := context.Background()
	// The agreement check only compiles; the interpreter validates exactly
	// as the compiler does (validation is engine-independent) and compiles
	// far faster under -race.
	checker := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(CoreFeatures))
	defer checker.Close(ctx)

	for _, suite := range []struct {
		name           string
		run, supported bool
	}{{"v2", true, true}, {"tail-call", true, true}, {"extended-const", true, true}, {"v1", false, true},
		{"threads", false, false}, {"exception-handling", false, false}, {"typed-function-references", false, false}} {
		files, _ := filepath.Glob(filepath.Join(dir, suite.name, "testdata", "*.json"))
		sort.Strings(files)
		if len(files) == 0 {
			t.Fatalf("suite %s: no files", suite.name)
		}
		for i, f := range files {
			base := strings.TrimSuffix(filepath.Base(f), ".json")
			if (suite.name == "v1" || suite.name == "v2") && !*specAll && i%4 != 0 &&
				!strings.HasPrefix(base, "binary") && base != "custom" && base != "names" {
				continue
			}
			t.Run(suite.name+"/"+base, func(t *testing.T) {
				runSpecFile(t, f, hostWasm, suite.run, suite.supported, checker, tally)
			})
		}
	}
	t.Logf("spec suite: %d files, %d modules (%d instrumented and run both ways), %d assertions compared original vs instrumented, %d results checked against the suite",
		tally.files, tally.modules, tally.instrumented, tally.compared, tally.checked)
	t.Logf("refusals: %d/%d binary assert_malformed accepted by the parser, %d/%d binary assert_invalid accepted (valid under extended-const, or refused by the ABI), %d text-only modules skipped",
		tally.malformedAccepted, tally.malformed, tally.invalidAccepted, tally.invalid, tally.skippedText)
	t.Logf("parser/wazero feature agreement checked on %d valid modules; %d modules not instrumentable (snapshot limits): %v",
		tally.agreement, tally.notInstrumentable, tally.notInstrumentableWhy)
	ceiling := invalidAcceptedSubset
	if *specAll {
		ceiling = invalidAcceptedAll
	}
	if tally.invalidAccepted > ceiling {
		t.Errorf("the parser accepts %d assert_invalid binaries, more than the %d it did", tally.invalidAccepted, ceiling)
	}
	if tally.compared == 0 {
		t.Error("no assertion compared")
	}
}

// specSide is one of the two runtimes a file runs in.
type specSide struct {
	r      wazero.Runtime
	byName map[string]api.Module
	last   api.Module
}

func newSpecSide(t *testing.T, hostWasm []byte) *specSide {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(CoreFeatures))
	t.Cleanup(func() { r.Close(ctx) })
	if _, err := r.InstantiateWithConfig(ctx, hostWasm, wazero.NewModuleConfig().WithName("spectest")); err != nil {
		t.Fatal(err)
	}
	return &specSide{r: r, byName: map[string]api.Module{}}
}

func runSpecFile(t *testing.T, path string, hostWasm []byte, run, supported bool, checker wazero.Runtime, tally *specTally) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Commands []specCommand `json:"commands"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	tally.files++
	dir := filepath.Dir(path)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ctx := context.Background()
	var orig, inst *specSide
	if run {
		orig, inst = newSpecSide(t, hostWasm), newSpecSide(t, hostWasm)
	}
	// instrumented[m] tells whether side inst runs the derived module of
	// the module the original side knows as m (else it runs the original,
	// so later modules can still link to it, and nothing about it counts).
	instrumented := map[api.Module]bool{}
	for i := 0; i < len(file.Commands); i++ {
		c := file.Commands[i]
		where := fmt.Sprintf("%s:%d %s", filepath.Base(path), c.Line, c.Type)
		switch c.Type {
		case "assert_malformed", "assert_invalid":
			if c.ModuleType == "text" {
				tally.skippedText++
				continue
			}
			if c.Type == "assert_invalid" && filepath.Base(dir) == "testdata" && filepath.Base(filepath.Dir(dir)) == "v1" {
				continue // 1.0 validation rules; 2.0 allows several of them (multi-value, tables)
			}
			b := read(c.Filename)
			_, perr := wasmbin.Parse(b)
			if c.Type == "assert_malformed" {
				tally.malformed++
				if perr == nil {
					tally.malformedAccepted++
					t.Errorf("%s (%s): the parser accepts a malformed module (%q)", where, c.Filename, c.Text)
				}
			} else {
				tally.invalid++
				if perr == nil {
					tally.invalidAccepted++
					// 2.0 forbids arithmetic and global.get of defined
					// globals in constant expressions; extended-const,
					// which wasmesh enables, allows them.
					extConst := c.Text == "constant expression required" || c.Text == "unknown global"
					if specCompiles(checker, b) && !extConst {
						t.Errorf("%s (%s): an invalid module passes both the parser and wazero (%q)", where, c.Filename, c.Text)
					}
				}
			}
			continue
		}
		if c.Type == "module" {
			b := read(c.Filename)
			tally.modules++
			tally.agreement++
			accepted, compiled := specAccepted(b), specCompiles(checker, b)
			switch {
			case accepted && !compiled:
				t.Errorf("%s (%s): wasmesh accepts a module wazero does not compile", where, c.Filename)
			case !accepted && compiled && supported:
				t.Errorf("%s (%s): wasmesh refuses a module of a supported feature set that wazero compiles", where, c.Filename)
			case !accepted && compiled:
				// wazero decodes some typed-function-reference constructs
				// without the feature; wasmesh refuses them, as unsupported.
				if _, err := wasmbin.Parse(b); err != nil && !errors.Is(err, wasmbin.ErrUnsupported) {
					t.Errorf("%s (%s): refused as malformed, not as unsupported: %v", where, c.Filename, err)
				}
			}
			if !run {
				continue
			}
			name := ""
			if i+1 < len(file.Commands) && file.Commands[i+1].Type == "register" {
				name = file.Commands[i+1].As
				i++
			}
			derived := b
			res, err := Instrument(b, Options{})
			switch {
			case err == nil:
				derived = res.Module
			case errors.Is(err, ErrUnsupported):
				tally.notInstrumentable++
				why := err.Error()
				if k := strings.LastIndex(why, ": "); k >= 0 {
					why = why[k+2:]
				}
				tally.notInstrumentableWhy[why]++
			default:
				t.Fatalf("%s (%s): Instrument: %v", where, c.Filename, err)
			}
			mo, eo := orig.r.InstantiateWithConfig(ctx, b, wazero.NewModuleConfig().WithName(name))
			mi, ei := instantiateLikeHost(ctx, inst.r, b, res, derived, name)
			if eo != nil || ei != nil {
				t.Fatalf("%s (%s): instantiation: original %v, instrumented %v", where, c.Filename, eo, ei)
			}
			if err == nil {
				tally.instrumented++
				instrumented[mo] = true
			}
			orig.last, inst.last = mo, mi
			if c.Name != "" {
				orig.byName[c.Name], inst.byName[c.Name] = mo, mi
			}
			continue
		}
		if !run {
			continue
		}
		switch c.Type {
		case "assert_unlinkable", "assert_uninstantiable":
			// Run even when the module is not instrumentable: a failed
			// instantiation may already have written to a registered
			// module's memory or table, which later commands read.
			b := read(c.Filename)
			derived := b
			res, err := Instrument(b, Options{})
			if err == nil {
				derived = res.Module
			}
			_, eo := orig.r.InstantiateWithConfig(ctx, b, wazero.NewModuleConfig().WithName(""))
			_, ei := instantiateLikeHost(ctx, inst.r, b, res, derived, "")
			if eo == nil && c.Text != "out of bounds table access" { // see wazero's own harness
				t.Errorf("%s: the original instantiates (%s expected)", where, c.Text)
			}
			if err != nil {
				continue
			}
			if firstLine(eo) != firstLine(ei) {
				t.Errorf("%s: original %v, instrumented %v", where, eo, ei)
			}
			tally.compared++
		case "assert_return", "action", "assert_trap", "assert_exhaustion":
			mo, mi := orig.last, inst.last
			if c.Action.Module != "" {
				mo, mi = orig.byName[c.Action.Module], inst.byName[c.Action.Module]
			}
			if mo == nil {
				t.Fatalf("%s: no module", where)
			}
			ro, eo := specAct(ctx, mo, c.Action)
			ri, ei := specAct(ctx, mi, c.Action)
			specCheck(t, where, c, ro, eo, tally)
			if !instrumented[mo] {
				continue
			}
			tally.compared++
			if firstLine(eo) != firstLine(ei) {
				t.Errorf("%s %s: original fails with %q, instrumented with %q", where, c.Action.Field, firstLine(eo), firstLine(ei))
			} else if fmt.Sprint(ro) != fmt.Sprint(ri) {
				t.Errorf("%s %s: original returns %v, instrumented %v", where, c.Action.Field, ro, ri)
			}
		case "register":
			t.Fatalf("%s: register not right after its module", where)
		default:
			t.Fatalf("%s: unknown command", where)
		}
	}
}

// specAccepted: wasmesh accepts the module's features (the parser, and the
// ABI's feature check; the other ABI rules are about exports and imports a
// spec module never has).
func specAccepted(b []byte) bool {
	m, err := wasmbin.Parse(b)
	return err == nil && len(abi.FeatureProblems(m)) == 0
}

func specCompiles(r wazero.Runtime, b []byte) bool {
	c, err := r.CompileModule(context.Background(), b)
	if err != nil {
		return false
	}
	c.Close(context.Background())
	return true
}

func specAct(ctx context.Context, m api.Module, a specAction) ([]uint64, error) {
	if a.Type == "get" {
		g := m.ExportedGlobal(a.Field)
		if g == nil {
			return nil, fmt.Errorf("no global %q", a.Field)
		}
		return []uint64{g.Get()}, nil
	}
	fn := m.ExportedFunction(a.Field)
	if fn == nil {
		return nil, fmt.Errorf("no function %q", a.Field)
	}
	var args []uint64
	for _, v := range a.Args {
		args = append(args, v.bits()...)
	}
	out, err := fn.Call(ctx, args...)
	// The upper half of a 32-bit result is not defined (the compiler leaves
	// whatever the register held).
	for i, rt := range fn.Definition().ResultTypes() {
		if i < len(out) && (rt == api.ValueTypeI32 || rt == api.ValueTypeF32) {
			out[i] = uint64(uint32(out[i]))
		}
	}
	return out, err
}

func firstLine(err error) string {
	if err == nil {
		return ""
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// specCheck checks the original's outcome against the suite's expectation.
func specCheck(t *testing.T, where string, c specCommand, got []uint64, err error, tally *specTally) {
	switch c.Type {
	case "assert_trap", "assert_exhaustion":
		if err == nil {
			t.Errorf("%s %s: original returned %v, want a trap (%s)", where, c.Action.Field, got, c.Text)
		}
		tally.checked++
		return
	case "action":
		return
	}
	if err != nil {
		t.Errorf("%s %s: original fails: %v", where, c.Action.Field, firstLine(err))
		return
	}
	var want []uint64
	for _, v := range c.Expected {
		want = append(want, v.bits()...)
	}
	if len(want) != len(got) {
		t.Errorf("%s %s: original returns %d values, want %d", where, c.Action.Field, len(got), len(want))
		return
	}
	k := 0
	for _, v := range c.Expected {
		n := len(v.bits())
		if !v.matches(got[k : k+n]) {
			t.Errorf("%s %s: original returns %v, suite expects %s", where, c.Action.Field, got[k:k+n], v.Value)
		}
		k += n
	}
	tally.checked++
}

func (v specValue) strings() []string {
	var one string
	if json.Unmarshal(v.Value, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(v.Value, &many)
	return many
}

// bits encodes v as wazero's Call takes it: one uint64, two for v128. NaN
// patterns encode as 0 (only expectations have them; matches handles them).
// References: null is 0; externref n is n+1, so that no non-null reference
// is 0 (arguments and results only meet the same encoding).
func (v specValue) bits() []uint64 {
	s := v.strings()
	num := func(s string, size int) uint64 {
		n, _ := strconv.ParseUint(s, 10, size)
		return n
	}
	switch v.Type {
	case "i32", "f32":
		return []uint64{num(s[0], 32)}
	case "i64", "f64":
		return []uint64{num(s[0], 64)}
	case "externref":
		if s[0] == "null" || len(s[0]) == 0 {
			return []uint64{0}
		}
		return []uint64{num(s[0], 64) + 1}
	case "funcref":
		return []uint64{0}
	case "v128":
		var width int
		switch v.LaneType {
		case "i8":
			width = 8
		case "i16":
			width = 16
		case "i32", "f32":
			width = 32
		default:
			width = 64
		}
		var lo, hi uint64
		for i, l := range s {
			x := num(l, width)
			pos := i * width
			if pos < 64 {
				lo |= x << pos
			} else {
				hi |= x << (pos - 64)
			}
		}
		return []uint64{lo, hi}
	}
	return []uint64{0}
}

// matches compares got with the expectation, honouring nan:canonical and
// nan:arithmetic lanes and "any reference" (no value).
func (v specValue) matches(got []uint64) bool {
	s := v.strings()
	switch v.Type {
	case "funcref", "externref":
		return len(v.Value) == 0 || string(v.Value) == "null" || fmt.Sprint(got) == fmt.Sprint(v.bits())
	case "f32", "f64":
		return nanMatches(s[0], got[0], v.Type == "f32") || got[0] == v.bits()[0]
	case "v128":
		if v.LaneType != "f32" && v.LaneType != "f64" {
			return fmt.Sprint(got) == fmt.Sprint(v.bits())
		}
		width := 32
		if v.LaneType == "f64" {
			width = 64
		}
		want := v.bits()
		for i, l := range s {
			pos := i * width
			word, wword := got[pos/64], want[pos/64]
			mask := uint64(math.MaxUint64)
			if width == 32 {
				mask = 0xffffffff
			}
			g, w := word>>(pos%64)&mask, wword>>(pos%64)&mask
			if !nanMatches(l, g, width == 32) && g != w {
				return false
			}
		}
		return true
	}
	return fmt.Sprint(got) == fmt.Sprint(v.bits())
}

func nanMatches(pattern string, bits uint64, f32 bool) bool {
	switch pattern {
	case "nan:canonical":
		if f32 {
			return uint32(bits)&0x7fffffff == 0x7fc00000
		}
		return bits&0x7fffffffffffffff == 0x7ff8000000000000
	case "nan:arithmetic":
		if f32 {
			return uint32(bits)&0x7fc00000 == 0x7fc00000
		}
		return bits&0x7ff8000000000000 == 0x7ff8000000000000
	}
	return false
}
