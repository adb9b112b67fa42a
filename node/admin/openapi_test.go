package admin

import (
	"encoding"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmesh/wasmesh/node"
)

type openAPI struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
	Comp    struct {
		Schemas map[string]schema `json:"schemas"`
	} `json:"components"`
}

type schema struct {
	Ref        string            `json:"$ref,omitempty"`
	Type       string            `json:"type,omitempty"`
	Format     string            `json:"format,omitempty"`
	Items      *schema           `json:"items,omitempty"`
	Properties map[string]schema `json:"properties,omitempty"`
	Additional *schema           `json:"additionalProperties,omitempty"`
}

func loadOpenAPI(t *testing.T) openAPI {
	t.Helper()
	var doc openAPI
	dec := json.NewDecoder(strings.NewReader(string(OpenAPI())))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: version %q, want 3.x", doc.OpenAPI)
	}
	return doc
}

// apiPattern reports whether a route belongs to the documented API: the
// versioned routes and the two unversioned ones. Other routes (the
// dashboard's pages and assets) are not part of it.
func apiPattern(path string) bool {
	return strings.HasPrefix(path, "/v1/") || path == "/healthz" || path == "/metrics"
}

// TestOpenAPIMatchesRoutes compares the routes the handler registers with
// the document's paths and methods, both ways.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := &server{b: &fake{}, opts: Options{Metrics: prometheus.NewRegistry()}}
	registered := map[string]bool{}
	for _, rt := range s.routes() {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok {
			t.Fatalf("route %q has no method", rt.pattern)
		}
		// The document has no {x...} form; the pattern's rest-of-path
		// wildcard is a plain parameter there.
		path = strings.ReplaceAll(path, "...}", "}")
		if apiPattern(path) {
			registered[strings.ToLower(method)+" "+path] = true
		}
	}
	doc := loadOpenAPI(t)
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				documented[method+" "+path] = true
			}
		}
	}
	var missing, extra []string
	for k := range registered {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !registered[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes not in openapi.json: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("openapi.json paths with no route: %v", extra)
	}
	if len(registered) < 25 {
		t.Errorf("only %d API routes registered; the table is incomplete", len(registered))
	}
}

// documentedTypes are the Go types behind the document's schemas.
func documentedTypes() map[string]reflect.Type {
	ts := []any{
		KindInfo{}, DaemonInfo{}, NodeInfo{}, LogLine{}, MigrateProgress{}, MigrateResult{},
		ExpectRequest{}, ExpectResult{}, MigrateBody{}, MigrateLine{}, SpawnRequest{}, SendRequest{},
		SendResponse{}, PsResponse{}, Error{}, StreamLine{}, StreamAnswer{}, StreamEnd{},
		DrainBody{}, DrainLine{}, DrainProgress{}, DrainResult{}, DrainDaemon{},
		ChannelDef{}, ChannelInfo{}, ChannelSubscriber{}, SubscriptionInfo{}, PublishBody{}, PublishResult{},
		SubscribeBody{}, node.SubscriptionMoved{},
	}
	m := map[string]reflect.Type{}
	for _, v := range ts {
		t := reflect.TypeOf(v)
		m[t.Name()] = t
	}
	return m
}

var (
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	timeType      = reflect.TypeFor[time.Time]()
)

// schemaOf is the JSON schema encoding/json gives t, with named structs as
// references. The test compares it with the document's schemas, so a field
// added, renamed or retyped in Go without the document fails.
func schemaOf(t reflect.Type, top bool) schema {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return schema{Type: "string", Format: "date-time"}
	case t.Kind() == reflect.Struct && !top:
		return schema{Ref: "#/components/schemas/" + t.Name()}
	case t == reflect.TypeFor[node.Seqs]():
		return schema{Type: "object", Additional: &schema{Type: "string", Format: "uint64"}}
	case t.Implements(jsonMarshaler) || t.Implements(textMarshaler):
		return schema{Type: "string"}
	}
	switch t.Kind() {
	case reflect.String:
		return schema{Type: "string"}
	case reflect.Bool:
		return schema{Type: "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return schema{Type: "integer", Format: "int64"}
	case reflect.Uint64, reflect.Uint, reflect.Uint32:
		return schema{Type: "integer", Format: "uint64"}
	case reflect.Float64:
		return schema{Type: "number"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return schema{Type: "string", Format: "byte"}
		}
		it := schemaOf(t.Elem(), false)
		return schema{Type: "array", Items: &it}
	case reflect.Map:
		v := schemaOf(t.Elem(), false)
		return schema{Type: "object", Additional: &v}
	case reflect.Struct:
		s := schema{Type: "object", Properties: map[string]schema{}}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if name == "" {
				name = f.Name
			}
			fs := schemaOf(f.Type, false)
			if slices.Contains(strings.Split(opts, ","), "string") {
				fs = schema{Type: "string", Format: "uint64"}
			}
			s.Properties[name] = fs
		}
		return s
	}
	return schema{Type: "unknown:" + t.String()}
}

func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	types := documentedTypes()
	for name, typ := range types {
		got, ok := doc.Comp.Schemas[name]
		if !ok {
			w, _ := json.Marshal(schemaOf(typ, true))
			t.Errorf("schema %s missing from openapi.json; from the Go type: %s", name, w)
			continue
		}
		want := schemaOf(typ, true)
		if !reflect.DeepEqual(got, want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			t.Errorf("schema %s:\n document %s\n Go type  %s", name, g, w)
		}
	}
	for name := range doc.Comp.Schemas {
		if _, ok := types[name]; !ok {
			t.Errorf("openapi.json schema %s has no Go type in documentedTypes", name)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	srv := httptest.NewServer(Handler(&fake{}, Options{Token: "sekrit-token-0123"}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer sekrit-token-0123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc["openapi"] == nil {
		t.Fatalf("not an OpenAPI document: %v %v", err, doc)
	}
}
