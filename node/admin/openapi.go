package admin

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3 description of this API. It is written by
// hand; TestOpenAPIMatchesRoutes fails when it and the route table (routes)
// disagree, and TestOpenAPISchemasMatchTypes when a schema and the Go type
// it describes do.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3 document served at GET /v1/openapi.json.
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}
