package cluster

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

func sampleMeta() NodeMeta {
	return NodeMeta{
		NodeID:             "node-7f3a9c",
		QUICAddr:           "127.0.0.1:4433",
		X25519Public:       bytes.Repeat([]byte{0xAB}, 32),
		X25519Signature:    bytes.Repeat([]byte{0xCD}, 64),
		Capabilities:       Capabilities{Tags: []string{"gpu"}, Values: map[string]string{"zone": "eu-1", "memory_gb": "64"}},
		Load:               3,
		MigrationSupported: true,
		Version:            "0.1.0",
		AdminURL:           "http://127.0.0.1:7401",
	}
}

func TestMetaRoundTrip(t *testing.T) {
	in := sampleMeta()
	b, err := EncodeMeta(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MetaMaxSize {
		t.Fatalf("encoded %d bytes", len(b))
	}
	out, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
	// Deterministic: memberlist compares bytes to detect an update.
	b2, _ := EncodeMeta(out)
	if !bytes.Equal(b, b2) {
		t.Fatal("encoding is not deterministic")
	}

	minimal := NodeMeta{NodeID: "n"}
	b, err = EncodeMeta(minimal)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeMeta(b); err != nil || !reflect.DeepEqual(got, minimal) {
		t.Fatalf("minimal: %+v %v", got, err)
	}
}

func TestMetaTooLarge(t *testing.T) {
	m := sampleMeta()
	for i := range 40 {
		m.Capabilities.Values[strings.Repeat("k", 10)+string(rune('a'+i%26))+string(rune('a'+i/26))] = strings.Repeat("v", 20)
	}
	_, err := EncodeMeta(m)
	var tl *MetaTooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("err = %v, want *MetaTooLargeError", err)
	}
	if tl.Limit != MetaMaxSize || tl.Size <= MetaMaxSize {
		t.Fatalf("sizes: %+v", tl)
	}
}

func TestMetaValidate(t *testing.T) {
	bad := []func(*NodeMeta){
		func(m *NodeMeta) { m.NodeID = "" },
		func(m *NodeMeta) { m.NodeID = "has space" },
		func(m *NodeMeta) { m.QUICAddr = "no-port" },
		func(m *NodeMeta) { m.QUICAddr = "host:0" },
		func(m *NodeMeta) { m.QUICAddr = ":4433" },
		func(m *NodeMeta) { m.X25519Public = []byte{1, 2, 3} },
		func(m *NodeMeta) { m.X25519Signature = make([]byte, MaxSignatureLen+1) },
		func(m *NodeMeta) { m.Load = -1 },
		func(m *NodeMeta) { m.Version = "1.0\n" },
		func(m *NodeMeta) { m.Capabilities.Tags = []string{"bad tag"} },
		func(m *NodeMeta) { m.AdminURL = "127.0.0.1:7401" },
		func(m *NodeMeta) { m.AdminURL = "ftp://127.0.0.1:7401" },
		func(m *NodeMeta) { m.AdminURL = "http://127.0.0.1" },
		func(m *NodeMeta) { m.AdminURL = "http://h:1/" + strings.Repeat("x", MaxAdminURLLen) },
		func(m *NodeMeta) { m.AdminURL = "http://h :1" },
	}
	for i, mut := range bad {
		m := sampleMeta()
		mut(&m)
		if _, err := EncodeMeta(m); !errors.Is(err, ErrInvalidMeta) {
			t.Errorf("case %d: EncodeMeta err = %v, want ErrInvalidMeta", i, err)
		}
	}
}

// rawMeta encodes an arbitrary map in the v1 envelope so decoding of
// malformed but well-framed input can be exercised.
func rawMeta(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(metaFormatV1)
	if err := msgpack.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeMetaStrict(t *testing.T) {
	good, err := EncodeMeta(sampleMeta())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":           nil,
		"other format":    append([]byte{2}, good[1:]...),
		"trailing":        append(append([]byte{}, good...), 0xc0),
		"truncated":       good[:len(good)-3],
		"unknown key":     rawMeta(t, map[string]any{"id": "n", "zz": 1}),
		"wrong type":      rawMeta(t, map[string]any{"id": 5}),
		"no node id":      rawMeta(t, map[string]any{"l": 1}),
		"negative load":   rawMeta(t, map[string]any{"id": "n", "l": -4}),
		"short x25519":    rawMeta(t, map[string]any{"id": "n", "xk": []byte{1}}),
		"unsorted tags":   rawMeta(t, map[string]any{"id": "n", "t": []string{"b", "a"}}),
		"bad tag":         rawMeta(t, map[string]any{"id": "n", "t": []string{"a b"}}),
		"nil map":         {metaFormatV1, 0xc0},
		"huge map claim":  {metaFormatV1, 0xdf, 0x7f, 0xff, 0xff, 0xff},
		"huge kv claim":   {metaFormatV1, 0x82, 0xa2, 'i', 'd', 0xa1, 'n', 0xa2, 'k', 'v', 0xdf, 0x7f, 0xff, 0xff, 0xff},
		"huge bytes":      {metaFormatV1, 0x81, 0xa2, 'x', 'k', 0xc6, 0x7f, 0xff, 0xff, 0xff},
		"oversize":        append([]byte{metaFormatV1}, make([]byte, MetaMaxSize)...),
		"repeated key":    {metaFormatV1, 0x82, 0xa2, 'i', 'd', 0xa1, 'n', 0xa2, 'i', 'd', 0xa1, 'm'},
		"bad admin url":   rawMeta(t, map[string]any{"id": "n", "a": "javascript:x"}),
		"admin not str":   rawMeta(t, map[string]any{"id": "n", "a": 7}),
		"huge tags claim": {metaFormatV1, 0x82, 0xa2, 'i', 'd', 0xa1, 'n', 0xa1, 't', 0xdd, 0x7f, 0xff, 0xff, 0xff},
	}
	for name, b := range cases {
		if _, err := DecodeMeta(b); !errors.Is(err, ErrInvalidMeta) {
			t.Errorf("%s: err = %v, want ErrInvalidMeta", name, err)
		}
	}
	if _, err := DecodeMeta(cases["other format"]); !errors.Is(err, ErrUnsupportedMetaFormat) {
		t.Errorf("other format: err = %v, want ErrUnsupportedMetaFormat", err)
	}
}

func TestPropMetaRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := NodeMeta{
			NodeID:             rapid.StringMatching(`[a-z0-9]{1,40}`).Draw(t, "id"),
			QUICAddr:           rapid.SampledFrom([]string{"", "127.0.0.1:4433", "[::1]:9", "node.example:65535"}).Draw(t, "addr"),
			Capabilities:       genCapabilities().Draw(t, "caps"),
			Load:               rapid.IntRange(0, 1<<31-1).Draw(t, "load"),
			MigrationSupported: rapid.Bool().Draw(t, "mig"),
			Version:            rapid.StringMatching(`[0-9.a-z-]{0,20}`).Draw(t, "ver"),
			AdminURL:           rapid.SampledFrom([]string{"", "http://127.0.0.1:7401", "https://[::1]:443", "http://admin.example:65535"}).Draw(t, "admin"),
		}
		if rapid.Bool().Draw(t, "hasKey") {
			m.X25519Public = rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "pub")
			m.X25519Signature = rapid.SliceOfN(rapid.Byte(), 1, 64).Draw(t, "sig")
		}
		if len(m.Capabilities.Values) == 0 {
			m.Capabilities.Values = nil
		}
		b, err := EncodeMeta(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMeta(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n in %+v\nout %+v", m, got)
		}
	})
}

// FuzzDecodeMeta: remote metadata is attacker-influenced input; decoding must
// never panic, errors must be typed, and anything accepted must be valid
// enough to re-encode and decode to the same value.
func FuzzDecodeMeta(f *testing.F) {
	good, _ := EncodeMeta(sampleMeta())
	f.Add(good)
	minimal, _ := EncodeMeta(NodeMeta{NodeID: "n"})
	f.Add(minimal)
	draining, _ := EncodeMeta(NodeMeta{NodeID: "n", Draining: true})
	f.Add(draining)
	f.Add([]byte{metaFormatV1, 0xdf, 0x7f, 0xff, 0xff, 0xff})
	f.Add([]byte{metaFormatV1, 0x82, 0xa2, 'i', 'd', 0xa1, 'n', 0xa1, 'a', 0xa8, 'h', 't', 't', 'p', ':', '/', '/', 'h'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidMeta) {
				t.Fatalf("error %v does not wrap ErrInvalidMeta", err)
			}
			return
		}
		again, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("accepted meta does not re-encode: %v", err)
		}
		m2, err := DecodeMeta(again)
		if err != nil {
			t.Fatalf("re-encoded meta does not decode: %v", err)
		}
		if m.NodeID != m2.NodeID || m.Load != m2.Load || !m.Capabilities.Equal(m2.Capabilities) ||
			!bytes.Equal(m.X25519Public, m2.X25519Public) || m.QUICAddr != m2.QUICAddr || m.AdminURL != m2.AdminURL || m.Draining != m2.Draining {
			t.Fatalf("re-encoding changed the meta: %+v vs %+v", m, m2)
		}
	})
}

// The admin URL shares the 512-byte budget: a node with the longest fixed
// fields (keys, signature, version, a maximal admin URL) and a few
// capabilities still fits, and the URL costs only its own length.
func TestMetaAdminURLFitsBudget(t *testing.T) {
	m := sampleMeta()
	m.NodeID = strings.Repeat("f", 64)
	m.NodeKey = bytes.Repeat([]byte{1}, NodeKeySize)
	m.Version = strings.Repeat("v", MaxVersionLen)
	m.QUICAddr = "[2001:db8::1234:5678:9abc:def0]:65535"
	m.AdminURL = "https://" + strings.Repeat("a", MaxAdminURLLen-len("https://")-len(":65535")) + ":65535"
	b, err := EncodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMeta(b)
	if err != nil || got.AdminURL != m.AdminURL {
		t.Fatalf("decode: %v, admin %q", err, got.AdminURL)
	}
	m.AdminURL = ""
	without, err := EncodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	// The key and a string header: the URL costs its length plus 4 bytes.
	if cost := len(b) - len(without); cost > MaxAdminURLLen+4 {
		t.Fatalf("a %d-byte admin url costs %d bytes of the budget", MaxAdminURLLen, cost)
	}
}
