package node

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Seqs maps a sender (16 hex digits) to a sequence number. In JSON the
// numbers are decimal strings: a client's event ids and a daemon's output
// sequences use all 64 bits, and readers that hold numbers as doubles (jq,
// JavaScript) would round those above 2^53. Numbers are accepted on input
// so that documents written before the change still read.
type Seqs map[string]uint64

// MarshalJSON writes each sequence as a decimal string.
func (s Seqs) MarshalJSON() ([]byte, error) {
	if s == nil {
		return []byte("null"), nil
	}
	m := make(map[string]string, len(s))
	for k, v := range s {
		m[k] = strconv.FormatUint(v, 10)
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads decimal strings, or numbers that are whole and in range.
func (s *Seqs) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		*s = nil
		return nil
	}
	out := make(Seqs, len(m))
	for k, raw := range m {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			str = string(raw)
		}
		v, err := strconv.ParseUint(str, 10, 64)
		if err != nil {
			return fmt.Errorf("node: sequence of %s: %w", k, err)
		}
		out[k] = v
	}
	*s = out
	return nil
}
