package abi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// guest describes a test module: functions exported under names, imports,
// memories and extra raw exports.
type guest struct {
	funcs    map[string]Signature // exported functions
	imports  []wasmbin.Import
	importFT []Signature // type of each func import, in order
	mems     []wasmbin.Limits
	exports  []wasmbin.Export // extra exports (indices into the full spaces)
	noMemExp bool
}

func good() guest {
	return guest{
		funcs: map[string]Signature{
			ExportMarker:  mustExportSig(ExportMarker),
			ExportInput:   mustExportSig(ExportInput),
			ExportProcess: mustExportSig(ExportProcess),
		},
		mems: []wasmbin.Limits{{Min: 1, Max: 4, HasMax: true}},
	}
}

func toFT(s Signature) wasmbin.FuncType {
	ft := wasmbin.FuncType{}
	for _, p := range s.Params {
		ft.Params = append(ft.Params, wasmbin.ValType(p))
	}
	for _, r := range s.Results {
		ft.Results = append(ft.Results, wasmbin.ValType(r))
	}
	return ft
}

// zeroBody returns a body that produces zero results of the signature.
func zeroBody(s Signature) wasmbin.Code {
	var b []byte
	for _, r := range s.Results {
		b = append(b, wasmbin.ConstZero(wasmbin.ValType(r))...)
		b = b[:len(b)-1] // drop the const expression's end
	}
	return wasmbin.Code{Body: append(b, wasmbin.OpEnd)}
}

func (g guest) build() []byte {
	var types []wasmbin.FuncType
	imports := append([]wasmbin.Import(nil), g.imports...)
	fi := 0
	nFuncImports := uint32(0)
	for i := range imports {
		if imports[i].Kind == wasmbin.KindFunc {
			imports[i].TypeIndex = uint32(len(types))
			types = append(types, toFT(g.importFT[fi]))
			fi++
			nFuncImports++
		}
	}
	var funcs []uint32
	var codes []wasmbin.Code
	var exports []wasmbin.Export
	names := make([]string, 0, len(g.funcs))
	for n := range g.funcs {
		names = append(names, n)
	}
	// deterministic order
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if names[j] < names[i] {
				names[i], names[j] = names[j], names[i]
			}
		}
	}
	for _, n := range names {
		s := g.funcs[n]
		funcs = append(funcs, uint32(len(types)))
		types = append(types, toFT(s))
		codes = append(codes, zeroBody(s))
		exports = append(exports, wasmbin.Export{Name: n, Kind: wasmbin.KindFunc, Index: nFuncImports + uint32(len(funcs)-1)})
	}
	if !g.noMemExp && len(g.mems) > 0 {
		exports = append(exports, wasmbin.Export{Name: ExportMemory, Kind: wasmbin.KindMemory})
	}
	exports = append(exports, g.exports...)
	return wasmbin.Encode([]wasmbin.Section{
		wasmbin.TypeSection(types),
		wasmbin.ImportSection(imports),
		wasmbin.FunctionSection(funcs),
		wasmbin.MemorySection(g.mems),
		wasmbin.ExportSection(exports),
		wasmbin.CodeSection(codes),
	})
}

func TestValidateGoodModules(t *testing.T) {
	for _, c := range []struct {
		file, mode      string
		init, initalize bool
		wasi            bool
	}{
		{"guest_ok.wasm", ModeTransparent, true, true, true},
		{"guest_coop.wasm", ModeCooperative, false, false, false},
		{"go_reactor.wasm", ModeTransparent, false, true, true},
	} {
		b := readTestdata(t, c.file)
		info, err := Validate(b)
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		sum := sha256.Sum256(b)
		if info.Digest != "sha256:"+hex.EncodeToString(sum[:]) {
			t.Errorf("%s: digest %s", c.file, info.Digest)
		}
		if info.ABIVersion != 1 || info.Mode != c.mode || info.HasInit != c.init || info.HasInitialize != c.initalize || info.UsesWASI != c.wasi {
			t.Errorf("%s: %+v", c.file, info)
		}
	}
	info, err := Validate(readTestdata(t, "guest_ok.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Memory != (Memory{Min: 2, Max: 16, HasMax: true}) {
		t.Errorf("memory %+v", info.Memory)
	}
	var sigs []string
	for _, e := range info.Exports {
		sigs = append(sigs, e.Name+" "+e.Kind+" "+e.Signature)
	}
	want := "memory memory ,wasmesh_abi_v1 func () -> (),_initialize func () -> (),wasmesh_init func (i32, i32) -> i32," +
		"wasmesh_input func (i32) -> i32,wasmesh_process func (i64, i64, i32, i32) -> i32"
	if got := strings.Join(sigs, ","); got != want {
		t.Errorf("exports:\n got %s\nwant %s", got, want)
	}
	if len(info.Imports) != 4 || info.Imports[3] != (Import{Module: WASIModule, Name: "fd_write", Kind: "func", Signature: "(i32, i32, i32, i32) -> i32"}) {
		t.Errorf("imports %+v", info.Imports)
	}
}

func TestValidateCollectsEveryProblem(t *testing.T) {
	b := readTestdata(t, "guest_bad.wasm")
	info, err := Inspect(b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"import env.abort":                        `imports from module "env" are not allowed`,
		"import wasmesh.emit":                     "expected (i32, i32) -> (), got (i32) -> ()",
		"import wasmesh.teleport":                 "unknown host function",
		"import wasi_snapshot_preview1.path_open": "outside the allowed subset",
		"import env.table":                        "table imports are not allowed",
		"import env.g":                            "global imports are not allowed",
		"memory":                                  "2 memories",
		ExportMemory + "#2":                       "exported as a func",
		ExportMarker:                              "missing required export",
		ExportInput:                               "missing required export (signature (i32) -> i32)",
		ExportProcess:                             "expected (i64, i64, i32, i32) -> i32, got (i32, i32, i32, i32) -> i32",
		ExportSnapshot:                            "expected () -> i32, got () -> ()",
		ExportStart:                               "build a reactor",
		ReservedExportPrefix + "g0":               "reserved for the host",
		ExportSnapshot + "#2":                     "without wasmesh_restore",
	}
	got := map[string]string{}
	for _, p := range info.Problems {
		k := p.Item
		if _, dup := got[k]; dup {
			k += "#2"
		}
		got[k] = p.Reason
	}
	for item, reason := range want {
		if !strings.Contains(got[item], reason) {
			t.Errorf("problem %q: got %q, want it to contain %q", item, got[item], reason)
		}
	}
	if len(info.Problems) != len(want) {
		t.Errorf("%d problems, want %d: %+v", len(info.Problems), len(want), info.Problems)
	}
	for _, hint := range []string{"-buildmode=c-shared", "-mexec-model=reactor", "cdylib"} {
		if !strings.Contains(got[ExportStart], hint) {
			t.Errorf("_start hint lacks %q", hint)
		}
	}

	_, err = Validate(b)
	var re *RefusalError
	if !errors.As(err, &re) || !errors.Is(err, ErrRefused) || len(re.Problems) != len(info.Problems) {
		t.Fatalf("Validate: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "import env.abort") || !strings.Contains(msg, "and 14 more problems") {
		t.Errorf("error message: %s", msg)
	}
}

func TestValidateSingleProblems(t *testing.T) {
	i32 := []ValType{I32}
	cases := []struct {
		name   string
		mod    func(g *guest)
		item   string
		reason string
	}{
		{"no memory", func(g *guest) { g.mems = nil }, ExportMemory, "missing required export"},
		{"memory not exported", func(g *guest) { g.noMemExp = true }, ExportMemory, "missing required export"},
		{"memory exported as global", func(g *guest) {
			g.noMemExp = true
			g.imports = nil
			g.exports = []wasmbin.Export{{Name: ExportMemory, Kind: wasmbin.KindFunc, Index: 0}}
		}, ExportMemory, "exported as a func"},
		{"no marker", func(g *guest) { delete(g.funcs, ExportMarker) }, ExportMarker, "missing required export (signature () -> ())"},
		{"no process", func(g *guest) { delete(g.funcs, ExportProcess) }, ExportProcess, "missing required export"},
		{"marker signature", func(g *guest) { g.funcs[ExportMarker] = Signature{Params: i32} }, ExportMarker, "expected () -> (), got (i32) -> ()"},
		{"input signature", func(g *guest) { g.funcs[ExportInput] = Signature{Params: []ValType{I64}, Results: i32} }, ExportInput, "expected (i32) -> i32, got (i64) -> i32"},
		{"init signature", func(g *guest) { g.funcs[ExportInit] = Signature{Params: i32} }, ExportInit, "expected (i32, i32) -> i32"},
		{"_initialize signature", func(g *guest) { g.funcs[ExportInitialize] = Signature{Results: i32} }, ExportInitialize, "expected () -> (), got () -> i32"},
		{"restore alone", func(g *guest) { g.funcs[ExportRestore] = mustExportSig(ExportRestore) }, ExportRestore, "without wasmesh_snapshot"},
		{"restore signature", func(g *guest) {
			g.funcs[ExportRestore] = Signature{Params: i32, Results: i32}
			g.funcs[ExportSnapshot] = mustExportSig(ExportSnapshot)
		}, ExportRestore, "expected (i32, i32) -> i32, got (i32) -> i32"},
		{"_start", func(g *guest) { g.funcs[ExportStart] = Signature{} }, ExportStart, "build a reactor"},
		{"reserved prefix", func(g *guest) { g.funcs[ReservedExportPrefix+"stop"] = Signature{} }, ReservedExportPrefix + "stop", "reserved"},
		{"memory64", func(g *guest) { g.mems = []wasmbin.Limits{{Min: 1, Memory64: true}} }, "memory", "memory64"},
		{"shared", func(g *guest) { g.mems = []wasmbin.Limits{{Min: 1, Max: 1, HasMax: true, Shared: true}} }, "memory", "shared memory"},
		{"two memories", func(g *guest) { g.mems = append(g.mems, wasmbin.Limits{Min: 1}) }, "memory", "2 memories"},
		{"memory import", func(g *guest) {
			g.imports = []wasmbin.Import{{Module: ImportModule, Name: "memory", Kind: wasmbin.KindMemory, Memory: wasmbin.Limits{Min: 1}}}
			g.mems = nil
			g.exports = []wasmbin.Export{{Name: ExportMemory, Kind: wasmbin.KindMemory}}
		}, "import wasmesh.memory", "memory imports are not allowed"},
		{"env import", func(g *guest) {
			g.imports = []wasmbin.Import{{Module: "env", Name: "emit", Kind: wasmbin.KindFunc}}
			g.importFT = []Signature{{Params: []ValType{I32, I32}}}
		}, "import env.emit", `module "env"`},
		{"wasi signature", func(g *guest) {
			g.imports = []wasmbin.Import{{Module: WASIModule, Name: "fd_write", Kind: wasmbin.KindFunc}}
			g.importFT = []Signature{{Params: []ValType{I32, I32}, Results: i32}}
		}, "import wasi_snapshot_preview1.fd_write", "expected (i32, i32, i32, i32) -> i32"},
		{"wasi sockets", func(g *guest) {
			g.imports = []wasmbin.Import{{Module: WASIModule, Name: "sock_accept", Kind: wasmbin.KindFunc}}
			g.importFT = []Signature{{Params: []ValType{I32, I32, I32}, Results: i32}}
		}, "import wasi_snapshot_preview1.sock_accept", "outside the allowed subset"},
		{"publish signature", func(g *guest) {
			g.imports = []wasmbin.Import{{Module: ImportModule, Name: ImportPublish, Kind: wasmbin.KindFunc}}
			g.importFT = []Signature{{Params: []ValType{I32, I32, I32, I32}}}
		}, "import wasmesh.publish", "expected (i32, i32, i32, i32) -> i32, got (i32, i32, i32, i32) -> ()"},
	}
	for _, c := range cases {
		g := good()
		c.mod(&g)
		info, err := Validate(g.build())
		if err == nil || !errors.Is(err, ErrRefused) {
			t.Errorf("%s: accepted (%v)", c.name, err)
			continue
		}
		found := false
		for _, p := range info.Problems {
			if p.Item == c.item && strings.Contains(p.Reason, c.reason) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want %s: ...%s..., got %+v", c.name, c.item, c.reason, info.Problems)
		}
		if len(info.Problems) != 1 && c.name != "no memory" {
			t.Errorf("%s: %d problems: %+v", c.name, len(info.Problems), info.Problems)
		}
	}
}

func TestValidateAcceptsAllHostImports(t *testing.T) {
	g := good()
	for _, name := range []string{ImportEmit, ImportFail, ImportLog, ImportStateWrite, ImportNow, ImportRandom, ImportSelf, ImportPublish} {
		s, _ := ImportSignature(name)
		g.imports = append(g.imports, wasmbin.Import{Module: ImportModule, Name: name, Kind: wasmbin.KindFunc})
		g.importFT = append(g.importFT, s)
	}
	for _, name := range []string{"args_get", "environ_sizes_get", "clock_time_get", "fd_write", "proc_exit", "random_get", "sched_yield", "poll_oneoff", "fd_seek"} {
		s, _ := WASISignature(name)
		g.imports = append(g.imports, wasmbin.Import{Module: WASIModule, Name: name, Kind: wasmbin.KindFunc})
		g.importFT = append(g.importFT, s)
	}
	info, err := Validate(g.build())
	if err != nil {
		t.Fatal(err)
	}
	if !info.UsesWASI || len(info.Imports) != 17 || info.Mode != ModeTransparent {
		t.Errorf("%+v", info)
	}
}

func TestValidateMalformed(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("not wasm"), append(readTestdata(t, "guest_ok.wasm"), 0x00)} {
		if _, err := Inspect(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("Inspect(% x...): %v", b[:min(len(b), 8)], err)
		}
		info, err := Validate(b)
		if info != nil || !errors.Is(err, ErrRefused) || !errors.Is(err, ErrMalformed) {
			t.Errorf("Validate: %v %v", info, err)
		}
	}
	var re *RefusalError
	if errors.As(func() error { _, err := Validate(nil); return err }(), &re) {
		t.Error("malformed bytes reported as a RefusalError")
	}
}

func TestRefusalErrorMessage(t *testing.T) {
	e := &RefusalError{Problems: []Problem{{"a", "x"}}}
	if e.Error() != "module refused: a: x" {
		t.Error(e.Error())
	}
	e.Problems = append(e.Problems, Problem{"b", "y"})
	if e.Error() != "module refused: a: x (and 1 more problem)" {
		t.Error(e.Error())
	}
	if !errors.Is(e, ErrRefused) {
		t.Error("not ErrRefused")
	}
}
