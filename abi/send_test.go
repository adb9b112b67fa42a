package abi

import (
	"errors"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/internal/wasmbin"
)

func TestSendImport(t *testing.T) {
	want, ok := ImportSignature(ImportSend)
	if !ok || want.String() != "(i32, i32, i32) -> i32" {
		t.Fatalf("send signature %v (known %v)", want, ok)
	}
	g := good()
	g.imports = append(g.imports, wasmbin.Import{Module: ImportModule, Name: ImportSend, Kind: wasmbin.KindFunc})
	g.importFT = append(g.importFT, want)
	if _, err := Validate(g.build()); err != nil {
		t.Fatalf("a module importing send is refused: %v", err)
	}

	bad := good()
	bad.imports = append(bad.imports, wasmbin.Import{Module: ImportModule, Name: ImportSend, Kind: wasmbin.KindFunc})
	bad.importFT = append(bad.importFT, Signature{Params: []ValType{I32, I32}, Results: []ValType{I32}})
	_, err := Validate(bad.build())
	var re *RefusalError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "wrong signature") {
		t.Fatalf("send with a wrong signature: got %v", err)
	}
}

func TestUnknownImportNamesSend(t *testing.T) {
	g := good()
	g.imports = append(g.imports, wasmbin.Import{Module: ImportModule, Name: "nope", Kind: wasmbin.KindFunc})
	g.importFT = append(g.importFT, Signature{})
	_, err := Validate(g.build())
	if err == nil || !strings.Contains(err.Error(), ImportSend) {
		t.Fatalf("the refusal of an unknown import should list send among the host functions: %v", err)
	}
}
