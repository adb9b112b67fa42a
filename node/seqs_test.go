package node

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSeqsJSONStrings(t *testing.T) {
	big := uint64(1)<<63 + 1 // rounds as a double
	b, err := json.Marshal(DaemonInfo{Horizon: Seqs{"00000000000000aa": big}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"horizon":{"00000000000000aa":"9223372036854775809"}`) {
		t.Fatalf("horizon not as decimal strings: %s", b)
	}
	var back DaemonInfo
	if err := json.Unmarshal(b, &back); err != nil || back.Horizon["00000000000000aa"] != big {
		t.Fatalf("round trip: %v %v", back.Horizon, err)
	}
	// Numbers, as older nodes wrote them, still read.
	var old DaemonInfo
	if err := json.Unmarshal([]byte(`{"horizon":{"x":7}}`), &old); err != nil || old.Horizon["x"] != 7 {
		t.Fatalf("number form: %v %v", old.Horizon, err)
	}
	for _, bad := range []string{`{"horizon":{"x":-1}}`, `{"horizon":{"x":"1.5"}}`, `{"horizon":{"x":"18446744073709551616"}}`, `{"horizon":[1]}`} {
		if err := json.Unmarshal([]byte(bad), &old); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// Whatever Seqs accepts, it writes back as strings that read as the same.
func FuzzSeqsJSON(f *testing.F) {
	for _, s := range []string{`{"a":"1"}`, `{"a":7}`, `{}`, `null`, `{"a":"18446744073709551615"}`, `{"a":1e3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Seqs
		if err := json.Unmarshal(b, &s); err != nil {
			return
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Seqs
		if err := json.Unmarshal(out, &back); err != nil || len(back) != len(s) {
			t.Fatalf("%s → %s → %v %v", b, out, back, err)
		}
		for k, v := range s {
			if back[k] != v {
				t.Fatalf("%s: %s %d → %d", b, k, v, back[k])
			}
		}
	})
}
