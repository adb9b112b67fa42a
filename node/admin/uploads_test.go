package admin

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/node"
)

// blockingFake holds every deploy until release is closed, so a test can
// fill the upload slots and see what the next upload gets.
type blockingFake struct {
	fake
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	forced  []bool
}

func (f *blockingFake) saw(force bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forced = append(f.forced, force)
}

func (f *blockingFake) DeployForce(ctx context.Context, mod []byte, kind string, force bool) (node.KindInfo, error) {
	f.entered <- struct{}{}
	<-f.release
	f.saw(force)
	return f.fake.Deploy(ctx, mod, kind)
}

func (f *blockingFake) RestoreForce(ctx context.Context, data []byte, kind, _ string, force bool) (node.DaemonInfo, error) {
	f.saw(force)
	return f.fake.Restore(ctx, data, kind)
}

func TestUploadsCappedNodeWide(t *testing.T) {
	ctx := context.Background()
	f := &blockingFake{entered: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewServer(Handler(f, Options{MaxUploads: 2}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	mod := []byte("\x00asm\x01\x00\x00\x00")
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.DeployForce(ctx, bytes.NewReader(mod), "k", false)
			done <- err
		}()
	}
	<-f.entered
	<-f.entered
	// Both slots are held: a third upload, deploy or restore, is told to retry.
	_, err = c.Deploy(ctx, bytes.NewReader(mod), "k")
	wantAPIError(t, err, http.StatusServiceUnavailable, CodeUnavailable)
	_, err = c.RestoreForce(ctx, []byte("SNAPBYTES"), "", "", false)
	wantAPIError(t, err, http.StatusServiceUnavailable, CodeUnavailable)
	close(f.release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("held upload: %v", err)
		}
	}
	// Slots come back once an upload is done.
	go func() { <-f.entered }()
	if _, err := c.DeployForce(ctx, bytes.NewReader(mod), "k", true); err != nil {
		t.Fatalf("upload after the others finished: %v", err)
	}
	if _, err := c.RestoreForce(ctx, []byte("SNAPBYTES"), "", "", true); err != nil {
		t.Fatalf("restore after the others finished: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.forced); n != 4 || f.forced[2] != true || f.forced[3] != true || f.forced[0] {
		t.Fatalf("force flags seen by the backend: %v", f.forced)
	}
}

func TestForceParamStrict(t *testing.T) {
	h := Handler(&fake{}, Options{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/restore?force=maybe", bytes.NewReader([]byte("SNAPBYTES"))))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("force=maybe: %d %s", rec.Code, rec.Body)
	}
	// A backend without ForceBackend refuses force rather than ignoring it.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/restore?force=true", bytes.NewReader([]byte("SNAPBYTES"))))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("force on a backend that cannot: %d %s", rec.Code, rec.Body)
	}
}
