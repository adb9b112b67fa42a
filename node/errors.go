package node

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/channel"
	"github.com/wasmesh/wasmesh/internal/cluster"
	"github.com/wasmesh/wasmesh/internal/engine"
	"github.com/wasmesh/wasmesh/internal/store"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
)

// Errors the admin API tells apart; test with errors.Is. Host, store and
// transport errors are wrapped, not replaced, so their sentinels match too.
var (
	ErrBadConfig      = errors.New("node: bad configuration")
	ErrBadRequest     = errors.New("node: bad request")
	ErrDaemonNotFound = errors.New("node: daemon not found")
	ErrAmbiguous      = errors.New("node: ambiguous daemon name")
	ErrNameTaken      = errors.New("node: name already used on this node")
	ErrUnknownNode    = errors.New("node: unknown node")
	ErrNoMatch        = errors.New("node: no node matches the filter")
	ErrUnknownKind    = errors.New("node: unknown kind")
	ErrRefused        = errors.New("node: module refused")
	ErrEventFailed    = errors.New("node: event failed")
	// ErrDaemonFailed: the daemon is failed here (its recovery at startup
	// failed): it takes no events until it is restored or stopped.
	ErrDaemonFailed = errors.New("node: daemon failed")
	ErrUnavailable  = errors.New("node: peer unavailable")
	ErrNoIdentity   = errors.New("node: this node does not hold the daemon's identity")
	ErrShuttingDown = errors.New("node: shutting down")
	ErrTooLarge     = errors.New("node: request too large")
	ErrUnauthorized = errors.New("node: not authorized")
	// ErrDraining: the node is being drained (wasmesh node drain) and takes
	// no new daemons, by spawn or by migration, until it is undrained.
	ErrDraining = errors.New("node: node is draining")
	// Channels (channels.go).
	ErrChannelNotFound = errors.New("node: no such channel")
	ErrChannelExists   = errors.New("node: channel exists with another definition")
	// ErrChannelFull: a subscriber's queue stayed full until the publish's
	// deadline; nothing of the refused message was queued.
	ErrChannelFull   = errors.New("node: channel full")
	ErrNotPermitted  = errors.New("node: not permitted")
	ErrNotSubscribed = errors.New("node: not subscribed")
)

// Codes of the error table: the one vocabulary of the mesh (a peer's
// failure) and of the admin API (the JSON "code" field).
const (
	CodeBadRequest      = "bad_request"
	CodeTooLarge        = "too_large"
	CodeUnauthorized    = "unauthorized"
	CodeMigration       = "migration_failed"
	CodeNotFound        = "not_found"
	CodeUnknownKind     = "unknown_kind"
	CodeUnknownNode     = "unknown_node"
	CodeNoMatch         = "no_matching_node"
	CodeNoIdentity      = "no_identity"
	CodeAmbiguous       = "ambiguous"
	CodeNameTaken       = "name_taken"
	CodeRefused         = "refused"
	CodeEventFailed     = "event_failed"
	CodeDaemonFailed    = "daemon_failed"
	CodeShuttingDown    = "shutting_down"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
	CodeDraining        = "draining"
	CodeChannelNotFound = "channel_not_found"
	CodeChannelExists   = "channel_exists"
	CodeChannelFull     = "channel_full"
	CodeNotPermitted    = "not_permitted"
	CodeNotSubscribed   = "not_subscribed"
)

// ErrorClass is one row of the error table: a sentinel, its code on the
// mesh and in the admin API, its HTTP status and the CLI's exit status.
type ErrorClass struct {
	// Sentinel is nil only for the internal row (anything unclassified).
	Sentinel error
	Code     string
	HTTP     int
	// Exit is the CLI's status: 2 when the input was refused, 1 when the
	// work failed.
	Exit int
	// twins are lower layers' sentinels with the same meaning: an error
	// matching one is in this class, and its message does not repeat it.
	twins []error
	// transport are the mesh transport's own sentinels in this class. The
	// transport gives them its own wire codes (decoded back through
	// aliases), so toWire leaves them alone.
	transport []error
	// echoes are transport sentinels whose words repeat the class's, left
	// out of its messages like the twins'.
	echoes []error
	// aliases are the transport's own codes decoded into this class.
	aliases []string
}

// ErrorClasses returns the error table. The order matters: an error
// matching several rows' sentinels (a failed migration whose cause is an
// unreachable peer) is in the first. It is built per call so no caller can change it
// for another.
func ErrorClasses() []ErrorClass {
	return []ErrorClass{
		{Sentinel: ErrBadRequest, Code: CodeBadRequest, HTTP: http.StatusBadRequest, Exit: 2,
			twins: []error{channel.ErrBadName, channel.ErrBadDef}},
		{Sentinel: ErrTooLarge, Code: CodeTooLarge, HTTP: http.StatusRequestEntityTooLarge, Exit: 2,
			transport: []error{meshquic.ErrFrameTooLarge, meshquic.ErrModuleTooLarge},
			aliases:   []string{meshquic.CodeFrameTooLarge, meshquic.CodeModuleTooLarge}},
		{Sentinel: ErrUnauthorized, Code: CodeUnauthorized, HTTP: http.StatusUnauthorized, Exit: 2},
		{Sentinel: ErrNotPermitted, Code: CodeNotPermitted, HTTP: http.StatusForbidden, Exit: 2,
			twins: []error{channel.ErrNotPermitted}},
		{Sentinel: ErrRefused, Code: CodeRefused, HTTP: http.StatusUnprocessableEntity, Exit: 2,
			twins: []error{engine.ErrModuleRefused, abi.ErrRefused}},
		{Sentinel: ErrMigration, Code: CodeMigration, HTTP: http.StatusConflict, Exit: 1},
		{Sentinel: ErrEventFailed, Code: CodeEventFailed, HTTP: http.StatusUnprocessableEntity, Exit: 1},
		{Sentinel: ErrDaemonFailed, Code: CodeDaemonFailed, HTTP: http.StatusConflict, Exit: 1},
		{Sentinel: ErrDaemonNotFound, Code: CodeNotFound, HTTP: http.StatusNotFound, Exit: 1,
			twins: []error{engine.ErrDaemonNotFound}, aliases: []string{meshquic.CodeNotHosted}},
		{Sentinel: ErrUnknownKind, Code: CodeUnknownKind, HTTP: http.StatusNotFound, Exit: 1,
			twins: []error{engine.ErrUnknownKind}},
		{Sentinel: ErrUnknownNode, Code: CodeUnknownNode, HTTP: http.StatusNotFound, Exit: 1},
		{Sentinel: ErrNoMatch, Code: CodeNoMatch, HTTP: http.StatusNotFound, Exit: 1,
			twins: []error{cluster.ErrNoMatchingNode}},
		{Sentinel: ErrNoIdentity, Code: CodeNoIdentity, HTTP: http.StatusNotFound, Exit: 1},
		{Sentinel: ErrAmbiguous, Code: CodeAmbiguous, HTTP: http.StatusConflict, Exit: 1},
		{Sentinel: ErrNameTaken, Code: CodeNameTaken, HTTP: http.StatusConflict, Exit: 1,
			twins: []error{store.ErrNameTaken}},
		{Sentinel: ErrDraining, Code: CodeDraining, HTTP: http.StatusConflict, Exit: 1},
		{Sentinel: ErrChannelNotFound, Code: CodeChannelNotFound, HTTP: http.StatusNotFound, Exit: 1,
			twins: []error{channel.ErrChannelNotFound}},
		{Sentinel: ErrChannelExists, Code: CodeChannelExists, HTTP: http.StatusConflict, Exit: 1,
			twins: []error{channel.ErrChannelExists}},
		{Sentinel: ErrChannelFull, Code: CodeChannelFull, HTTP: http.StatusTooManyRequests, Exit: 1,
			twins: []error{channel.ErrChannelFull, channel.ErrLimit}},
		{Sentinel: ErrNotSubscribed, Code: CodeNotSubscribed, HTTP: http.StatusNotFound, Exit: 1,
			twins: []error{channel.ErrNotSubscribed}},
		{Sentinel: ErrShuttingDown, Code: CodeShuttingDown, HTTP: http.StatusServiceUnavailable, Exit: 1,
			twins: []error{engine.ErrShuttingDown}},
		{Sentinel: ErrUnavailable, Code: CodeUnavailable, HTTP: http.StatusServiceUnavailable, Exit: 1,
			transport: []error{meshquic.ErrPeerUnavailable, meshquic.ErrUnknownPeer, meshquic.ErrTimeout},
			echoes:    []error{meshquic.ErrPeerUnavailable},
			aliases:   []string{meshquic.CodeUnavailable, meshquic.CodeTimeout}},
		internalClass(),
	}
}

func internalClass() ErrorClass {
	return ErrorClass{Code: CodeInternal, HTTP: http.StatusInternalServerError, Exit: 1}
}

// ClassOf returns the row err belongs to; the internal row when none. The
// node's own sentinels decide first (the class a caller chose), then the
// lower layers' twins, then the transport's sentinels.
func ClassOf(err error) ErrorClass {
	table := ErrorClasses()
	for _, pass := range []func(ErrorClass) []error{
		func(c ErrorClass) []error { return []error{c.Sentinel} },
		func(c ErrorClass) []error { return c.twins },
		func(c ErrorClass) []error { return c.transport },
	} {
		for _, c := range table {
			for _, t := range pass(c) {
				if t != nil && errors.Is(err, t) {
					return c
				}
			}
		}
	}
	return internalClass()
}

// ownsWire reports whether this package, not the transport, gives err its
// wire code.
func (c ErrorClass) ownsWire(err error) bool {
	if c.Sentinel == nil {
		return false
	}
	if errors.Is(err, c.Sentinel) {
		return true
	}
	for _, t := range c.twins {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// ClassByCode returns the row of a code (the table's own or a transport
// code it decodes); false for a code it does not know.
func ClassByCode(code string) (ErrorClass, bool) {
	for _, c := range ErrorClasses() {
		if c.Code == code || slices.Contains(c.aliases, code) {
			return c, true
		}
	}
	return ErrorClass{}, false
}

// classError is a failure put in a class by this package: it matches the
// class's sentinel and its cause, and says the class once.
type classError struct {
	class error
	cause error
	msg   string
}

func (e *classError) Error() string   { return e.msg }
func (e *classError) Unwrap() []error { return []error{e.class, e.cause} }

// codedError gives a node error a wire code so the peer that asked can map
// it back to the same sentinel (see fromRemote).
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string    { return e.err.Error() }
func (e *codedError) Unwrap() error    { return e.err }
func (e *codedError) WireCode() string { return e.code }

func coded(code string, err error) error { return &codedError{code: code, err: err} }

// wrap puts err in sentinel's class unless it is already there. When err
// is a lower layer's twin of the sentinel ("host: unknown daemon kind"),
// the twin's words are dropped so the reason is said once.
func wrap(sentinel, err error) error {
	if err == nil || errors.Is(err, sentinel) {
		return err
	}
	return classed(sentinel, err, "")
}

// classed puts err in sentinel's class with the message "sentinel: where:
// detail", where detail is err's message without the words of a twin that
// err matches.
func classed(sentinel, err error, where string) error {
	detail := err.Error()
	for _, c := range ErrorClasses() {
		if c.Sentinel != sentinel {
			continue
		}
		for _, t := range slices.Concat(c.twins, c.echoes) {
			if rest, ok := strings.CutPrefix(detail, t.Error()); ok && errors.Is(err, t) {
				detail = strings.TrimLeft(rest, ": ")
				break
			}
		}
	}
	msg := sentinel.Error()
	for _, part := range []string{where, detail} {
		if part != "" {
			msg += ": " + part
		}
	}
	return &classError{class: sentinel, cause: err, msg: msg}
}

// noMatch is the scheduler's refusal in the node's words: which filter,
// and what the candidates lacked.
func noMatch(spec string, err error) error {
	var nm *cluster.NoMatchError
	if !errors.As(err, &nm) {
		return wrap(ErrNoMatch, err)
	}
	if spec == "" {
		spec = "*"
	}
	msg := fmt.Sprintf("%v %q: ", ErrNoMatch, spec)
	if nm.Candidates == 0 {
		msg += "no candidate nodes"
	} else {
		reqs := slices.Collect(maps.Keys(nm.Failed))
		slices.SortFunc(reqs, func(a, b string) int {
			if c := cmp.Compare(nm.Failed[b], nm.Failed[a]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		parts := make([]string, len(reqs))
		for i, r := range reqs {
			parts[i] = fmt.Sprintf("%q unmet on %d", r, nm.Failed[r])
		}
		msg += fmt.Sprintf("%s (of %d candidate(s))", strings.Join(parts, ", "), nm.Candidates)
	}
	return &classError{class: ErrNoMatch, cause: err, msg: msg}
}

// joinReason is why a join failed, on one line: the last reason of each
// seed memberlist tried, without the "failed to join SEED:" it prefixes
// (the caller names the seeds), or err's message with its line breaks
// folded.
func joinReason(err error) string {
	var multi interface{ WrappedErrors() []error }
	if errors.As(err, &multi) && len(multi.WrappedErrors()) > 0 {
		var parts []string
		for _, e := range multi.WrappedErrors() {
			msg := e.Error()
			if rest, ok := strings.CutPrefix(msg, "failed to join "); ok {
				if _, after, ok := strings.Cut(rest, ": "); ok {
					msg = after
				}
			}
			parts = append(parts, msg)
		}
		return strings.Join(parts, "; ")
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}
