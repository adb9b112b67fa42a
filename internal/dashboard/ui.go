// Package ui is the node's web dashboard: a page and its assets, embedded
// so a node binary serves it with no build step, and the event stream the
// page watches the cluster through.
//
// The page and assets carry no data and load without a token; every
// call the page makes goes to the API with the bearer token the operator
// types in (the stream included), so the dashboard can do nothing the
// token could not.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// securityHeaders keep the page from being framed (its buttons act on the
// cluster) and from running anything but its own scripts.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// Page serves the dashboard's HTML (mount it at exactly "/").
func Page() http.Handler {
	page, err := assets.ReadFile("assets/index.html")
	if err != nil {
		// The file is embedded at build time: missing means a broken build.
		panic("ui: index.html not embedded: " + err.Error())
	}
	return securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	}))
}

// Assets serves the page's scripts and styles under prefix (e.g. "/ui/").
func Assets(prefix string) http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic("ui: " + err.Error())
	}
	return securityHeaders(http.StripPrefix(prefix, http.FileServerFS(sub)))
}
