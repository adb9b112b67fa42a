// Package api keeps wasmesh's public Go surface honest: which packages are
// importable from outside the module, and which internal types their
// exported declarations expose.
package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/surface.golden from the tree")

const module = "github.com/wasmesh/wasmesh"

type pkg struct {
	ImportPath string
	Name       string
	Dir        string
	GoFiles    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = filepath.Join("..", "..")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(&out)
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func public(p pkg) bool {
	return !strings.Contains(p.ImportPath+"/", "/internal/") && p.Name != "main" && len(p.GoFiles) > 0
}

// surface lists the public packages and, for each exported declaration
// whose signature names a type of an internal package, one line
// "pkg Decl: internal/pkg.Type".
func surface(t *testing.T) []string {
	pkgs := listPackages(t)
	names := map[string]string{}
	for _, p := range pkgs {
		names[p.ImportPath] = p.Name
	}
	var lines []string
	for _, p := range pkgs {
		if !public(p) {
			continue
		}
		short := strings.TrimPrefix(p.ImportPath, module+"/")
		lines = append(lines, "package "+short)
		seen := map[string]bool{}
		for _, f := range p.GoFiles {
			for _, l := range exposures(t, filepath.Join(p.Dir, f), names) {
				if !seen[l] {
					seen[l] = true
					lines = append(lines, short+" "+l)
				}
			}
		}
	}
	sort.Strings(lines)
	return lines
}

func exposures(t *testing.T, path string, names map[string]string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	internal := map[string]string{} // local name -> short import path
	for _, im := range f.Imports {
		ip, _ := strconv.Unquote(im.Path.Value)
		if !strings.HasPrefix(ip, module+"/") || !strings.Contains(ip+"/", "/internal/") {
			continue
		}
		local := names[ip]
		if im.Name != nil {
			local = im.Name.Name
		}
		internal[local] = strings.TrimPrefix(ip, module+"/")
	}
	if len(internal) == 0 {
		return nil
	}
	var out []string
	find := func(decl string, n ast.Node) {
		if n == nil {
			return
		}
		var inspect func(ast.Node) bool
		inspect = func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.SelectorExpr:
				if id, ok := x.X.(*ast.Ident); ok {
					if ip, ok := internal[id.Name]; ok {
						out = append(out, decl+": "+ip+"."+x.Sel.Name)
					}
				}
			case *ast.FuncLit:
				return false
			case *ast.StructType:
				// unexported struct fields are not surface; parameter
				// names are, whatever their case
				for _, fld := range x.Fields.List {
					if len(fld.Names) == 0 || anyExported(fld.Names) {
						ast.Inspect(fld.Type, inspect)
					}
				}
				return false
			}
			return true
		}
		ast.Inspect(n, inspect)
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			name := d.Name.Name
			if d.Recv != nil {
				recv := receiverName(d.Recv.List[0].Type)
				if !ast.IsExported(recv) {
					continue
				}
				name = recv + "." + name
			}
			find(name, d.Type)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() {
						find(s.Name.Name, s.Type)
					}
				case *ast.ValueSpec:
					if anyExported(s.Names) {
						find(s.Names[0].Name, s.Type)
					}
				}
			}
		}
	}
	return out
}

func anyExported(ids []*ast.Ident) bool {
	for _, id := range ids {
		if id.IsExported() {
			return true
		}
	}
	return false
}

func receiverName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return receiverName(x.X)
	case *ast.IndexExpr:
		return receiverName(x.X)
	case *ast.Ident:
		return x.Name
	}
	return ""
}

// TestPublicSurface fails when a public package appears or goes, or when
// an exported declaration starts (or stops) naming an internal type: each
// is a decision, taken by updating testdata/surface.golden
// (go test ./tests/api -update) in the same commit.
func TestPublicSurface(t *testing.T) {
	got := surface(t)
	golden := filepath.Join("testdata", "surface.golden")
	if *update {
		var header []string
		if b, err := os.ReadFile(golden); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "#") {
					header = append(header, l)
				}
			}
		}
		if err := os.WriteFile(golden, []byte(strings.Join(append(header, got...), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	// Lines starting with # say why an exposure is accepted; -update
	// keeps them only as a header.
	var want []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			want = append(want, l)
		}
	}
	have := map[string]bool{}
	for _, l := range got {
		have[l] = true
	}
	wanted := map[string]bool{}
	var diff []string
	for _, l := range want {
		wanted[l] = true
		if !have[l] {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range got {
		if !wanted[l] {
			diff = append(diff, "+ "+l)
		}
	}
	if len(diff) > 0 {
		t.Fatalf("the public surface changed (+ new, - gone); if that is intended, run go test ./tests/api -update:\n%s", strings.Join(diff, "\n"))
	}
}

// The check itself must see an exposure: a public package's exported
// function returning an internal type is reported.
func TestExposuresSeesInternalTypes(t *testing.T) {
	dir := t.TempDir()
	src := `package p
import (
	eng "` + module + `/internal/engine"
	"` + module + `/internal/snapshot"
)
type T struct {
	Pub  eng.Limits
	priv snapshot.Snapshot
}
func F() *snapshot.Snapshot { return nil }
func f() *snapshot.Snapshot { return nil }
func G(m *eng.Kind) {}
`
	path := filepath.Join(dir, "p.go")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got := exposures(t, path, map[string]string{module + "/internal/snapshot": "snapshot"})
	want := []string{"T: internal/engine.Limits", "F: internal/snapshot.Snapshot", "G: internal/engine.Kind"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("exposures = %q, want %q", got, want)
	}
}
