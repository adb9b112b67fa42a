package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wasmesh/wasmesh/internal/dashboard"
	"github.com/wasmesh/wasmesh/node"
)

// Backend is what the API serves; *node.Node implements it.
type Backend interface {
	Deploy(ctx context.Context, module []byte, kind string) (node.KindInfo, error)
	Kinds() []node.KindInfo
	Spawn(ctx context.Context, req node.SpawnRequest) (node.DaemonInfo, error)
	Daemons(ctx context.Context) ([]node.DaemonInfo, []string)
	Daemon(ctx context.Context, ref string) (node.DaemonInfo, error)
	Stop(ctx context.Context, ref string) (node.DaemonInfo, error)
	Send(ctx context.Context, ref string, payload []byte) (node.Delivery, error)
	SendOnce(ctx context.Context, ref, client string, eventID uint64, payload []byte) (node.Delivery, error)
	Snapshot(ctx context.Context, ref string) ([]byte, node.DaemonInfo, error)
	Logs(ctx context.Context, ref string) ([]node.LogLine, error)
	Restore(ctx context.Context, data []byte, kind string) (node.DaemonInfo, error)
	Nodes() []node.NodeInfo
	Migrate(ctx context.Context, req node.MigrateRequest, progress func(node.MigrateProgress)) (node.MigrateResult, error)

	// Channels (channels.go).
	CreateChannel(ctx context.Context, def node.ChannelDef) (node.ChannelInfo, error)
	Channels(ctx context.Context) ([]node.ChannelInfo, error)
	Subscribe(ctx context.Context, ref, channel string, token []byte) (node.SubscriptionInfo, error)
	Unsubscribe(ctx context.Context, ref, channel string) error
	Subscriptions(ctx context.Context, ref string) ([]node.SubscriptionInfo, error)
	Publish(ctx context.Context, req node.PublishRequest) (node.PublishResult, error)
}

var _ Backend = (*node.Node)(nil)

// The dashboard's stream shows migrations and drains in progress when the
// backend can tell them (optional, like DrainBackend).
var _ dashboard.ActivitySource = (*node.Node)(nil)

// Options configure the handler.
type Options struct {
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// everything but /healthz.
	Token    string
	Metrics  prometheus.Gatherer
	Logger   *slog.Logger
	MaxBody  int64 // module and snapshot uploads; default 256 MiB
	MaxEvent int64 // one send request; default 32 MiB
	// MaxUploads caps module and snapshot uploads in progress at once;
	// default DefaultMaxUploads. More get 503 (busy, retry).
	MaxUploads int
}

// ErrInsecureAddr refuses an admin address reachable from other machines
// without a token.
var ErrInsecureAddr = errors.New("admin: refusing a non-loopback admin address without --admin-token-file")

// CheckAddr refuses a non-loopback listen address unless a token protects it.
func CheckAddr(addr string, haveToken bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin: address %q: %w", addr, err)
	}
	if haveToken || host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %s (anyone who reaches it could deploy and run code)", ErrInsecureAddr, addr)
	}
	return nil
}

// ReadTokenFile reads a bearer token (surrounding whitespace ignored).
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin: token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("admin: token in %s is shorter than 16 characters", path)
	}
	return tok, nil
}

type server struct {
	b       Backend
	opts    Options
	uploads chan struct{} // upload slots (acquireUpload)
}

// Handler returns the API handler.
func Handler(b Backend, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 256 << 20
	}
	if opts.MaxEvent <= 0 {
		opts.MaxEvent = 32 << 20
	}
	if opts.MaxUploads <= 0 {
		opts.MaxUploads = DefaultMaxUploads
	}
	s := &server{b: b, opts: opts, uploads: make(chan struct{}, opts.MaxUploads)}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, rt.h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErrorCode(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// apiRoute is one entry of the route table: a ServeMux pattern
// ("METHOD /path/{wild}") and its handler, auth already applied.
type apiRoute struct {
	pattern string
	h       http.Handler
}

// routes is the whole route table. Handler registers it and the OpenAPI
// test compares it with openapi.json, so the two cannot drift apart.
func (s *server) routes() []apiRoute {
	var rs []apiRoute
	rs = append(rs, apiRoute{"GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, map[string]string{"status": "ok"}) })})
	if s.opts.Metrics != nil {
		rs = append(rs, apiRoute{"GET /metrics", s.auth(promhttp.HandlerFor(s.opts.Metrics, promhttp.HandlerOpts{}))})
	}
	route := func(pattern string, h http.HandlerFunc) { rs = append(rs, apiRoute{pattern, s.auth(h)}) }
	route("POST /v1/modules", s.deploy)
	route("GET /v1/modules", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, nonNil(s.b.Kinds())) })
	route("POST /v1/daemons", s.spawn)
	route("GET /v1/daemons", s.ps)
	route("GET /v1/daemons/{ref}", s.stats)
	route("DELETE /v1/daemons/{ref}", s.stop)
	route("POST /v1/daemons/{ref}/events", s.send)
	route("POST /v1/daemons/{ref}/events/stream", s.sendStream)
	route("GET /v1/daemons/{ref}/snapshot", s.snapshot)
	route("GET /v1/daemons/{ref}/logs", s.logs)
	route("POST /v1/restore", s.restore)
	route("POST /v1/daemons/{ref}/migrate", s.migrate)
	route("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, nonNil(s.b.Nodes())) })
	route("GET /v1/openapi.json", serveOpenAPI)
	s.addressingRoutes(route)
	s.drainRoutes(route)
	s.channelRoutes(route)
	route("GET /v1/events", s.events)
	// The dashboard: the page and its assets hold no data and load without
	// the token; the stream it watches (/v1/events) is API and needs it.
	rs = append(rs, apiRoute{"GET /{$}", dashboard.Page()}, apiRoute{"GET /ui/", dashboard.Assets("/ui/")})
	return rs
}

func (s *server) events(w http.ResponseWriter, r *http.Request) {
	dashboard.Events(s.b, dashboard.EventsOptions{}).ServeHTTP(w, r)
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func (s *server) auth(h http.Handler) http.Handler {
	if s.opts.Token == "" {
		return h
	}
	want := []byte("Bearer " + s.opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			// Answer at once, without first reading what is left of the
			// body: an event stream's body may not end until it is answered.
			w.Header().Set("Connection", "close")
			writeErrorCode(w, http.StatusUnauthorized, CodeUnauthorized, "missing or wrong bearer token (give --token-file)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *server) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	return s.decodeLimit(w, r, v, s.opts.MaxEvent)
}

// decodeLimit is decode with a body limit of its own: a publish carries
// many payloads and is bounded like an upload, not like one event.
func (s *server) decodeLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return fmt.Errorf("%w: request body: %v", node.ErrBadRequest, err)
	}
	// Decode stops after the first value; anything but white space after it
	// (a second object, garbage) is refused rather than silently dropped.
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return fmt.Errorf("%w: request body: data after the JSON value", node.ErrBadRequest)
	}
	return nil
}

// upload reads a module or snapshot body under the node-wide upload cap,
// with its ?force= parameter; release frees the upload slot.
func (s *server) upload(w http.ResponseWriter, r *http.Request) (body []byte, force bool, release func(), err error) {
	if force, err = forceParam(r); err != nil {
		return nil, false, nil, err
	}
	if release, err = s.acquireUpload(); err != nil {
		return nil, false, nil, err
	}
	if body, err = s.readBody(w, r, s.opts.MaxBody); err != nil {
		release()
		return nil, false, nil, err
	}
	return body, force, release, nil
}

func (s *server) deploy(w http.ResponseWriter, r *http.Request) {
	mod, force, release, err := s.upload(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	defer release()
	if len(mod) == 0 {
		writeError(w, fmt.Errorf("%w: empty module", node.ErrBadRequest))
		return
	}
	k, err := s.deployForce(r.Context(), mod, r.URL.Query().Get("kind"), force)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, k)
}

func (s *server) spawn(w http.ResponseWriter, r *http.Request) {
	var req SpawnRequest
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	info, err := s.b.Spawn(r.Context(), node.SpawnRequest{Kind: req.Kind, Name: req.Name, Config: req.Config, On: req.On, Require: req.Require, Key: req.Key})
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
	writeJSON(w, info)
}

func (s *server) ps(w http.ResponseWriter, r *http.Request) {
	ds, missing := s.b.Daemons(r.Context())
	writeJSON(w, PsResponse{Daemons: nonNil(ds), Unreachable: missing})
}

func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	info, err := s.b.Daemon(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, info)
}

func (s *server) stop(w http.ResponseWriter, r *http.Request) {
	info, err := s.b.Stop(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, info)
}

func (s *server) send(w http.ResponseWriter, r *http.Request) {
	var req SendRequest
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	var res node.Delivery
	var err error
	switch {
	case req.Client != "":
		res, err = s.b.SendOnce(r.Context(), r.PathValue("ref"), req.Client, req.EventID, req.Payload)
	case req.EventID != 0:
		err = fmt.Errorf("%w: event_id needs a client", node.ErrBadRequest)
	default:
		res, err = s.b.Send(r.Context(), r.PathValue("ref"), req.Payload)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, SendResponse{Daemon: res.Daemon, Node: res.Node, Outputs: nonNil(res.Outputs), Links: res.Links, Duplicate: res.Duplicate})
}

func (s *server) snapshot(w http.ResponseWriter, r *http.Request) {
	data, info, err := s.b.Snapshot(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Wasmesh-Daemon", info.ID)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", info.ID+".snap"))
	_, _ = w.Write(data)
}

func (s *server) logs(w http.ResponseWriter, r *http.Request) {
	lines, err := s.b.Logs(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, nonNil(lines))
}

func (s *server) restore(w http.ResponseWriter, r *http.Request) {
	data, force, release, err := s.upload(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	defer release()
	info, err := s.restoreForce(r.Context(), data, r.URL.Query().Get("kind"), r.URL.Query().Get("on"), force)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, info)
}

// Server is a running admin API.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen binds addr without serving yet, so a node can refuse to start when
// its admin port is taken before it joins the cluster.
func Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", addr, err)
	}
	return &Server{ln: ln}, nil
}

// Serve serves h in the background.
func (s *Server) Serve(h http.Handler, logger *slog.Logger) {
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && logger != nil {
			logger.Error("admin server stopped", "err", err)
		}
	}()
}

// URL is the base URL of the API.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Shutdown stops accepting and waits for requests in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return s.ln.Close()
	}
	return s.srv.Shutdown(ctx)
}

// migrate streams progress as newline-delimited JSON, then the result.
func (s *server) migrate(w http.ResponseWriter, r *http.Request) {
	var body MigrateBody
	if err := s.decode(w, r, &body); err != nil {
		writeError(w, err)
		return
	}
	if (body.To == "") == (body.Require == "") {
		writeError(w, fmt.Errorf("%w: give exactly one of \"to\" (a node name or id) and \"require\" (a placement filter)", node.ErrBadRequest))
		return
	}
	// timeout_ms * 1ms must not overflow time.Duration: a huge value would
	// wrap to a tiny or negative timeout. Negative values mean nothing.
	if body.TimeoutMs < 0 || body.TimeoutMs > math.MaxInt64/int64(time.Millisecond) {
		writeError(w, fmt.Errorf("%w: timeout_ms %d out of range", node.ErrBadRequest, body.TimeoutMs))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	emit := func(l MigrateLine) {
		_ = enc.Encode(l)
		if flusher != nil {
			flusher.Flush()
		}
	}
	last := ""
	req := node.MigrateRequest{Ref: r.PathValue("ref"), To: body.To, Require: body.Require, NoIdentity: body.NoIdentity, Timeout: time.Duration(body.TimeoutMs) * time.Millisecond}
	res, err := s.b.Migrate(r.Context(), req, func(p node.MigrateProgress) {
		key := fmt.Sprintf("%s/%d/%d", p.Phase, p.Attempt, p.BytesSent)
		if key != last {
			last = key
			emit(MigrateLine{Progress: &p})
		}
	})
	if err != nil {
		_, code := classify(err)
		emit(MigrateLine{Error: &Error{Message: err.Error(), Code: code}, Result: &res})
		return
	}
	emit(MigrateLine{Result: &res})
}
