package admin

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// Re-exported so clients need only this package.
type (
	ChannelDef        = node.ChannelDef
	ChannelInfo       = node.ChannelInfo
	ChannelSubscriber = node.ChannelSubscriber
	SubscriptionInfo  = node.SubscriptionInfo
	PublishResult     = node.PublishResult
)

// Channel error codes (node.ErrorClasses).
const (
	CodeChannelNotFound = node.CodeChannelNotFound
	CodeChannelExists   = node.CodeChannelExists
	CodeChannelFull     = node.CodeChannelFull
	CodeNotPermitted    = node.CodeNotPermitted
	CodeNotSubscribed   = node.CodeNotSubscribed
)

// MaxPublishPayloads bounds the payloads of one publish request; a client
// with more sends several requests (the CLI sends batches of 10,000).
const MaxPublishPayloads = 100_000

// PublishBody is the body of POST /v1/publish; JSON carries the payloads as
// base64.
type PublishBody struct {
	Channel  string   `json:"channel"`
	Payloads [][]byte `json:"payloads"`
	// Token is a permission token's text form (wasmesh-token-v1:…), needed
	// on a restricted channel.
	Token string `json:"token,omitempty"`
	// Client and FirstID make the publish exactly-once across retries of
	// the request (node.PublishRequest). FirstID is a decimal string, so no
	// JSON reader rounds it.
	Client  string `json:"client,omitempty"`
	FirstID uint64 `json:"first_id,string,omitempty"`
	// TimeoutMs bounds how long a full channel may hold the publish (0: the
	// node's default).
	TimeoutMs int64 `json:"timeout_ms,omitempty"`
}

// SubscribeBody is the body of POST /v1/daemons/{ref}/subscriptions.
type SubscribeBody struct {
	Channel string `json:"channel"`
	Token   string `json:"token,omitempty"`
}

func (s *server) channelRoutes(route func(string, http.HandlerFunc)) {
	route("POST /v1/channels", s.createChannel)
	route("GET /v1/channels", s.channels)
	route("POST /v1/publish", s.publish)
	route("GET /v1/daemons/{ref}/subscriptions", s.subscriptions)
	route("POST /v1/daemons/{ref}/subscriptions", s.subscribe)
	// Channel names contain '/': the rest of the path is the name.
	route("DELETE /v1/daemons/{ref}/subscriptions/{channel...}", s.unsubscribe)
}

func (s *server) createChannel(w http.ResponseWriter, r *http.Request) {
	var def ChannelDef
	if err := s.decode(w, r, &def); err != nil {
		writeError(w, err)
		return
	}
	if def.Name == "" {
		writeError(w, fmt.Errorf("%w: a channel needs a name", node.ErrBadRequest))
		return
	}
	info, err := s.b.CreateChannel(r.Context(), def)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, info)
}

func (s *server) channels(w http.ResponseWriter, r *http.Request) {
	cs, err := s.b.Channels(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, nonNil(cs))
}

// msTimeout turns a timeout_ms field into a duration, refusing what would
// be negative or overflow time.Duration (a huge value would wrap to a tiny
// or negative timeout).
func msTimeout(ms int64) (time.Duration, error) {
	if ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		return 0, fmt.Errorf("%w: timeout_ms %d out of range", node.ErrBadRequest, ms)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func (s *server) publish(w http.ResponseWriter, r *http.Request) {
	var body PublishBody
	// Bounded like an upload: a batch of payloads is many events' worth.
	if err := s.decodeLimit(w, r, &body, s.opts.MaxBody); err != nil {
		writeError(w, err)
		return
	}
	req, err := publishRequest(body)
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := s.b.Publish(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, res)
}

// publishRequest checks a publish body before the node sees it.
func publishRequest(body PublishBody) (node.PublishRequest, error) {
	switch {
	case body.Channel == "":
		return node.PublishRequest{}, fmt.Errorf("%w: a publish needs a channel", node.ErrBadRequest)
	case len(body.Payloads) == 0:
		return node.PublishRequest{}, fmt.Errorf("%w: nothing to publish: payloads is empty", node.ErrBadRequest)
	case len(body.Payloads) > MaxPublishPayloads:
		return node.PublishRequest{}, fmt.Errorf("%w: %d payloads in one publish, at most %d (send several)", node.ErrBadRequest, len(body.Payloads), MaxPublishPayloads)
	case body.Client == "" && body.FirstID != 0:
		return node.PublishRequest{}, fmt.Errorf("%w: first_id needs a client", node.ErrBadRequest)
	case body.Client != "" && body.FirstID == 0:
		return node.PublishRequest{}, fmt.Errorf("%w: with a client, first_id is needed (client message ids start at 1)", node.ErrBadRequest)
	case body.Client != "" && body.FirstID > math.MaxUint64-uint64(len(body.Payloads)-1):
		return node.PublishRequest{}, fmt.Errorf("%w: first_id %d leaves no room for %d payloads", node.ErrBadRequest, body.FirstID, len(body.Payloads))
	}
	timeout, err := msTimeout(body.TimeoutMs)
	if err != nil {
		return node.PublishRequest{}, err
	}
	req := node.PublishRequest{Channel: body.Channel, Payloads: body.Payloads, Client: body.Client, FirstID: body.FirstID, Timeout: timeout}
	if body.Token != "" {
		req.Token = []byte(body.Token)
	}
	return req, nil
}

func (s *server) subscriptions(w http.ResponseWriter, r *http.Request) {
	subs, err := s.b.Subscriptions(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, nonNil(subs))
}

func (s *server) subscribe(w http.ResponseWriter, r *http.Request) {
	var body SubscribeBody
	if err := s.decode(w, r, &body); err != nil {
		writeError(w, err)
		return
	}
	if body.Channel == "" {
		writeError(w, fmt.Errorf("%w: a subscription needs a channel", node.ErrBadRequest))
		return
	}
	var tok []byte
	if body.Token != "" {
		tok = []byte(body.Token)
	}
	info, err := s.b.Subscribe(r.Context(), r.PathValue("ref"), body.Channel, tok)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, info)
}

func (s *server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("channel")
	if ch == "" {
		writeError(w, fmt.Errorf("%w: DELETE .../subscriptions/CHANNEL needs a channel", node.ErrBadRequest))
		return
	}
	if err := s.b.Unsubscribe(r.Context(), r.PathValue("ref"), ch); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, struct{}{})
}

// CreateChannel defines a channel at its home; the same definition again
// is a no-op, a different one ErrChannelExists.
func (c *Client) CreateChannel(ctx context.Context, def ChannelDef) (ChannelInfo, error) {
	var out ChannelInfo
	err := c.json(ctx, http.MethodPost, "/v1/channels", def, &out)
	return out, err
}

// Channels lists the cluster's channels.
func (c *Client) Channels(ctx context.Context) ([]ChannelInfo, error) {
	var out []ChannelInfo
	err := c.json(ctx, http.MethodGet, "/v1/channels", nil, &out)
	return out, err
}

// Publish publishes body's payloads to its channel, in order; at most
// MaxPublishPayloads at once.
func (c *Client) Publish(ctx context.Context, body PublishBody) (PublishResult, error) {
	var out PublishResult
	err := c.json(ctx, http.MethodPost, "/v1/publish", body, &out)
	return out, err
}

// Subscribe subscribes daemon (id or name) to channel; token is a
// permission token's text form, "" on an open channel.
func (c *Client) Subscribe(ctx context.Context, daemon, channel, token string) (SubscriptionInfo, error) {
	var out SubscriptionInfo
	err := c.json(ctx, http.MethodPost, "/v1/daemons/"+ref(daemon)+"/subscriptions", SubscribeBody{Channel: channel, Token: token}, &out)
	return out, err
}

// Unsubscribe removes daemon's subscription to channel.
func (c *Client) Unsubscribe(ctx context.Context, daemon, channel string) error {
	return c.json(ctx, http.MethodDelete, "/v1/daemons/"+ref(daemon)+"/subscriptions/"+channelPath(channel), nil, nil)
}

// Subscriptions lists daemon's subscriptions (its ledger).
func (c *Client) Subscriptions(ctx context.Context, daemon string) ([]SubscriptionInfo, error) {
	var out []SubscriptionInfo
	err := c.json(ctx, http.MethodGet, "/v1/daemons/"+ref(daemon)+"/subscriptions", nil, &out)
	return out, err
}

// channelPath escapes a channel name segment by segment: its '/' stay path
// separators, which the {channel...} wildcard takes back as one name.
func channelPath(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = ref(s)
	}
	return strings.Join(segs, "/")
}
