package admin

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/wasmesh/wasmesh/node"
)

// classify maps a node error to its HTTP status and code through the
// node's error table (node.ErrorClasses), the one the mesh uses too.
func classify(err error) (int, string) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, CodeTooLarge
	}
	c := node.ClassOf(err)
	return c.HTTP, c.Code
}

func writeError(w http.ResponseWriter, err error) {
	status, code := classify(err)
	writeErrorCode(w, status, code, err.Error())
}

func writeErrorCode(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Error{Message: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
