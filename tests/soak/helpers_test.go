//go:build soak

// Package soak is a long test of node processes driven by the CLI (see
// the README, "Soak"): migrations under load with kill -9 between rounds,
// then many migrations of a large daemon, checking exact counts, disk and
// migrator memory. It builds the binary and starts nodes the way tests/e2e
// does; the few helpers it needs are copied here, not imported.
package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasmesh-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root, _ := filepath.Abs("../..")
	bin := filepath.Join(dir, "wasmesh")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/wasmesh")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Setenv("WASMESH_SOAK_BIN", bin)
	os.Setenv("WASMESH_SOAK_ROOT", root)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func binPath() string          { return os.Getenv("WASMESH_SOAK_BIN") }
func repoPath(p string) string { return filepath.Join(os.Getenv("WASMESH_SOAK_ROOT"), p) }

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func cli(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath(), args...)
	cmd.Env = append(os.Environ(), "WASMESH_NODE=http://127.0.0.1:1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
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

func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := cli(t, args...)
	if r.code != 0 {
		t.Fatalf("wasmesh %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
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

// proc is a running `wasmesh node`.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	data string
	info node.ReadyInfo
	log  *syncBuffer
	done chan struct{}
	err  error
}

// startNode starts a node on free loopback ports and waits for
// DATA/node.json written by this process.
func startNode(t *testing.T, name, data string, extra ...string) *proc {
	t.Helper()
	args := []string{"node", "--data", data, "--name", name, "--dev",
		"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--checkpoint-interval", "200ms"}
	args = append(args, extra...)
	p := &proc{t: t, name: name, data: data, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binPath(), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
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

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill is kill -9: no checkpoint, no leave.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var done bool
		if done, last = cond(); done {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v; last: %s", what, timeout, last)
}

// waitMembers waits until every node sees every other alive at its
// current QUIC address.
func waitMembers(t *testing.T, ps []*proc) {
	t.Helper()
	for _, p := range ps {
		eventually(t, 60*time.Second, "membership seen by "+p.name, func() (bool, string) {
			r := cli(t, "nodes", "--json", "--node", p.url())
			var ns []node.NodeInfo
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ns) != nil {
				return false, r.String()
			}
			for _, q := range ps {
				found := false
				for _, n := range ns {
					if n.Name == q.name && n.State == "alive" && n.Address == q.info.QUIC {
						found = true
					}
				}
				if !found {
					return false, r.stdout
				}
			}
			return true, ""
		})
	}
}

// where is the node hosting daemon (by name), asked through via.
func where(t *testing.T, via *proc, daemon string) (string, error) {
	r := cli(t, "ps", "--json", "--node", via.url())
	var ds []node.DaemonInfo
	if r.code != 0 {
		return "", errors.New(r.String())
	}
	if err := json.Unmarshal([]byte(r.stdout), &ds); err != nil {
		return "", err
	}
	for _, d := range ds {
		if d.Name == daemon {
			return d.Node, nil
		}
	}
	return "", fmt.Errorf("%s not listed: %s", daemon, r.stdout)
}

// diskBytes is what a node's store takes: store.db and snapshot files.
func diskBytes(t *testing.T, data string) (db, files int64) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(data, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	db = fi.Size()
	es, err := os.ReadDir(filepath.Join(data, "snapshots"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range es {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			files += info.Size()
		}
	}
	return db, files
}

// metrics reads the named gauges from a node's /metrics.
func metrics(t *testing.T, p *proc, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := httpGet(ctx, p.url()+"/metrics")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(req, "\n") {
		for _, n := range names {
			if rest, found := strings.CutPrefix(line, n+" "); found {
				var v float64
				if _, err := fmt.Sscan(rest, &v); err == nil {
					out[n] = v
				}
			}
		}
	}
	for _, n := range names {
		if _, found := out[n]; !found {
			return nil, fmt.Errorf("%s has no metric %s", p.name, n)
		}
	}
	return out, nil
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}
