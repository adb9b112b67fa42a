package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/node"
)

// drainFake drains two daemons, one of which does not move.
type drainFake struct {
	fake
	got       node.DrainRequest
	undrained string
}

func (f *drainFake) Drain(_ context.Context, req node.DrainRequest, progress func(node.DrainProgress)) (node.DrainResult, error) {
	f.got = req
	progress(node.DrainProgress{Event: "start", Total: 2, Remaining: 2})
	progress(node.DrainProgress{Event: "moved", Daemon: "a", Total: 2, Moved: 1, Remaining: 1, Bytes: 100})
	progress(node.DrainProgress{Event: "failed", Daemon: "b", Total: 2, Moved: 1, Failed: 1})
	res := node.DrainResult{Node: req.Node, Total: 2, Moved: 1, Failed: 1, Bytes: 100,
		Daemons: []node.DrainDaemon{{Daemon: "a", To: "n2"}, {Daemon: "b", Error: "boom"}}}
	return res, fmt.Errorf("%w: 1 of 2 daemons did not move", node.ErrMigration)
}

func (f *drainFake) Undrain(_ context.Context, ref string) error {
	if ref != "n1" {
		return fmt.Errorf("%w: not this node", node.ErrBadRequest)
	}
	f.undrained = ref
	return nil
}

func TestDrainStreamsProgressThenSummary(t *testing.T) {
	f := &drainFake{}
	srv := httptest.NewServer(Handler(f, Options{}))
	defer srv.Close()
	c := &Client{Base: srv.URL, HTTP: srv.Client()}
	var seen []string
	res, err := c.Drain(context.Background(), "n1", DrainBody{To: []string{"n2"}, Parallel: 8}, func(p DrainProgress) { seen = append(seen, p.Event) })
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != node.CodeMigration {
		t.Fatalf("a partial drain's error: %v", err)
	}
	if res.Moved != 1 || res.Failed != 1 || len(res.Daemons) != 2 || res.Daemons[1].Error != "boom" {
		t.Fatalf("summary %+v", res)
	}
	if strings.Join(seen, ",") != "start,moved,failed" {
		t.Fatalf("progress %v", seen)
	}
	if f.got.Node != "n1" || f.got.Parallel != 8 || len(f.got.To) != 1 || f.got.To[0] != "n2" {
		t.Fatalf("request reached the node as %+v", f.got)
	}
	if err := c.Undrain(context.Background(), "n1"); err != nil || f.undrained != "n1" {
		t.Fatalf("undrain: %v (%q)", err, f.undrained)
	}
	if err := c.Undrain(context.Background(), "n9"); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Fatalf("undrain of another node: %v", err)
	}
	resp, err := http.Post(srv.URL+"/v1/nodes/n1/drain", "application/json", strings.NewReader(`{"paralel":2}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown field: status %d", resp.StatusCode)
	}
}

func TestDrainNotImplemented(t *testing.T) {
	srv := httptest.NewServer(Handler(&fake{}, Options{}))
	defer srv.Close()
	c := &Client{Base: srv.URL, HTTP: srv.Client()}
	var ae *APIError
	if err := c.Undrain(context.Background(), "n1"); !errors.As(err, &ae) || ae.Status != http.StatusNotImplemented {
		t.Fatalf("backend without drain: %v", err)
	}
}
