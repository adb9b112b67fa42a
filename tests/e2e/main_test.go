// Package e2e drives real `wasmesh node` processes with the `wasmesh` CLI
// binary: the operator's experience, end to end, on loopback.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// bin is the wasmesh binary TestMain builds once; tests only read it.
type binary struct{ path, root string }

func build() (binary, func(), error) {
	dir, err := os.MkdirTemp("", "wasmesh-e2e-")
	if err != nil {
		return binary{}, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	root, err := filepath.Abs("../..")
	if err != nil {
		return binary{}, cleanup, err
	}
	path := filepath.Join(dir, "wasmesh")
	cmd := exec.Command("go", "build", "-o", path, "./cmd/wasmesh")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return binary{}, cleanup, fmt.Errorf("go build: %v\n%s", err, out)
	}
	return binary{path: path, root: root}, cleanup, nil
}

func TestMain(m *testing.M) {
	b, cleanup, err := build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if cleanup != nil {
			cleanup()
		}
		os.Exit(1)
	}
	os.Setenv("WASMESH_E2E_BIN", b.path)
	os.Setenv("WASMESH_E2E_ROOT", b.root)
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func binPath() string          { return os.Getenv("WASMESH_E2E_BIN") }
func repoPath(p string) string { return filepath.Join(os.Getenv("WASMESH_E2E_ROOT"), p) }

// result is one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs the binary with a deadline and returns what it printed.
func cli(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath(), args...)
	cmd.Env = append(os.Environ(), "WASMESH_NODE=http://127.0.0.1:1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return r
}

// ok runs the CLI and fails the test unless it exits 0.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := cli(t, "", args...)
	if r.code != 0 {
		t.Fatalf("wasmesh %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// failsWith runs the CLI and checks the exit status and that stderr is one
// line mentioning want.
func failsWith(t *testing.T, code int, want string, args ...string) {
	t.Helper()
	r := cli(t, "", args...)
	if r.code != code {
		t.Fatalf("wasmesh %s: want exit %d: %s", strings.Join(args, " "), code, r)
	}
	msg := strings.TrimRight(r.stderr, "\n")
	if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "wasmesh: ") {
		t.Fatalf("wasmesh %s: want one 'wasmesh: ...' line on stderr, got %q", strings.Join(args, " "), r.stderr)
	}
	if !strings.Contains(strings.ToLower(msg), strings.ToLower(want)) {
		t.Fatalf("wasmesh %s: stderr %q does not mention %q", strings.Join(args, " "), msg, want)
	}
}

// proc is a running `wasmesh node`.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	data string
	info node.ReadyInfo
	log  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNode starts a node on free loopback ports and waits until it wrote
// DATA/node.json (with its own pid: an old file from a killed run does not
// count).
func startNode(t *testing.T, name, data string, extra ...string) *proc {
	t.Helper()
	args := []string{"node", "--data", data, "--name", name,
		"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--checkpoint-interval", "200ms"}
	if !slices.Contains(extra, "--cluster-secret-file") {
		args = append(args, "--dev")
	}
	args = append(args, extra...)
	p := &proc{t: t, data: data, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binPath(), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := node.ReadReady(data)
		if err == nil && info.PID == p.cmd.Process.Pid {
			p.info = info
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("node %s exited early (%v):\n%s", name, p.err, p.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not ready within 30s:\n%s", name, p.log.String())
		}
	}
}

func (p *proc) url() string { return p.info.AdminURL }

// stop asks the node to shut down cleanly and waits.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("node did not stop on SIGTERM:\n%s", p.log.String())
	}
}

// kill is kill -9: no checkpoint, no leave.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var done bool
		if done, last = cond(); done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v; last: %s", what, timeout, last)
}
