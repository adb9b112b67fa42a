package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// chanFake is the channel half of the fake backend: channels homed on
// "n2", subscriptions of daemon c1, and every publish that reached it.
type chanFake struct {
	defs      []node.ChannelDef
	subs      []node.SubscriptionInfo
	published []node.PublishRequest
	seq       uint64
	unsubbed  string
}

func (f *fake) channel(name string) (node.ChannelDef, error) {
	for _, d := range f.ch.defs {
		if d.Name == name {
			return d, nil
		}
	}
	return node.ChannelDef{}, fmt.Errorf("%w: %q", node.ErrChannelNotFound, name)
}

func (f *fake) CreateChannel(_ context.Context, def node.ChannelDef) (node.ChannelInfo, error) {
	if old, err := f.channel(def.Name); err == nil && old.Restricted != def.Restricted {
		return node.ChannelInfo{}, fmt.Errorf("%w: %q", node.ErrChannelExists, def.Name)
	} else if err != nil {
		f.ch.defs = append(f.ch.defs, def)
	}
	return node.ChannelInfo{Name: def.Name, Home: "n2", Restricted: def.Restricted, Trusted: def.Trusted, Stream: "0000000000000001"}, nil
}

func (f *fake) Channels(context.Context) ([]node.ChannelInfo, error) {
	var out []node.ChannelInfo
	for _, d := range f.ch.defs {
		out = append(out, node.ChannelInfo{Name: d.Name, Home: "n2", Restricted: d.Restricted, Seq: f.ch.seq,
			Subscribers: []node.ChannelSubscriber{{Daemon: "00000000000000aa", Node: "local", Queued: 3}}})
	}
	return out, nil
}

func (f *fake) Subscribe(_ context.Context, ref, channel string, tok []byte) (node.SubscriptionInfo, error) {
	d, err := f.find(ref)
	if err != nil {
		return node.SubscriptionInfo{}, err
	}
	def, err := f.channel(channel)
	if err != nil {
		return node.SubscriptionInfo{}, err
	}
	if def.Restricted && string(tok) != "wasmesh-token-v1:good" {
		return node.SubscriptionInfo{}, fmt.Errorf("%w: token %q", node.ErrNotPermitted, tok)
	}
	s := node.SubscriptionInfo{Channel: channel, Daemon: d.ID, Sub: "7", Token: tok != nil}
	f.ch.subs = append(f.ch.subs, s)
	return s, nil
}

func (f *fake) Unsubscribe(_ context.Context, ref, channel string) error {
	if _, err := f.find(ref); err != nil {
		return err
	}
	i := slices.IndexFunc(f.ch.subs, func(s node.SubscriptionInfo) bool { return s.Channel == channel })
	if i < 0 {
		return fmt.Errorf("%w: %s", node.ErrNotSubscribed, channel)
	}
	f.ch.subs = slices.Delete(f.ch.subs, i, i+1)
	f.ch.unsubbed = channel
	return nil
}

func (f *fake) Subscriptions(_ context.Context, ref string) ([]node.SubscriptionInfo, error) {
	if _, err := f.find(ref); err != nil {
		return nil, err
	}
	return f.ch.subs, nil
}

func (f *fake) Publish(_ context.Context, req node.PublishRequest) (node.PublishResult, error) {
	f.ch.published = append(f.ch.published, req)
	if req.Channel == "full" {
		return node.PublishResult{}, fmt.Errorf("%w: subscriber queue full past %v", node.ErrChannelFull, req.Timeout)
	}
	if _, err := f.channel(req.Channel); err != nil {
		return node.PublishResult{}, err
	}
	res := node.PublishResult{Channel: req.Channel, Home: "n2", Accepted: len(req.Payloads), FirstSeq: f.ch.seq + 1}
	f.ch.seq += uint64(len(req.Payloads))
	res.LastSeq = f.ch.seq
	return res, nil
}

func TestChannelsThroughClient(t *testing.T) {
	f, c := serve(t, Options{})
	ctx := context.Background()

	cs, err := c.Channels(ctx)
	if err != nil || cs == nil || len(cs) != 0 {
		t.Fatalf("no channels = %#v, %v (want [], not null)", cs, err)
	}
	trusted := strings.Repeat("ab", 32)
	info, err := c.CreateChannel(ctx, ChannelDef{Name: "orders/eu", Restricted: true, Trusted: []string{trusted}})
	if err != nil || info.Home != "n2" || !info.Restricted || len(info.Trusted) != 1 || info.Trusted[0] != trusted {
		t.Fatalf("create = %+v, %v", info, err)
	}
	_, err = c.CreateChannel(ctx, ChannelDef{Name: "orders/eu"})
	wantAPIError(t, err, http.StatusConflict, CodeChannelExists)
	if !errors.Is(err, node.ErrChannelExists) {
		t.Fatalf("%v does not match node.ErrChannelExists", err)
	}
	if _, err := c.CreateChannel(ctx, ChannelDef{Name: "news"}); err != nil {
		t.Fatal(err)
	}
	cs, err = c.Channels(ctx)
	if err != nil || len(cs) != 2 || cs[0].Name != "orders/eu" || cs[1].Subscribers[0].Queued != 3 {
		t.Fatalf("channels = %+v, %v", cs, err)
	}

	res, err := c.Publish(ctx, PublishBody{Channel: "news", Payloads: [][]byte{{0xff, 0}, []byte("b")}, Client: "pub-1", FirstID: 1 << 63, TimeoutMs: 1500})
	if err != nil || res.Accepted != 2 || res.FirstSeq != 1 || res.LastSeq != 2 || res.Home != "n2" {
		t.Fatalf("publish = %+v, %v", res, err)
	}
	got := f.ch.published[0]
	if got.Channel != "news" || !bytes.Equal(got.Payloads[0], []byte{0xff, 0}) || got.Client != "pub-1" || got.FirstID != 1<<63 || got.Timeout != 1500*time.Millisecond || got.Token != nil {
		t.Fatalf("publish reached the node as %+v", got)
	}
	_, err = c.Publish(ctx, PublishBody{Channel: "full", Payloads: [][]byte{{1}}})
	wantAPIError(t, err, http.StatusTooManyRequests, CodeChannelFull)
	if !errors.Is(err, node.ErrChannelFull) {
		t.Fatalf("%v does not match node.ErrChannelFull", err)
	}
	_, err = c.Publish(ctx, PublishBody{Channel: "nope", Payloads: [][]byte{{1}}})
	wantAPIError(t, err, http.StatusNotFound, CodeChannelNotFound)

	_, err = c.Subscribe(ctx, "c1", "orders/eu", "")
	wantAPIError(t, err, http.StatusForbidden, CodeNotPermitted)
	s, err := c.Subscribe(ctx, "c1", "orders/eu", "wasmesh-token-v1:good")
	if err != nil || s.Daemon != "00000000000000aa" || !s.Token || s.Sub != "7" {
		t.Fatalf("subscribe = %+v, %v", s, err)
	}
	_, err = c.Subscribe(ctx, "ghost", "news", "")
	wantAPIError(t, err, http.StatusNotFound, CodeNotFound)
	subs, err := c.Subscriptions(ctx, "c1")
	if err != nil || len(subs) != 1 || subs[0].Channel != "orders/eu" {
		t.Fatalf("subscriptions = %+v, %v", subs, err)
	}
	// The name's '/' survives the path: {channel...} takes the rest.
	if err := c.Unsubscribe(ctx, "c1", "orders/eu"); err != nil || f.ch.unsubbed != "orders/eu" {
		t.Fatalf("unsubscribe: %v (%q)", err, f.ch.unsubbed)
	}
	err = c.Unsubscribe(ctx, "c1", "orders/eu")
	wantAPIError(t, err, http.StatusNotFound, CodeNotSubscribed)
	subs, err = c.Subscriptions(ctx, "c1")
	if err != nil || subs == nil || len(subs) != 0 {
		t.Fatalf("no subscriptions = %#v, %v (want [], not null)", subs, err)
	}
}

func TestChannelRequestsRefused(t *testing.T) {
	many := `{"channel":"news","payloads":[` + strings.TrimSuffix(strings.Repeat(`"",`, MaxPublishPayloads+1), ",") + `]}`
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/channels", `{"name":"x"`, 400, CodeBadRequest},
		{"POST", "/v1/channels", `{"name":"x","trust":["ab"]}`, 400, CodeBadRequest},
		{"POST", "/v1/channels", `{"restricted":true}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news","payloads":["AA=="],"tokn":"x"}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news","payloads":[]}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news"}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"payloads":["AA=="]}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news","payloads":["!!"]}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news","payloads":["AA=="],"first_id":"3"}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news","payloads":["AA=="],"client":"c","first_id":3}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news","payloads":["AA=="],"client":"c"}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news","payloads":["AA==","AA=="],"client":"c","first_id":"18446744073709551615"}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news","payloads":["AA=="],"timeout_ms":-1}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news","payloads":["AA=="],"timeout_ms":9223372036855}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news","payloads":["AA=="]} {}`, 400, CodeBadRequest},
		{"POST", "/v1/publish", many, 400, CodeBadRequest},
		{"POST", "/v1/publish", `{"channel":"news","payloads":["` + strings.Repeat("A", 1<<20) + `"]}`, 413, CodeTooLarge},
		{"POST", "/v1/daemons/c1/subscriptions", `{"channel":"news","tok":"x"}`, 400, CodeBadRequest},
		{"POST", "/v1/daemons/c1/subscriptions", `{}`, 400, CodeBadRequest},
		{"DELETE", "/v1/daemons/c1/subscriptions/", "", 400, CodeBadRequest},
		{"PUT", "/v1/channels", "", 404, CodeNotFound},
	} {
		f := &fake{}
		// MaxBody bounds a publish, not MaxEvent: the large body is refused
		// only because MaxBody is small here.
		h := Handler(f, Options{MaxEvent: 64, MaxBody: 1 << 20})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		name := tc.body
		if len(name) > 80 {
			name = name[:80] + "..."
		}
		if rec.Code != tc.status {
			t.Errorf("%s %s %s: status %d, want %d (%s)", tc.method, tc.path, name, rec.Code, tc.status, rec.Body)
			continue
		}
		var e Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != tc.code || e.Message == "" {
			t.Errorf("%s %s %s: body %q, want code %s", tc.method, tc.path, name, rec.Body, tc.code)
		}
		if len(f.ch.published) != 0 || len(f.ch.defs) != 0 || len(f.ch.subs) != 0 {
			t.Errorf("%s %s %s reached the backend", tc.method, tc.path, name)
		}
	}
}

// A publish may be far larger than one event: MaxBody bounds it, with
// MaxPublishPayloads payloads at most.
func TestPublishBoundedByMaxBody(t *testing.T) {
	f := &fake{ch: chanFake{defs: []node.ChannelDef{{Name: "news"}}}}
	h := Handler(f, Options{MaxEvent: 64, MaxBody: 1 << 20})
	body := `{"channel":"news","payloads":[` + strings.TrimSuffix(strings.Repeat(`"AA==",`, MaxPublishPayloads), ",") + `]}`
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/publish", strings.NewReader(body)))
	var res PublishResult
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &res) != nil || res.Accepted != MaxPublishPayloads || res.LastSeq != MaxPublishPayloads {
		t.Fatalf("status %d, %s", rec.Code, rec.Body)
	}
}
