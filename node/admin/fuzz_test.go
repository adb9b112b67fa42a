package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// recorder is the fake backend, remembering what reached it.
type recorder struct {
	fake
	spawn   *node.SpawnRequest
	payload []byte
	sent    bool
	migrate *node.MigrateRequest
	create  *node.ChannelDef
	publish *node.PublishRequest
	sub     *recordedSub
}

type recordedSub struct {
	ref, channel string
	token        []byte
}

func (r *recorder) CreateChannel(ctx context.Context, def node.ChannelDef) (node.ChannelInfo, error) {
	r.create = &def
	return r.fake.CreateChannel(ctx, def)
}

func (r *recorder) Publish(ctx context.Context, req node.PublishRequest) (node.PublishResult, error) {
	r.publish = &req
	return r.fake.Publish(ctx, req)
}

func (r *recorder) Subscribe(ctx context.Context, ref, channel string, tok []byte) (node.SubscriptionInfo, error) {
	r.sub = &recordedSub{ref, channel, tok}
	return r.fake.Subscribe(ctx, ref, channel, tok)
}

func (r *recorder) Spawn(ctx context.Context, req node.SpawnRequest) (node.DaemonInfo, error) {
	r.spawn = &req
	return r.fake.Spawn(ctx, req)
}

func (r *recorder) Send(ctx context.Context, ref string, p []byte) (node.Delivery, error) {
	r.sent, r.payload = true, p
	return r.fake.Send(ctx, ref, p)
}

func (r *recorder) SendOnce(ctx context.Context, ref, client string, id uint64, p []byte) (node.Delivery, error) {
	r.sent, r.payload = true, p
	return r.fake.SendOnce(ctx, ref, client, id, p)
}

func (r *recorder) Migrate(ctx context.Context, req node.MigrateRequest, progress func(node.MigrateProgress)) (node.MigrateResult, error) {
	r.migrate = &req
	return r.fake.Migrate(ctx, req, progress)
}

// strictOne decodes body as exactly one JSON value of v's type, with no
// unknown fields and nothing but white space after it.
func strictOne(body []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(v) != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

// Request bodies of the admin API come from operators' tools (and, with a
// token, from the network). Whatever reaches the backend must be a single,
// strictly decoded JSON value, carried over unchanged.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{
		`{"kind":"counter","name":"c2","config":"AAE=","on":"b"}`,
		`{"payload":"/wA="}`,
		`{"to":"b","no_identity":true,"timeout_ms":1500}`,
		`{"kind":"counter"} {"kind":"x"}`,
		`{"payload":"aGk="}garbage`,
		`{"to":"b","timeout_ms":9223372036854775}`,
		`{"to":"b","timeout_ms":-5}`,
		`{"kind":"counter","bogus":1}`,
		`null`,
		``,
		`{"name":"orders/eu","restricted":true,"trusted":["abab"]}`,
		`{"channel":"news","payloads":["AA==",""],"client":"p","first_id":"18446744073709551614","timeout_ms":10}`,
		`{"channel":"news","payloads":[],"token":"wasmesh-token-v1:x"}`,
		`{"channel":"news","payloads":["AA=="],"first_id":"1"}`,
		`{"channel":"news","token":"wasmesh-token-v1:good"}`,
	} {
		for path := range uint8(len(fuzzPaths())) {
			f.Add(path, []byte(s))
		}
	}
	paths := fuzzPaths()
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rec := &recorder{}
		h := Handler(rec, Options{MaxEvent: 4096})
		path := paths[int(which)%len(paths)]
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", path, bytes.NewReader(body)))
		switch {
		case rec.spawn != nil:
			var want SpawnRequest
			if !strictOne(body, &want) {
				t.Fatalf("spawn accepted %q, which is not one strict JSON value", body)
			}
			got := node.SpawnRequest{Kind: want.Kind, Name: want.Name, Config: want.Config, On: want.On}
			if got.Kind != rec.spawn.Kind || got.Name != rec.spawn.Name || got.On != rec.spawn.On || !bytes.Equal(got.Config, rec.spawn.Config) {
				t.Fatalf("spawn request changed on the way: %+v, want %+v", rec.spawn, got)
			}
		case rec.sent:
			var want SendRequest
			if !strictOne(body, &want) {
				t.Fatalf("send accepted %q, which is not one strict JSON value", body)
			}
			if !bytes.Equal(want.Payload, rec.payload) {
				t.Fatalf("payload changed on the way: %x, want %x", rec.payload, want.Payload)
			}
		case rec.migrate != nil:
			var want MigrateBody
			if !strictOne(body, &want) {
				t.Fatalf("migrate accepted %q, which is not one strict JSON value", body)
			}
			if rec.migrate.To != want.To || rec.migrate.To == "" || rec.migrate.NoIdentity != want.NoIdentity {
				t.Fatalf("migrate request changed on the way: %+v, want %+v", rec.migrate, want)
			}
			if rec.migrate.Timeout < 0 || rec.migrate.Timeout.Milliseconds() != want.TimeoutMs || rec.migrate.Timeout%time.Millisecond != 0 {
				t.Fatalf("timeout_ms %d became %v", want.TimeoutMs, rec.migrate.Timeout)
			}
		case rec.create != nil:
			var want ChannelDef
			if !strictOne(body, &want) {
				t.Fatalf("create accepted %q, which is not one strict JSON value", body)
			}
			if want.Name == "" || rec.create.Name != want.Name || rec.create.Restricted != want.Restricted || !slices.Equal(rec.create.Trusted, want.Trusted) {
				t.Fatalf("channel definition changed on the way: %+v, want %+v", rec.create, want)
			}
		case rec.publish != nil:
			var want PublishBody
			if !strictOne(body, &want) {
				t.Fatalf("publish accepted %q, which is not one strict JSON value", body)
			}
			got := rec.publish
			if len(got.Payloads) == 0 || len(got.Payloads) > MaxPublishPayloads || len(got.Payloads) != len(want.Payloads) {
				t.Fatalf("publish of %d payloads reached the node with %d", len(want.Payloads), len(got.Payloads))
			}
			for i := range got.Payloads {
				if !bytes.Equal(got.Payloads[i], want.Payloads[i]) {
					t.Fatalf("payload %d changed on the way: %x, want %x", i, got.Payloads[i], want.Payloads[i])
				}
			}
			if got.Channel != want.Channel || got.Channel == "" || string(got.Token) != want.Token || got.Client != want.Client || got.FirstID != want.FirstID {
				t.Fatalf("publish changed on the way: %+v, want %+v", got, want)
			}
			if (got.Client == "") != (got.FirstID == 0) {
				t.Fatalf("client %q with first id %d reached the node", got.Client, got.FirstID)
			}
			if got.Timeout < 0 || got.Timeout.Milliseconds() != want.TimeoutMs || got.Timeout%time.Millisecond != 0 {
				t.Fatalf("timeout_ms %d became %v", want.TimeoutMs, got.Timeout)
			}
		case rec.sub != nil:
			var want SubscribeBody
			if !strictOne(body, &want) {
				t.Fatalf("subscribe accepted %q, which is not one strict JSON value", body)
			}
			if rec.sub.ref != "c1" || rec.sub.channel != want.Channel || want.Channel == "" || string(rec.sub.token) != want.Token {
				t.Fatalf("subscribe changed on the way: %+v, want %+v", rec.sub, want)
			}
		default:
			if w.Code < 400 {
				t.Fatalf("status %d but the backend was not called", w.Code)
			}
		}
	})
}

func fuzzPaths() []string {
	return []string{"/v1/daemons", "/v1/daemons/c1/events", "/v1/daemons/c1/migrate",
		"/v1/channels", "/v1/publish", "/v1/daemons/c1/subscriptions"}
}

// TestRequestBodyStrictness: found by FuzzRequestBodies. Data after the JSON
// value used to be ignored, and timeout_ms used to overflow time.Duration
// (9223372036854775 ms became -808µs) or pass through negative.
func TestRequestBodyStrictness(t *testing.T) {
	for _, tc := range []struct{ path, body string }{
		{"/v1/daemons", `{"kind":"counter"} {"kind":"x"}`},
		{"/v1/daemons/c1/events", `{"payload":"aGk="}garbage`},
		{"/v1/daemons/c1/migrate", `{"to":"b"}]`},
		{"/v1/daemons/c1/migrate", `{"to":"b","timeout_ms":9223372036854775}`},
		{"/v1/daemons/c1/migrate", `{"to":"b","timeout_ms":-5}`},
	} {
		rec := &recorder{}
		w := httptest.NewRecorder()
		Handler(rec, Options{}).ServeHTTP(w, httptest.NewRequest("POST", tc.path, bytes.NewReader([]byte(tc.body))))
		if w.Code != 400 || rec.spawn != nil || rec.sent || rec.migrate != nil {
			t.Errorf("POST %s %s: status %d, backend reached: %v", tc.path, tc.body, w.Code, rec.spawn != nil || rec.sent || rec.migrate != nil)
		}
	}
	rec := &recorder{}
	w := httptest.NewRecorder()
	Handler(rec, Options{}).ServeHTTP(w, httptest.NewRequest("POST", "/v1/daemons/c1/migrate",
		bytes.NewReader([]byte("{\"to\":\"b\",\"timeout_ms\":9223372036854}\r\n"))))
	if w.Code != 200 || rec.migrate == nil || rec.migrate.Timeout != 9223372036854*time.Millisecond {
		t.Fatalf("largest timeout: status %d, %+v", w.Code, rec.migrate)
	}
}
