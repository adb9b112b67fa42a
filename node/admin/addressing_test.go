package admin

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/node"
)

// aimFake adds the addressing API to fake.
type aimFake struct {
	fake
	restoredOn string
	expected   node.ExpectRequest
	expects    int
}

func (f *aimFake) RestoreOn(ctx context.Context, data []byte, kind, on string) (node.DaemonInfo, error) {
	if on == "elsewhere" {
		return node.DaemonInfo{}, fmt.Errorf("%w: daemon 00000000000000aa has no record on elsewhere; its key is on node a", node.ErrNoIdentity)
	}
	f.restoredOn = on
	return f.Restore(ctx, data, kind)
}

func (f *aimFake) Expect(_ context.Context, req node.ExpectRequest) (node.ExpectResult, error) {
	f.expected = req
	f.expects++
	if req.Daemon == "ghost" {
		return node.ExpectResult{}, fmt.Errorf("%w: %q", node.ErrDaemonNotFound, req.Daemon)
	}
	return node.ExpectResult{Daemon: "00000000000000aa", Node: "a", Digest: "sha256:00", Identity: req.Key != nil}, nil
}

func TestRestoreOnAndExpect(t *testing.T) {
	ctx := context.Background()
	f := &aimFake{}
	srv := httptest.NewServer(Handler(f, Options{}))
	defer srv.Close()
	c, err := NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.RestoreOn(ctx, []byte("SNAPBYTES"), "", "b"); err != nil || d.ID != "00000000000000aa" || f.restoredOn != "b" {
		t.Fatalf("restore on b: %+v %v (on %q)", d, err, f.restoredOn)
	}
	_, err = c.RestoreOn(ctx, []byte("SNAPBYTES"), "", "elsewhere")
	wantAPIError(t, err, http.StatusNotFound, CodeNoIdentity)
	if !strings.Contains(err.Error(), "node a") {
		t.Fatalf("restore error does not name the node to aim at: %v", err)
	}
	res, err := c.Expect(ctx, ExpectRequest{Daemon: "c1", Kind: "counter", Key: []byte("KEY")})
	if err != nil || !res.Identity || f.expected.Kind != "counter" || string(f.expected.Key) != "KEY" {
		t.Fatalf("expect: %+v %v (%+v)", res, err, f.expected)
	}
	_, err = c.Expect(ctx, ExpectRequest{Daemon: "ghost"})
	wantAPIError(t, err, http.StatusNotFound, CodeNotFound)
	f.expects = 0

	// Strict body: unknown fields are refused.
	resp, err := http.Post(srv.URL+"/v1/expect", "application/json", strings.NewReader(`{"daemon":"c1","keyy":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown field: HTTP %d", resp.StatusCode)
	}
}

// A Backend without the addressing API still restores locally and says
// clearly that it cannot do the rest.
func TestAddressingNeedsTheBackend(t *testing.T) {
	_, c := serve(t, Options{})
	ctx := context.Background()
	if _, err := c.RestoreOn(ctx, []byte("SNAPBYTES"), "", ""); err != nil {
		t.Fatalf("plain restore: %v", err)
	}
	_, err := c.RestoreOn(ctx, []byte("SNAPBYTES"), "", "b")
	wantAPIError(t, err, http.StatusBadRequest, CodeBadRequest)
	_, err = c.Expect(ctx, ExpectRequest{Daemon: "c1"})
	wantAPIError(t, err, http.StatusNotImplemented, CodeInternal)
}

// POST /v1/expect bodies carry a key file: what reaches the backend is one
// strictly decoded JSON value, carried over unchanged.
func FuzzExpectBody(f *testing.F) {
	for _, s := range []string{
		`{"daemon":"c1","kind":"counter","key":"d2FzbWVzaA==","on":"b"}`,
		`{"daemon":"c1"}`, `{"key":"!!"}`, `{"daemon":"c1"}x`, `{"daemon":1}`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		af := &aimFake{}
		w := httptest.NewRecorder()
		Handler(af, Options{MaxEvent: 4096}).ServeHTTP(w, httptest.NewRequest("POST", "/v1/expect", bytes.NewReader(body)))
		var want ExpectRequest
		if af.expects == 0 {
			if w.Code < 400 {
				t.Fatalf("status %d but the backend was not called", w.Code)
			}
			return
		}
		if !strictOne(body, &want) {
			t.Fatalf("expect accepted %q, which is not one strict JSON value", body)
		}
		if want.Daemon != af.expected.Daemon || want.Kind != af.expected.Kind || want.On != af.expected.On || !bytes.Equal(want.Key, af.expected.Key) {
			t.Fatalf("expect request changed on the way: %+v, want %+v", af.expected, want)
		}
	})
}
