package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The dashboard page loads without the token; its stream and the API do
// not, and other paths still get the API's 404.
func TestDashboardRoutesAndAuth(t *testing.T) {
	srv := httptest.NewServer(Handler(&fake{}, Options{Token: "sekrit-token-0123"}))
	// Registered first so it runs last, after the bodies (an open stream
	// would keep Close waiting) are closed.
	t.Cleanup(srv.Close)
	get := func(path, tok string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	if res := get("/", ""); res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if res := get("/ui/app.js", ""); res.StatusCode != 200 {
		t.Fatalf("GET /ui/app.js = %d", res.StatusCode)
	}
	if res := get("/v1/events", ""); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/events without token = %d", res.StatusCode)
	}
	if res := get("/v1/events", "sekrit-token-0123"); res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /v1/events = %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if res := get("/nope", ""); res.StatusCode != 404 || !strings.Contains(res.Header.Get("Content-Type"), "json") {
		t.Fatalf("GET /nope = %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
}
