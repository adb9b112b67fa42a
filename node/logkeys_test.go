package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/plugins/examples"
)

// lockedBuffer is a log sink two nodes' goroutines write to at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// duplicateKey returns the first key that appears twice in one object of
// the JSON text, at any depth ("" if none): encoding/json and jq keep only
// one of them, so the other's value is lost.
func duplicateKey(line string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	type frame struct {
		object    bool
		keys      map[string]bool
		expectKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return k, nil
			}
			top.keys[k] = true
			top.expectKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, expectKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value (or a closed container) completes its parent's member.
		if d, ok := tok.(json.Delim); (!ok || d == ']' || d == '}') && len(stack) > 0 {
			if p := stack[len(stack)-1]; p.object {
				p.expectKey = true
			}
		}
		if d, ok := tok.(json.Delim); ok && d == '{' && len(stack) > 1 {
			// A nested object is its parent's value: the parent expects a
			// key again once it closes (handled above when '}' pops).
			if p := stack[len(stack)-2]; p.object {
				p.expectKey = true
			}
		}
	}
}

// bigNumber returns the first number in the JSON text that a reader
// holding numbers as doubles (jq, JavaScript) would round ("" if none).
func bigNumber(line string) string {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if n, ok := tok.(json.Number); ok {
			if v, err := strconv.ParseInt(n.String(), 10, 64); err != nil || v > 1<<53 || v < -(1<<53) {
				if _, ferr := strconv.ParseFloat(n.String(), 64); ferr != nil || !strings.ContainsAny(n.String(), ".eE") {
					return n.String()
				}
			}
		}
	}
}

func TestDuplicateKeyDetector(t *testing.T) {
	if bigNumber(`{"a":9007199254740993,"b":1}`) != "9007199254740993" || bigNumber(`{"a":1.5,"b":[3]}`) != "" {
		t.Error("bigNumber")
	}
	for line, want := range map[string]string{
		`{"a":1,"b":{"a":2},"c":[{"x":1},{"x":2}]}`: "",
		`{"a":1,"a":2}`:         "a",
		`{"g":{"k":1,"k":2}}`:   "k",
		`{"l":[{"x":1,"x":1}]}`: "x",
		`{"a":{"b":1},"a":3}`:   "a",
	} {
		got, err := duplicateKey(line)
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", line, got, err, want)
		}
	}
}

// Two nodes' JSON logs at debug level, through start, join, spawn, a
// migration and shutdown: no line has a key twice, a role as a number or
// an id as a number jq would round.
func TestJSONLogsHaveNoDuplicateKeys(t *testing.T) {
	ctx := context.Background()
	var sink lockedBuffer
	logger := func() *slog.Logger {
		return slog.New(slog.NewJSONHandler(&sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	start := func(name, dir string, join ...string) *Node {
		n, err := New(ctx, Config{
			DataDir: dir, Name: name, ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Join: join,
			Dev: true, CheckpointInterval: -1, Logger: logger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := start("a", t.TempDir())
	b := start("b", t.TempDir(), a.GossipAddr())
	waitPeers(t, a, 1)
	if _, err := a.Deploy(ctx, examples.CounterWAT(), "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	send(t, a, "c", "x")
	if _, err := a.Migrate(ctx, MigrateRequest{Ref: "c", To: "b"}, nil); err != nil {
		t.Fatal(err)
	}
	b.Close(ctx)
	a.Close(ctx)

	sc := bufio.NewScanner(strings.NewReader(sink.String()))
	sc.Buffer(nil, 1<<20)
	lines, seen := 0, map[string]bool{}
	for sc.Scan() {
		lines++
		k, err := duplicateKey(sc.Text())
		if err != nil {
			t.Fatalf("not JSON: %v: %s", err, sc.Text())
		}
		if k != "" {
			t.Errorf("key %q twice: %s", k, sc.Text())
		}
		if n := bigNumber(sc.Text()); n != "" {
			t.Errorf("%s is a JSON number beyond 2^53: %s", n, sc.Text())
		}
		var rec map[string]any
		_ = json.Unmarshal(sc.Bytes(), &rec)
		seen[fmt.Sprint(rec["msg"])] = true
		if r, ok := rec["role"]; ok {
			if _, isString := r.(string); !isString {
				t.Errorf("role %v is not a name: %s", r, sc.Text())
			}
		}
		if strings.Contains(sc.Text(), "[]protocol.Effect") {
			t.Errorf("effects logged as a type name: %s", sc.Text())
		}
	}
	// The lines the bug report named were among them.
	for _, msg := range []string{"mesh listening", "migration step"} {
		if !seen[msg] {
			t.Errorf("no %q line among %d", msg, lines)
		}
	}
}
