package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmesh/wasmesh/node"
)

// fake is a Backend with one daemon "c1" (id 00000000000000aa).
type fake struct {
	onceSeen map[string]uint64
	count    int
	kinds    map[string]string
	sent     [][]byte
	stopAt   string
	ch       chanFake // channels_test.go
}

func (f *fake) Deploy(_ context.Context, mod []byte, kind string) (node.KindInfo, error) {
	if !bytes.HasPrefix(mod, []byte("\x00asm")) {
		return node.KindInfo{}, fmt.Errorf("%w: not a wasm module", node.ErrRefused)
	}
	return node.KindInfo{Digest: "sha256:00", Aliases: []string{kind}, Size: len(mod)}, nil
}
func (f *fake) Kinds() []node.KindInfo { return nil }
func (f *fake) Spawn(_ context.Context, r node.SpawnRequest) (node.DaemonInfo, error) {
	if r.Kind != "counter" {
		return node.DaemonInfo{}, fmt.Errorf("%w: %q", node.ErrUnknownKind, r.Kind)
	}
	if r.Name == "c1" {
		return node.DaemonInfo{}, fmt.Errorf("%w: c1", node.ErrNameTaken)
	}
	return node.DaemonInfo{ID: "00000000000000bb", Name: r.Name, Node: cmpOr(r.On, "local")}, nil
}
func cmpOr(a, b string) string {
	if a == "" {
		return b
	}
	return a
}
func (f *fake) find(ref string) (node.DaemonInfo, error) {
	if ref == "c1" || ref == "00000000000000aa" {
		return node.DaemonInfo{ID: "00000000000000aa", Name: "c1", EventsProcessed: uint64(f.count)}, nil
	}
	return node.DaemonInfo{}, fmt.Errorf("%w: %q", node.ErrDaemonNotFound, ref)
}
func (f *fake) Daemons(context.Context) ([]node.DaemonInfo, []string) {
	d, _ := f.find("c1")
	return []node.DaemonInfo{d}, []string{"gone"}
}
func (f *fake) Daemon(_ context.Context, ref string) (node.DaemonInfo, error) { return f.find(ref) }
func (f *fake) Stop(_ context.Context, ref string) (node.DaemonInfo, error) {
	f.stopAt = ref
	return f.find(ref)
}
func (f *fake) Send(_ context.Context, ref string, p []byte) (node.Delivery, error) {
	if _, err := f.find(ref); err != nil {
		return node.Delivery{}, err
	}
	if string(p) == "boom" {
		return node.Delivery{}, fmt.Errorf("%w: guest trapped", node.ErrEventFailed)
	}
	f.sent = append(f.sent, p)
	f.count++
	return node.Delivery{Daemon: "00000000000000aa", Node: "local", Outputs: [][]byte{[]byte(fmt.Sprint(f.count)), {0, 1}}}, nil
}
func (f *fake) SendOnce(ctx context.Context, ref, client string, id uint64, p []byte) (node.Delivery, error) {
	if f.onceSeen == nil {
		f.onceSeen = map[string]uint64{}
	}
	if id <= f.onceSeen[client] {
		return node.Delivery{Daemon: "00000000000000aa", Node: "local", Duplicate: true}, nil
	}
	f.onceSeen[client] = id
	return f.Send(ctx, ref, p)
}
func (f *fake) Snapshot(_ context.Context, ref string) ([]byte, node.DaemonInfo, error) {
	d, err := f.find(ref)
	return []byte("SNAPBYTES"), d, err
}
func (f *fake) Logs(_ context.Context, ref string) ([]node.LogLine, error) {
	if _, err := f.find(ref); err != nil {
		return nil, err
	}
	return []node.LogLine{{Level: "info", Text: "hello"}}, nil
}
func (f *fake) Restore(_ context.Context, data []byte, kind string) (node.DaemonInfo, error) {
	if string(data) != "SNAPBYTES" {
		return node.DaemonInfo{}, fmt.Errorf("%w: not a valid snapshot", node.ErrBadRequest)
	}
	return f.find("c1")
}
func (f *fake) Nodes() []node.NodeInfo { return []node.NodeInfo{{ID: "n1", Name: "a", State: "alive"}} }

func serve(t *testing.T, opts Options) (*fake, *Client) {
	t.Helper()
	f := &fake{}
	srv := httptest.NewServer(Handler(f, opts))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, opts.Token)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func wantAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != status || ae.Code != code || ae.Message == "" {
		t.Fatalf("err = %#v, want HTTP %d %s", err, status, code)
	}
}

func TestHandlersThroughClient(t *testing.T) {
	f, c := serve(t, Options{})
	ctx := context.Background()

	k, err := c.Deploy(ctx, strings.NewReader("\x00asm\x01\x00\x00\x00"), "counter")
	if err != nil || k.Digest != "sha256:00" || k.Size != 8 || k.Aliases[0] != "counter" {
		t.Fatalf("deploy = %+v, %v", k, err)
	}
	_, err = c.Deploy(ctx, strings.NewReader("junk"), "")
	wantAPIError(t, err, http.StatusUnprocessableEntity, CodeRefused)
	_, err = c.Deploy(ctx, strings.NewReader(""), "")
	wantAPIError(t, err, http.StatusBadRequest, CodeBadRequest)

	d, err := c.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c2", On: "b"})
	if err != nil || d.ID != "00000000000000bb" || d.Node != "b" {
		t.Fatalf("spawn = %+v, %v", d, err)
	}
	_, err = c.Spawn(ctx, SpawnRequest{Kind: "nope"})
	wantAPIError(t, err, http.StatusNotFound, CodeUnknownKind)
	_, err = c.Spawn(ctx, SpawnRequest{Kind: "counter", Name: "c1"})
	wantAPIError(t, err, http.StatusConflict, CodeNameTaken)

	res, err := c.Send(ctx, "c1", []byte{0xff, 0})
	if err != nil || len(res.Outputs) != 2 || string(res.Outputs[0]) != "1" || !bytes.Equal(res.Outputs[1], []byte{0, 1}) {
		t.Fatalf("send = %+v, %v", res, err)
	}
	if !bytes.Equal(f.sent[0], []byte{0xff, 0}) {
		t.Fatalf("payload arrived as %x", f.sent[0])
	}
	_, err = c.Send(ctx, "c1", []byte("boom"))
	wantAPIError(t, err, http.StatusUnprocessableEntity, CodeEventFailed)
	_, err = c.Send(ctx, "ghost", []byte("x"))
	wantAPIError(t, err, http.StatusNotFound, CodeNotFound)

	ps, err := c.Ps(ctx)
	if err != nil || len(ps.Daemons) != 1 || ps.Daemons[0].EventsProcessed != 1 || ps.Unreachable[0] != "gone" {
		t.Fatalf("ps = %+v, %v", ps, err)
	}
	st, err := c.Stats(ctx, "00000000000000aa")
	if err != nil || st.Name != "c1" {
		t.Fatalf("stats = %+v, %v", st, err)
	}
	snap, err := c.Snapshot(ctx, "c1")
	if err != nil || string(snap) != "SNAPBYTES" {
		t.Fatalf("snapshot = %q, %v", snap, err)
	}
	_, err = c.Snapshot(ctx, "ghost")
	wantAPIError(t, err, http.StatusNotFound, CodeNotFound)
	if r, err := c.Restore(ctx, snap, ""); err != nil || r.ID != "00000000000000aa" {
		t.Fatalf("restore = %+v, %v", r, err)
	}
	_, err = c.Restore(ctx, []byte("junk"), "")
	wantAPIError(t, err, http.StatusBadRequest, CodeBadRequest)
	logs, err := c.Logs(ctx, "c1")
	if err != nil || len(logs) != 1 || logs[0].Text != "hello" {
		t.Fatalf("logs = %+v, %v", logs, err)
	}
	if _, err := c.Stop(ctx, "c1"); err != nil || f.stopAt != "c1" {
		t.Fatalf("stop: %v (%q)", err, f.stopAt)
	}
	ns, err := c.Nodes(ctx)
	if err != nil || len(ns) != 1 || ns[0].Name != "a" {
		t.Fatalf("nodes = %+v, %v", ns, err)
	}
}

func TestMalformedRequests(t *testing.T) {
	f := &fake{}
	h := Handler(f, Options{MaxEvent: 64})
	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/daemons", "{not json", 400, CodeBadRequest},
		{"POST", "/v1/daemons", `{"kind":"counter","bogus":1}`, 400, CodeBadRequest},
		{"POST", "/v1/daemons/c1/events", `{"payload":"!!notbase64"}`, 400, CodeBadRequest},
		{"POST", "/v1/daemons/c1/events", `{"payload":"` + strings.Repeat("A", 200) + `"}`, 413, CodeTooLarge},
		{"GET", "/v1/nothing", "", 404, CodeNotFound},
		{"PUT", "/v1/daemons/c1", "", 404, CodeNotFound},
	}
	for _, tc := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		if rec.Code != tc.status {
			t.Errorf("%s %s: status %d, want %d (%s)", tc.method, tc.path, rec.Code, tc.status, rec.Body)
			continue
		}
		if tc.code == "" {
			continue
		}
		var e Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != tc.code || e.Message == "" {
			t.Errorf("%s %s: body %q, want code %s", tc.method, tc.path, rec.Body, tc.code)
		}
	}
	if len(f.sent) != 0 {
		t.Fatalf("malformed requests reached the backend: %q", f.sent)
	}
}

func TestTokenAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	ctr := prometheus.NewCounter(prometheus.CounterOpts{Name: "wasmesh_test_total", Help: "t"})
	reg.MustRegister(ctr)
	ctr.Add(3)
	srv := httptest.NewServer(Handler(&fake{}, Options{Token: "sekrit-token-0123", Metrics: reg}))
	defer srv.Close()
	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz", ""); code != 200 {
		t.Fatalf("healthz needs no token, got %d", code)
	}
	for _, auth := range []string{"", "Bearer wrong", "sekrit-token-0123"} {
		if code, body := get("/v1/nodes", auth); code != 401 || !strings.Contains(body, CodeUnauthorized) {
			t.Fatalf("auth %q: %d %s", auth, code, body)
		}
	}
	if code, _ := get("/metrics", ""); code != 401 {
		t.Fatalf("metrics without token: %d", code)
	}
	code, body := get("/metrics", "Bearer sekrit-token-0123")
	if code != 200 || !strings.Contains(body, "wasmesh_test_total 3") {
		t.Fatalf("metrics: %d %s", code, body)
	}
	if code, _ := get("/v1/nodes", "Bearer sekrit-token-0123"); code != 200 {
		t.Fatalf("with token: %d", code)
	}
}

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		token bool
		ok    bool
	}{
		{"127.0.0.1:7401", false, true},
		{"[::1]:7401", false, true},
		{"localhost:7401", false, true},
		{"0.0.0.0:7401", false, false},
		{":7401", false, false},
		{"10.1.2.3:7401", false, false},
		{"example.com:7401", false, false},
		{"0.0.0.0:7401", true, true},
		{"nonsense", true, false},
	} {
		err := CheckAddr(tc.addr, tc.token)
		if (err == nil) != tc.ok {
			t.Errorf("CheckAddr(%q, %v) = %v", tc.addr, tc.token, err)
		}
		if err != nil && !tc.ok && tc.addr != "nonsense" && !errors.Is(err, ErrInsecureAddr) {
			t.Errorf("CheckAddr(%q): %v does not match ErrInsecureAddr", tc.addr, err)
		}
	}
}

func (f *fake) Migrate(_ context.Context, r node.MigrateRequest, progress func(node.MigrateProgress)) (node.MigrateResult, error) {
	if r.Ref != "c1" {
		return node.MigrateResult{}, fmt.Errorf("%w: %s", node.ErrDaemonNotFound, r.Ref)
	}
	if r.To == "down" {
		return node.MigrateResult{Daemon: "c1", Attempts: 1}, fmt.Errorf("%w: target unavailable", node.ErrMigration)
	}
	progress(node.MigrateProgress{Phase: "transfer", Attempt: 1, BytesSent: 10, BytesTotal: 20})
	progress(node.MigrateProgress{Phase: "complete", Attempt: 1, BytesSent: 20, BytesTotal: 20})
	return node.MigrateResult{Daemon: "c1", From: "a", To: r.To, SnapshotBytes: 20, Attempts: 1}, nil
}

func TestMigrateStream(t *testing.T) {
	_, c := serve(t, Options{})
	ctx := context.Background()
	var phases []string
	res, err := c.Migrate(ctx, "c1", MigrateBody{To: "b"}, func(p MigrateProgress) { phases = append(phases, p.Phase) })
	if err != nil || res.To != "b" || res.SnapshotBytes != 20 || strings.Join(phases, ",") != "transfer,complete" {
		t.Fatalf("migrate = %+v %v, phases %v", res, err, phases)
	}
	_, err = c.Migrate(ctx, "c1", MigrateBody{To: "down"}, nil)
	wantAPIError(t, err, 409, CodeMigration)
	_, err = c.Migrate(ctx, "c1", MigrateBody{}, nil)
	wantAPIError(t, err, 400, CodeBadRequest)
	_, err = c.Migrate(ctx, "nope", MigrateBody{To: "b"}, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != CodeNotFound {
		t.Fatalf("unknown daemon: %v", err)
	}
}

func TestSendOnceThroughClient(t *testing.T) {
	f, c := serve(t, Options{})
	ctx := context.Background()
	res, err := c.SendOnce(ctx, "c1", "loader-1", 1, []byte("x"))
	if err != nil || res.Duplicate || len(res.Outputs) != 2 {
		t.Fatalf("first send = %+v, %v", res, err)
	}
	res, err = c.SendOnce(ctx, "c1", "loader-1", 1, []byte("x"))
	if err != nil || !res.Duplicate || len(res.Outputs) != 0 {
		t.Fatalf("resend = %+v, %v", res, err)
	}
	if f.count != 1 {
		t.Fatalf("applied %d times", f.count)
	}
	// The wire form: event_id is a decimal string (no JSON reader rounds it).
	body := `{"payload":"eA==","client":"loader-1","event_id":"18446744073709551615"}`
	resp, err := http.Post(c.Base+"/v1/daemons/c1/events", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || f.onceSeen["loader-1"] != 1<<64-1 {
		t.Fatalf("status %d, last id %d", resp.StatusCode, f.onceSeen["loader-1"])
	}
	// An event id without a client is refused, not silently anonymous.
	resp, err = http.Post(c.Base+"/v1/daemons/c1/events", "application/json", strings.NewReader(`{"payload":"eA==","event_id":"3"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("event_id without client: status %d", resp.StatusCode)
	}
}
