// Package admin is a node's HTTP/JSON API for operators (the wasmesh CLI),
// versioned under /v1/, plus /healthz and /metrics (Prometheus text format).
// openapi.json (served at GET /v1/openapi.json) describes every route with
// its schemas; a test holds it to the route table in server.go (routes).
//
//	POST   /v1/modules?kind=NAME&force=true body: module bytes → KindInfo (force: re-point an existing kind name)
//	GET    /v1/modules                                          → []KindInfo
//	POST   /v1/daemons                  SpawnRequest             → DaemonInfo
//	GET    /v1/daemons                                          → PsResponse (whole cluster)
//	GET    /v1/daemons/{ref}                                    → DaemonInfo
//	DELETE /v1/daemons/{ref}                                    → DaemonInfo
//	POST   /v1/daemons/{ref}/events     SendRequest             → SendResponse (client + event_id: exactly once)
//	POST   /v1/daemons/{ref}/events/stream?client=ID  NDJSON StreamLine per line → NDJSON StreamAnswer per event, then End
//	GET    /v1/daemons/{ref}/snapshot                           → signed snapshot bytes
//	GET    /v1/daemons/{ref}/logs                               → []LogLine
//	POST   /v1/daemons/{ref}/migrate    MigrateBody              → NDJSON MigrateLine: progress lines, then result (or error)
//	POST   /v1/restore?kind=NAME&on=NODE&force=true body: snapshot bytes → DaemonInfo (on: default the key's holder; force: roll a running daemon back)
//	POST   /v1/expect                   ExpectRequest            → ExpectResult
//	GET    /v1/nodes                                            → []NodeInfo
//	POST   /v1/nodes/{name}/drain       DrainBody                → NDJSON DrainLine: progress lines, then result (sent to the drained node)
//	POST   /v1/nodes/{name}/undrain                             → {"node","state"}
//	POST   /v1/channels                 ChannelDef               → ChannelInfo (again with the same definition: no-op)
//	GET    /v1/channels                                         → []ChannelInfo (whole cluster)
//	POST   /v1/publish                  PublishBody              → PublishResult (client + first_id: exactly once)
//	GET    /v1/daemons/{ref}/subscriptions                      → []SubscriptionInfo
//	POST   /v1/daemons/{ref}/subscriptions  SubscribeBody        → SubscriptionInfo
//	DELETE /v1/daemons/{ref}/subscriptions/{channel...}         → {} (channel names contain '/')
//	GET    /v1/openapi.json                                     → this list as an OpenAPI 3 document
//
// Uploads (modules, snapshots) in progress at once are capped node-wide
// (Options.MaxUploads); one over the cap is answered 503 (busy, retry).
//
// A stream (see stream.go) resolves {ref} once and answers each event in
// order, as results come, while the request is still being sent (full
// duplex); a bad line fails that event only, with its line number. Lines
// are {"text":"a"}, {"hex":"00ff"} or {"base64":"AP8="}, with "event_id"
// (a decimal string) under ?client=ID; answers carry "line", "outputs"
// (base64) or "error" and "code", and the last line is {"end":{...}}:
//
//	printf '{"text":"a"}\n{"hex":"00ff"}\n{"text":"get"}\n' |
//	  curl -sN -X POST -T - -H 'Content-Type: application/x-ndjson' \
//	  http://127.0.0.1:7401/v1/daemons/c1/events/stream
//
// {ref} is a daemon id (16 hex digits) or name. Errors are JSON
// {"error": "...", "code": "..."}; the code and the HTTP status are the
// error's row in the node's error table (node.ErrorClasses), the same codes
// nodes use between themselves, so APIError matches the node's sentinel.
package admin

import (
	"github.com/wasmesh/wasmesh/node"
)

// Re-exported so clients need only this package.
type (
	KindInfo   = node.KindInfo
	DaemonInfo = node.DaemonInfo
	NodeInfo   = node.NodeInfo
	LogLine    = node.LogLine

	MigrateProgress = node.MigrateProgress
	MigrateResult   = node.MigrateResult
	ExpectRequest   = node.ExpectRequest
	ExpectResult    = node.ExpectResult
)

// MigrateBody is the body of POST /v1/daemons/{ref}/migrate.
type MigrateBody struct {
	To         string `json:"to,omitempty"`
	Require    string `json:"require,omitempty"`
	NoIdentity bool   `json:"no_identity,omitempty"`
	TimeoutMs  int64  `json:"timeout_ms,omitempty"`
}

// MigrateLine is one line of the newline-delimited JSON stream that
// POST /v1/daemons/{ref}/migrate answers with: progress lines while it runs,
// then one line with the result or the error.
type MigrateLine struct {
	Progress *MigrateProgress `json:"progress,omitempty"`
	Result   *MigrateResult   `json:"result,omitempty"`
	Error    *Error           `json:"error,omitempty"`
}

// SpawnRequest is the body of POST /v1/daemons.
type SpawnRequest struct {
	Kind   string `json:"kind"`
	Name   string `json:"name,omitempty"`
	Config []byte `json:"config,omitempty"` // base64 in JSON
	On     string `json:"on,omitempty"`
	// Require is a placement filter, e.g. "gpu,zone=eu-1,memory_gb>=32".
	Require string `json:"require,omitempty"`
	// Key is the daemon's identity key file (base64 in JSON); see
	// node.SpawnRequest.Key.
	Key []byte `json:"key,omitempty"`
}

// SendRequest is one event; JSON carries the payload as base64.
type SendRequest struct {
	Payload []byte `json:"payload"`
	// Client and EventID make the send exactly-once (Node.SendOnce): a
	// client numbers its events from 1 and may resend any it got no answer
	// for. EventID is a decimal string, so no JSON reader rounds it.
	Client  string `json:"client,omitempty"`
	EventID uint64 `json:"event_id,string,omitempty"`
}

// SendResponse carries the event's outputs in order.
type SendResponse struct {
	Daemon  string   `json:"daemon"`
	Node    string   `json:"node"`
	Outputs [][]byte `json:"outputs"`
	// Links are the outputs' causal links (chain.Link encodings, base64).
	Links [][]byte `json:"links,omitempty"`
	// Duplicate: the daemon had already applied this client event id; its
	// outputs went to the earlier attempt.
	Duplicate bool `json:"duplicate,omitempty"`
}

// PsResponse lists daemons; Unreachable names members that did not answer
// (dead, suspect, left, or the call failed). Their daemons are in Daemons
// all the same, with Status unreachable or offline (node.Status*).
type PsResponse struct {
	Daemons     []DaemonInfo `json:"daemons"`
	Unreachable []string     `json:"unreachable,omitempty"`
}

// Error is the body of every error response.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
}

// Error codes: the node's error table (node.ErrorClasses), which maps
// each to its HTTP status and sentinel; APIError matches the sentinel.
const (
	CodeBadRequest   = node.CodeBadRequest
	CodeNotFound     = node.CodeNotFound
	CodeUnknownKind  = node.CodeUnknownKind
	CodeUnknownNode  = node.CodeUnknownNode
	CodeNoMatch      = node.CodeNoMatch
	CodeNoIdentity   = node.CodeNoIdentity
	CodeAmbiguous    = node.CodeAmbiguous
	CodeNameTaken    = node.CodeNameTaken
	CodeRefused      = node.CodeRefused
	CodeEventFailed  = node.CodeEventFailed
	CodeDaemonFailed = node.CodeDaemonFailed
	CodeShuttingDown = node.CodeShuttingDown
	CodeUnavailable  = node.CodeUnavailable
	CodeUnauthorized = node.CodeUnauthorized
	CodeTooLarge     = node.CodeTooLarge
	CodeInternal     = node.CodeInternal
	CodeMigration    = node.CodeMigration
	// CodeConflict is the old name of CodeNameTaken.
	CodeConflict = CodeNameTaken
)
