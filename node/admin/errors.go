package admin

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/wasmesh/wasmesh/node"
)

// classify maps a node error to an HTTP status and code.
func classify(err error) (int, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, CodeTooLarge
	case errors.Is(err, node.ErrBadRequest):
		return http.StatusBadRequest, CodeBadRequest
	case errors.Is(err, node.ErrDaemonNotFound), errors.Is(err, node.ErrUnknownKind), errors.Is(err, node.ErrUnknownNode),
		errors.Is(err, node.ErrNoIdentity):
		return http.StatusNotFound, CodeNotFound
	case errors.Is(err, node.ErrAmbiguous):
		return http.StatusConflict, CodeAmbiguous
	case errors.Is(err, node.ErrNameTaken):
		return http.StatusConflict, CodeConflict
	case errors.Is(err, node.ErrRefused):
		return http.StatusUnprocessableEntity, CodeRefused
	case errors.Is(err, node.ErrEventFailed):
		return http.StatusUnprocessableEntity, CodeEventFailed
	case errors.Is(err, node.ErrMigration):
		return http.StatusConflict, CodeMigration
	case errors.Is(err, node.ErrUnavailable), errors.Is(err, node.ErrShuttingDown):
		return http.StatusServiceUnavailable, CodeUnavailable
	}
	return http.StatusInternalServerError, CodeInternal
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
