package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
	"github.com/wasmesh/wasmesh/node/admin"
)

// asWasmesh makes the test binary behave as the wasmesh command, for the
// few tests that need a process of their own.
const asWasmesh = "WASMESH_TEST_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(asWasmesh) == "1" {
		os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestVersionVerbAndFlag(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := wm(t, "", args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "wasmesh ") || !strings.Contains(r.stdout, runtime.Version()) || !strings.Contains(r.stdout, "wazero  v") {
			t.Errorf("%v: %+v", args, r)
		}
	}
	r := wm(t, "", "version", "--json")
	var v buildVersion
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.Module == "" || v.Go != runtime.Version() {
		t.Fatalf("--json: %+v", r)
	}
}

func TestVersionOfBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"},
		Deps:     []*debug.Module{{Path: "golang.org/x/term", Version: "v0.1.0"}, {Path: wazeroPath, Version: "v1.12.0"}},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}
	v := versionOf(bi)
	if v.Module != "dev" || v.Wazero != "v1.12.0" || v.Commit != "0123456789abcdef0123" || !v.Modified {
		t.Fatalf("%+v", v)
	}
	if got := v.nodeVersion(); got != "dev+0123456789ab-dirty" {
		t.Fatalf("nodeVersion = %q", got)
	}
	bi.Main.Version = "v0.3.0"
	if got := versionOf(bi).nodeVersion(); got != "v0.3.0" {
		t.Fatalf("released nodeVersion = %q", got)
	}
}

func TestTypoSuggestsTheClosestVerb(t *testing.T) {
	for _, tc := range []struct{ typed, want string }{
		{"depoy", `wasmesh: unknown command "depoy"; did you mean "deploy"?` + "\n"},
		{"mirgate", `wasmesh: unknown command "mirgate"; did you mean "migrate"?` + "\n"},
		{"lgos", `wasmesh: unknown command "lgos"; did you mean "logs"?` + "\n"},
		{"frobnicate", `wasmesh: unknown command "frobnicate" (see wasmesh --help)` + "\n"},
	} {
		r := wm(t, "", tc.typed, "x")
		if r.code != 2 || r.stderr != tc.want || r.stdout != "" {
			t.Errorf("%s: want exit 2 and %q, got %+v", tc.typed, tc.want, r)
		}
	}
	if d := levenshtein("kitten", "sitting"); d != 3 {
		t.Fatalf("levenshtein = %d", d)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := wm(t, "", "completion", sh)
		if r.code != 0 || len(r.stdout) < 100 || !strings.Contains(r.stdout, "wasmesh") || strings.Contains(r.stdout, "PROG") {
			t.Errorf("%s: %+v", sh, r)
		}
	}
	if r := wm(t, "", "completion", "tcsh"); r.code != 2 || !strings.Contains(r.stderr, "bash, zsh or fish") {
		t.Errorf("tcsh: %+v", r)
	}
	// urfave/cli reads os.Args for completion, so ask a real process: this
	// test binary, run as wasmesh (see TestMain).
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "--generate-bash-completion")
	cmd.Env = append(os.Environ(), asWasmesh+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("--generate-bash-completion: %v", err)
	}
	verbs := strings.Fields(string(out))
	for _, v := range []string{"deploy", "migrate", "logs", "version", "completion", "new"} {
		if !strings.Contains(" "+strings.Join(verbs, " ")+" ", " "+v+" ") {
			t.Errorf("bash completion does not list %s: %q", v, out)
		}
	}
	if sh, err := exec.LookPath("bash"); err == nil {
		// The script must at least parse and register its function.
		script := filepath.Join(t.TempDir(), "c.bash")
		os.WriteFile(script, []byte(wm(t, "", "completion", "bash").stdout), 0o600)
		out, err := exec.Command(sh, "-c", "source "+script+" && complete -p wasmesh").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "_wasmesh_bash_autocomplete") {
			t.Errorf("bash: %v %s", err, out)
		}
	}
}

func TestManPage(t *testing.T) {
	r := wm(t, "", "man")
	if r.code != 0 || !strings.Contains(r.stdout, ".TH wasmesh") || !strings.Contains(r.stdout, "migrate") || !strings.Contains(r.stdout, "--node") {
		t.Fatalf("%+v", r.code)
	}
}

// TestNewGoBuildsOutsideTheRepo: the scaffolded project builds with plain
// go build in a directory outside the checkout, offline, and runs.
func TestNewGoBuildsOutsideTheRepo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hello")
	sdk, _ := filepath.Abs(filepath.Join("..", ".."))
	r := wm(t, "", "new", "go", "hello", "--dir", dir, "--sdk", sdk)
	if r.code != 0 || !strings.Contains(r.stdout, "GOOS=wasip1") {
		t.Fatalf("new: %+v", r)
	}
	readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	if !strings.Contains(string(readme), goBuildCmd("hello")) || !strings.Contains(string(readme), "apt-get install") {
		t.Fatalf("README: %s", readme)
	}
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", "hello.wasm", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOPROXY=off", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if r := wm(t, "a\nb\nget\n", "run", filepath.Join(dir, "hello.wasm")); r.code != 0 || r.stdout != "1\n2\n2\n" {
		t.Fatalf("run: %+v", r)
	}
	if r := wm(t, "", "new", "go", "hello", "--dir", dir, "--sdk", sdk); r.code != 2 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("second new: %+v", r)
	}
	if r := wm(t, "", "new", "cobol", "x", "--sdk", sdk); r.code != 2 || !strings.Contains(r.stderr, "want go") {
		t.Fatalf("cobol: %+v", r)
	}
	if r := wm(t, "", "new", "go", "x", "--sdk", t.TempDir()); r.code != 2 || !strings.Contains(r.stderr, "--sdk") {
		t.Fatalf("bad --sdk: %+v", r)
	}
}

// TestPipedDeployIsQuiet: a 2 MiB upload to a node, stderr not a terminal:
// the digest on stdout and nothing on stderr.
func TestPipedDeployIsQuiet(t *testing.T) {
	var got int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.Copy(io.Discard, r.Body)
		_ = json.NewEncoder(w).Encode(admin.KindInfo{Digest: "sha256:00"})
	}))
	defer srv.Close()
	mod := filepath.Join(t.TempDir(), "big.wasm")
	if err := os.WriteFile(mod, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	r := wm(t, "", "deploy", mod, "--node", srv.URL)
	if r.code != 0 || r.stdout != "sha256:00\n" || r.stderr != "" || got != 2<<20 {
		t.Fatalf("%+v (server got %d bytes)", r, got)
	}
}

// TestLogsFollowPrintsEachLineOnce: the node's answers overlap (the lines
// that moved with a migrated daemon come back from its new node); each line
// is printed once, in order, and a daemon gone for good ends -f with exit 1.
func TestLogsFollowPrintsEachLineOnce(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	l := func(i int, text string) admin.LogLine {
		return admin.LogLine{Time: t0.Add(time.Duration(i) * time.Millisecond), Level: "info", Text: text}
	}
	answers := [][]admin.LogLine{
		{l(0, "a"), l(1, "b")},
		{l(0, "a"), l(1, "b")},
		{l(0, "a"), l(1, "b"), l(2, "c")},
		nil,                               // mid-migration: unavailable
		{l(1, "b"), l(2, "c"), l(3, "d")}, // the new node: the moved tail, then new lines
		{l(2, "c"), l(3, "d"), l(3, "d2")},
	}
	var polls int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		i := polls
		polls++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case i < len(answers) && answers[i] != nil:
			_ = json.NewEncoder(w).Encode(answers[i])
		case i < len(answers):
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(admin.Error{Code: node.CodeUnavailable, Message: "node: peer unavailable"})
		default:
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(admin.Error{Code: node.CodeNotFound, Message: `node: daemon not found: "c1"`})
		}
	}))
	defer srv.Close()
	r := wm(t, "", "logs", "-f", "c1", "--interval", "1ms", "--node", srv.URL)
	var texts []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Fields(line)
		texts = append(texts, f[len(f)-1])
	}
	if got := strings.Join(texts, ","); got != "a,b,c,d,d2" {
		t.Fatalf("printed %q, want a,b,c,d,d2 once each: %+v", got, r)
	}
	if r.code != 1 || r.stderr != "wasmesh: node: daemon not found: \"c1\"\n" || polls != len(answers)+goneAfter {
		t.Fatalf("end: polls %d, %+v", polls, r)
	}
	if r := wm(t, "", "logs", "-f", "c1", "--interval", "0s", "--node", srv.URL); r.code != 2 || !strings.Contains(r.stderr, "--interval") {
		t.Fatalf("--interval 0: %+v", r)
	}
}

func TestDemoLineFits80Columns(t *testing.T) {
	var b strings.Builder
	drawDemo(&b, false, 999*time.Second, 1, "1", nil, "d")
	drawDemo(&b, false, 999*time.Second, 99999, "99999", nil, "d")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], " 1 event sent") || !strings.Contains(lines[1], " 99999 events sent") {
		t.Fatalf("%q", lines)
	}
	for _, l := range lines {
		if len(l) >= 80 || strings.Contains(l, "via demo") {
			t.Errorf("%d columns: %q", len(l), l)
		}
	}
}

// TestMigrateShowsPhasesAndKeepsSizesApart: piped, migrate prints one line
// per phase (the pre-copy first) and a summary that says which sizes are
// wire bytes and which the snapshot's.
func TestMigrateShowsPhasesAndKeepsSizesApart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enc := json.NewEncoder(w)
		for _, p := range []admin.MigrateProgress{
			{Phase: node.PhasePreCopy, Attempt: 1, MemoryBytes: 35 << 20},
			{Phase: "transfer", Attempt: 1, BytesSent: 1 << 10, BytesTotal: 4 << 10},
			{Phase: "transfer", Attempt: 1, BytesSent: 4 << 10, BytesTotal: 4 << 10},
			{Phase: "complete", Attempt: 1, BytesSent: 4 << 10, BytesTotal: 4 << 10},
		} {
			_ = enc.Encode(admin.MigrateLine{Progress: &p})
		}
		_ = enc.Encode(admin.MigrateLine{Result: &admin.MigrateResult{Daemon: "c1", From: "a", To: "b", PreCopied: true, Converged: true,
			PreCopyRounds: 2, PreCopyBytes: 10 << 20, SnapshotBytes: 256 << 10, WireBytes: 4 << 10, Attempts: 1}})
	}))
	defer srv.Close()
	r := wm(t, "", "migrate", "c1", "--to", "b", "--node", srv.URL)
	wantErr := "phase pre-copy  sending 35.0MiB of memory ahead while the daemon runs\n" +
		"phase transfer  attempt 1, 1.0KiB of 4.0KiB sent\n" +
		"phase complete  attempt 1, 4.0KiB of 4.0KiB sent\n"
	if r.code != 0 || r.stderr != wantErr {
		t.Fatalf("progress lines:\n%s\nwant:\n%s(%+v)", r.stderr, wantErr, r)
	}
	for _, want := range []string{
		"pre-copy   10.0MiB on the wire while running: base + 2 round(s), converged",
		"snapshot   256.0KiB at the freeze (pages changed since the base), 4.0KiB on the wire",
		"wire       10.0MiB in all",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestNewVerbsHelpTeaches(t *testing.T) {
	for _, verb := range []string{"version", "completion", "new", "logs"} {
		r := wm(t, "", verb, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("%s --help: %+v", verb, r)
		}
	}
	if r := wm(t, "", "logs", "--help"); !strings.Contains(r.stdout, "--follow") || !strings.Contains(r.stdout, "across migrations") {
		t.Errorf("logs --help does not teach -f: %s", r.stdout)
	}
}
