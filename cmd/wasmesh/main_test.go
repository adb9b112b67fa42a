package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func examplePath(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "plugins", "examples"}, parts...)...)
}

type result struct {
	code           int
	stdout, stderr string
}

func wm(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"wasmesh"}, args...), strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestRunCounterSnapshotRestore(t *testing.T) {
	dir := t.TempDir()
	key, snap := filepath.Join(dir, "c.key"), filepath.Join(dir, "c.snap")
	mod := examplePath("counter-wat", "counter-wat.wasm")
	r := wm(t, "a\nb\nget\n", "run", mod, "--identity", key, "--snapshot-out", snap)
	if r.code != 0 || r.stdout != "1\n2\n2\n" {
		t.Fatalf("first run: %+v", r)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v %v", fi, err)
	}
	r = wm(t, "x\n", "run", mod, "--restore", snap, "--identity", key)
	if r.code != 0 || r.stdout != "3\n" {
		t.Fatalf("restored run: %+v", r)
	}
	// Wrong identity: refused before any input is read.
	r = wm(t, "x\n", "run", mod, "--restore", snap)
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "snapshot belongs to entity") {
		t.Fatalf("restore with a fresh identity: %+v", r)
	}
	// Wrong module.
	r = wm(t, "x\n", "run", examplePath("echo-wat", "echo-wat.wasm"), "--restore", snap, "--identity", key)
	if r.code != 2 || !strings.Contains(r.stderr, "snapshot is of module") {
		t.Fatalf("restore into another module: %+v", r)
	}
	// Tampered snapshot file.
	data, _ := os.ReadFile(snap)
	data[len(data)/2] ^= 1
	bad := filepath.Join(dir, "bad.snap")
	os.WriteFile(bad, data, 0o600)
	r = wm(t, "x\n", "run", mod, "--restore", bad, "--identity", key)
	if r.code != 2 || !strings.Contains(r.stderr, "--restore") {
		t.Fatalf("tampered snapshot: %+v", r)
	}
}

func TestRunFormatsAndFailures(t *testing.T) {
	echo := examplePath("echo-wat", "echo-wat.wasm")
	r := wm(t, "00ff\nzz\n41\n", "run", echo, "--input-format", "hex", "--output-format", "base64")
	if r.code != 1 || r.stdout != "AP8=\nQQ==\n" || !strings.Contains(r.stderr, "error: event 2:") {
		t.Fatalf("hex→base64 with a bad line: %+v", r)
	}
	r = wm(t, "", "run", echo, "--input-format", "yaml")
	if r.code != 2 || !strings.Contains(r.stderr, "--input-format") {
		t.Fatalf("bad format flag: %+v", r)
	}
	r = wm(t, "", "run", echo, "--max-memory", "lots")
	if r.code != 2 || !strings.Contains(r.stderr, "--max-memory") {
		t.Fatalf("bad size: %+v", r)
	}
	r = wm(t, "go\n", "run", examplePath("testdata", "loop.wasm"), "--event-timeout", "50ms")
	if r.code != 1 || !strings.Contains(r.stderr, "error: event 1:") || !strings.Contains(r.stderr, "CPU budget") {
		t.Fatalf("runaway loop: %+v", r)
	}
	r = wm(t, "x\n", "run", examplePath("testdata", "grow.wasm"), "--max-memory", "192KiB")
	if r.code != 0 || r.stdout != "3\n" {
		t.Fatalf("memory cap: %+v", r)
	}
}

func TestRunRefusedModule(t *testing.T) {
	r := wm(t, "x\n", "run", examplePath("testdata", "start.wasm"))
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "reactor") {
		t.Fatalf("command module: %+v", r)
	}
	r = wm(t, "", "run", "/nonexistent.wasm")
	if r.code != 2 || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("missing file: %+v", r)
	}
	r = wm(t, "", "run")
	if r.code != 2 {
		t.Fatalf("no module: %+v", r)
	}
}

func TestInspect(t *testing.T) {
	r := wm(t, "", "inspect", examplePath("cooperative-wat", "cooperative-wat.wasm"), "--json")
	if r.code != 0 {
		t.Fatalf("inspect: %+v", r)
	}
	var got inspectJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Accepted || got.Mode != "cooperative" || got.ABI != 1 || !strings.HasPrefix(got.Digest, "sha256:") || len(got.Digest) != 71 {
		t.Fatalf("inspect json: %+v", got)
	}
	r = wm(t, "", "inspect", examplePath("testdata", "bad_import.wasm"))
	if r.code != 1 || !strings.Contains(r.stdout, "accepted: no") || !strings.Contains(r.stdout, "env.abort") {
		t.Fatalf("refused module: %+v", r)
	}
	r = wm(t, "", "inspect", "main.go")
	if r.code != 2 {
		t.Fatalf("not wasm: %+v", r)
	}
	r = wm(t, "", "inspect", examplePath("counter-wat", "counter-wat.wasm"))
	if r.code != 0 || !strings.Contains(r.stdout, "snapshot: transparent") || !strings.Contains(r.stdout, "wasmesh.emit") {
		t.Fatalf("text inspect: %+v", r)
	}
}

func TestBadFlagIsOneLine(t *testing.T) {
	r := wm(t, "", "run", "x.wasm", "--bogus")
	if r.code != 2 || r.stdout != "" || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "bogus") {
		t.Fatalf("bad flag: %+v", r)
	}
}

func TestHelpTeaches(t *testing.T) {
	r := wm(t, "", "run", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "--event-timeout") {
		t.Fatalf("run --help: %+v", r)
	}
}
