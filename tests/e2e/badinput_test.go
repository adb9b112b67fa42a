package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBadInput(t *testing.T) {
	a := startNode(t, "solo", t.TempDir())
	u := a.url()
	ok(t, "deploy", counterWasm(), "--kind", "counter", "--node", u)
	ok(t, "spawn", "counter", "--name", "c", "--node", u)

	t.Run("unknown daemon", func(t *testing.T) {
		failsWith(t, 1, "not found", "send", "nosuch", "x", "--node", u)
		failsWith(t, 1, "not found", "stats", "0123456789abcdef", "--node", u)
		failsWith(t, 1, "not found", "stop", "nosuch", "--node", u)
		failsWith(t, 1, "not found", "logs", "nosuch", "--node", u)
		failsWith(t, 1, "not found", "snapshot", "nosuch", "-o", filepath.Join(t.TempDir(), "x"), "--node", u)
	})
	t.Run("malformed payload", func(t *testing.T) {
		failsWith(t, 2, "payload 1", "send", "c", "zz", "--input-format", "hex", "--node", u)
		failsWith(t, 2, "--input-format", "send", "c", "x", "--input-format", "rot13", "--node", u)
		// Nothing was sent: the count is untouched.
		if got := ok(t, "send", "c", "get", "--node", u); got != "0\n" {
			t.Fatalf("get = %q", got)
		}
	})
	t.Run("refused module", func(t *testing.T) {
		failsWith(t, 2, "refused", "deploy", repoPath("plugins/examples/testdata/bad_import.wasm"), "--node", u)
		failsWith(t, 2, "_start", "deploy", repoPath("plugins/examples/testdata/start.wasm"), "--node", u)
		junk := filepath.Join(t.TempDir(), "junk.wasm")
		os.WriteFile(junk, []byte("not wasm at all"), 0o644)
		failsWith(t, 2, "refused", "deploy", junk, "--node", u)
		failsWith(t, 2, "read module", "deploy", filepath.Join(t.TempDir(), "missing.wasm"), "--node", u)
	})
	t.Run("unknown kind and node", func(t *testing.T) {
		failsWith(t, 1, "unknown", "spawn", "nokind", "--node", u)
		failsWith(t, 1, "no alive member", "spawn", "counter", "--on", "nosuchnode", "--node", u)
		failsWith(t, 1, "already used", "spawn", "counter", "--name", "c", "--node", u)
		failsWith(t, 2, "not a valid snapshot", "restore", counterWasm(), "--node", u)
	})
	t.Run("usage", func(t *testing.T) {
		failsWith(t, 2, "needs", "spawn", "--node", u)
		failsWith(t, 2, "nothing to send", "send", "c", "--node", u)
		failsWith(t, 2, "not an http", "ps", "--node", "127.0.0.1:7401")
	})
	t.Run("unreachable node", func(t *testing.T) {
		failsWith(t, 1, "cannot reach", "ps")
	})
	t.Run("port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		failsWith(t, 1, "address already in use", "node", "--dev", "--data", t.TempDir(),
			"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--admin", ln.Addr().String())
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		failsWith(t, 2, "address already in use", "node", "--dev", "--data", t.TempDir(),
			"--listen", pc.LocalAddr().String(), "--gossip", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	})
	t.Run("data dir in use", func(t *testing.T) {
		failsWith(t, 1, "locked", "node", "--dev", "--data", a.data,
			"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	})
	t.Run("node flags", func(t *testing.T) {
		failsWith(t, 2, "--cluster-secret-file", "node", "--data", t.TempDir())
		failsWith(t, 2, "--tag", "node", "--dev", "--data", t.TempDir(), "--tag", "bad tag!")
	})
	t.Run("non-loopback admin needs a token", func(t *testing.T) {
		failsWith(t, 2, "admin-token-file", "node", "--dev", "--data", t.TempDir(),
			"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--admin", "0.0.0.0:0")
	})
}

func TestAdminToken(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, "guarded", t.TempDir(), "--admin", "0.0.0.0:0", "--admin-token-file", tok)
	u := strings.Replace(a.url(), "[::]", "127.0.0.1", 1)
	u = strings.Replace(u, "0.0.0.0", "127.0.0.1", 1)
	failsWith(t, 2, "token", "ps", "--node", u)
	if out := ok(t, "ps", "--json", "--node", u, "--token-file", tok); strings.TrimSpace(out) != "[]" {
		t.Fatalf("ps with token = %q", out)
	}
}
