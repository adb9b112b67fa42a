package meshquic

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// childEnv makes the test binary act as a remote node (see TestMain).
const childEnv = "WASMESH_MESHQUIC_CHILD"

const crossProcSecret = "meshquic cross-process test"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := runChild(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crossProcConfig: both processes derive the cluster from one --dev style
// secret, and notice a vanished peer within about a second.
func crossProcConfig() (Config, error) {
	ca, err := nodekey.DevCA(crossProcSecret)
	if err != nil {
		return Config{}, err
	}
	k, err := nodekey.GenerateNodeKey()
	if err != nil {
		return Config{}, err
	}
	c, err := ca.NodeCredentials(k)
	if err != nil {
		return Config{}, err
	}
	cfg := testConfig(c)
	cfg.MaxIdleTimeout = time.Second
	cfg.KeepAlivePeriod = 250 * time.Millisecond
	return cfg, nil
}

// runChild serves fake LocalOps until its stdin closes.
func runChild() error {
	cfg, err := crossProcConfig()
	if err != nil {
		return err
	}
	e, err := Listen(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	ops := newFakeOps()
	ops.hosted[7] = true
	e.ServeLocalOps(ops)
	fmt.Printf("READY %s %s\n", e.Addr(), e.ID())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

func TestCrossProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	ctx := ctxTimeout(t, 20*time.Second)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child did not start: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "READY" {
		t.Fatalf("child said %q", line)
	}
	childID, err := nodekey.ParseNodeID(f[2])
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := crossProcConfig()
	if err != nil {
		t.Fatal(err)
	}
	e := listen(t, cfg)
	e.SetPeerAddr(childID, f[1])
	resp, err := e.RemoteDeliver(ctx, childID, DeliverRequest{Event: Event{Target: 7, Payload: []byte("across")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 1 || string(resp.Outputs[0].Payload) != "across" {
		t.Fatalf("outputs %+v", resp.Outputs)
	}

	// Kill the child outright: no goodbye on the wire. The call must fail
	// once the idle timeout notices, not hang.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	start := time.Now()
	_, err = e.RemoteDeliver(ctx, childID, DeliverRequest{Event: Event{Target: 7}})
	wantErr(t, err, ErrPeerUnavailable)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("call to a killed peer took %v", d)
	}
	// Then the dead peer costs at most a dial timeout, then nothing.
	start = time.Now()
	_, err = e.RemoteDeliver(ctx, childID, DeliverRequest{Event: Event{Target: 7}})
	wantErr(t, err, ErrPeerUnavailable)
	_, err = e.RemoteDeliver(ctx, childID, DeliverRequest{Event: Event{Target: 7}})
	wantErr(t, err, ErrPeerUnavailable)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("two calls to a dead peer took %v", d)
	}
}
