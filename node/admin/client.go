package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/wasmesh/wasmesh/node"
)

// APIError is an error response from a node.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Is matches the node sentinel of e's code (node.ErrorClasses), so
// errors.Is(err, node.ErrMigration) holds on the client as on the node.
func (e *APIError) Is(target error) bool {
	c, ok := node.ClassByCode(e.Code)
	return ok && c.Sentinel != nil && c.Sentinel == target
}

// ExitCode is the CLI's exit status for e: 2 when the node refused the
// input, 1 when the work failed.
func (e *APIError) ExitCode() int {
	if c, ok := node.ClassByCode(e.Code); ok {
		return c.Exit
	}
	return 1
}

// apiError builds the client's error from a response's status and body.
func apiError(status int, e Error) *APIError {
	return &APIError{Status: status, Code: e.Code, Message: e.Message}
}

// ErrUnreachable wraps a failure to talk to the node at all.
var ErrUnreachable = errors.New("cannot reach the node")

// Client talks to one node's admin API.
type Client struct {
	Base  string // e.g. http://127.0.0.1:7401
	Token string
	HTTP  *http.Client
}

// NewClient returns a client for base.
func NewClient(base, token string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--node %q is not an http(s) URL like http://127.0.0.1:7401", base)
	}
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{}}, nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %v (is `wasmesh node` running? set --node or WASMESH_NODE)", ErrUnreachable, c.Base, rootCause(err))
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e = Error{Message: fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b))), Code: CodeInternal}
		}
		return nil, apiError(resp.StatusCode, e)
	}
	return resp, nil
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func (c *Client) json(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, method, path, body, ct)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("bad response from %s: %w", c.Base, err)
	}
	return nil
}

func ref(r string) string { return url.PathEscape(r) }

// Deploy uploads a module read from r.
func (c *Client) Deploy(ctx context.Context, r io.Reader, kind string) (KindInfo, error) {
	path := "/v1/modules"
	if kind != "" {
		path += "?kind=" + url.QueryEscape(kind)
	}
	var out KindInfo
	resp, err := c.do(ctx, http.MethodPost, path, r, "application/wasm")
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out, err
}

// Spawn starts a daemon.
func (c *Client) Spawn(ctx context.Context, req SpawnRequest) (DaemonInfo, error) {
	var out DaemonInfo
	err := c.json(ctx, http.MethodPost, "/v1/daemons", req, &out)
	return out, err
}

// Send delivers one event.
func (c *Client) Send(ctx context.Context, daemon string, payload []byte) (SendResponse, error) {
	var out SendResponse
	err := c.json(ctx, http.MethodPost, "/v1/daemons/"+ref(daemon)+"/events", SendRequest{Payload: payload}, &out)
	return out, err
}

// SendOnce sends an event exactly once under a client event id (see
// node.Node.SendOnce); resending after an error is always safe.
func (c *Client) SendOnce(ctx context.Context, daemon, client string, eventID uint64, payload []byte) (SendResponse, error) {
	var out SendResponse
	err := c.json(ctx, http.MethodPost, "/v1/daemons/"+ref(daemon)+"/events", SendRequest{Payload: payload, Client: client, EventID: eventID}, &out)
	return out, err
}

// Ps lists the cluster's daemons.
func (c *Client) Ps(ctx context.Context) (PsResponse, error) {
	var out PsResponse
	err := c.json(ctx, http.MethodGet, "/v1/daemons", nil, &out)
	return out, err
}

// Stats returns one daemon.
func (c *Client) Stats(ctx context.Context, daemon string) (DaemonInfo, error) {
	var out DaemonInfo
	err := c.json(ctx, http.MethodGet, "/v1/daemons/"+ref(daemon), nil, &out)
	return out, err
}

// Stop stops a daemon.
func (c *Client) Stop(ctx context.Context, daemon string) (DaemonInfo, error) {
	var out DaemonInfo
	err := c.json(ctx, http.MethodDelete, "/v1/daemons/"+ref(daemon), nil, &out)
	return out, err
}

// Snapshot returns signed snapshot bytes.
func (c *Client) Snapshot(ctx context.Context, daemon string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/daemons/"+ref(daemon)+"/snapshot", nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// Restore continues a daemon from snapshot bytes.
func (c *Client) Restore(ctx context.Context, data []byte, kind string) (DaemonInfo, error) {
	path := "/v1/restore"
	if kind != "" {
		path += "?kind=" + url.QueryEscape(kind)
	}
	var out DaemonInfo
	resp, err := c.do(ctx, http.MethodPost, path, bytes.NewReader(data), "application/octet-stream")
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out, err
}

// Logs returns a daemon's guest log lines.
func (c *Client) Logs(ctx context.Context, daemon string) ([]LogLine, error) {
	var out []LogLine
	err := c.json(ctx, http.MethodGet, "/v1/daemons/"+ref(daemon)+"/logs", nil, &out)
	return out, err
}

// Nodes lists cluster members.
func (c *Client) Nodes(ctx context.Context) ([]NodeInfo, error) {
	var out []NodeInfo
	err := c.json(ctx, http.MethodGet, "/v1/nodes", nil, &out)
	return out, err
}

// Migrate moves a daemon to another node; progress (may be nil) receives the
// phases as the node reports them.
func (c *Client) Migrate(ctx context.Context, daemon string, body MigrateBody, progress func(MigrateProgress)) (MigrateResult, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return MigrateResult{}, err
	}
	return progressStream[MigrateProgress, MigrateResult](ctx, c, "/v1/daemons/"+ref(daemon)+"/migrate", b, "migration", progress)
}

// progressStream posts body to path and reads the NDJSON answer of a long
// operation (migrate, drain): progress lines, then the result or an error
// (with the result so far). what names the operation in errors.
func progressStream[P, R any](ctx context.Context, c *Client, path string, body []byte, what string, progress func(P)) (R, error) {
	var zero R
	resp, err := c.do(ctx, http.MethodPost, path, bytes.NewReader(body), "application/json")
	if err != nil {
		return zero, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var l struct {
			Progress *P     `json:"progress,omitempty"`
			Result   *R     `json:"result,omitempty"`
			Error    *Error `json:"error,omitempty"`
		}
		if err := dec.Decode(&l); err != nil {
			return zero, fmt.Errorf("%s stream from %s ended early: %w", what, c.Base, err)
		}
		switch {
		case l.Error != nil:
			res := zero
			if l.Result != nil {
				res = *l.Result
			}
			// The stream had already answered 200: the status is the
			// one the error's code has everywhere else.
			status := http.StatusInternalServerError
			if c, ok := node.ClassByCode(l.Error.Code); ok {
				status = c.HTTP
			}
			return res, apiError(status, *l.Error)
		case l.Result != nil:
			return *l.Result, nil
		case l.Progress != nil && progress != nil:
			progress(*l.Progress)
		}
	}
}
