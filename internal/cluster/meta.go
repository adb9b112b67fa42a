package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

// MetaMaxSize is the room memberlist gives a node's metadata.
const MetaMaxSize = memberlist.MetaMaxSize

// NodeKeySize is the length of an ed25519 public key.
const NodeKeySize = 32

// metaFormatV1 is the first byte of every encoded NodeMeta. A node that sees
// another format refuses the metadata explicitly instead of guessing at it.
const metaFormatV1 byte = 1

// Field limits; see NodeMeta.Validate.
const (
	MaxNodeIDLen    = 128
	MaxVersionLen   = 64
	X25519KeySize   = 32
	MaxSignatureLen = 128
	MaxAdminURLLen  = 128
)

var (
	// ErrInvalidMeta is wrapped by every NodeMeta validation or decoding
	// failure.
	ErrInvalidMeta = errors.New("cluster: invalid node metadata")
	// ErrUnsupportedMetaFormat is wrapped (together with ErrInvalidMeta)
	// when remote metadata uses a format this build does not know.
	ErrUnsupportedMetaFormat = errors.New("cluster: unsupported node metadata format")
	// ErrMetaTooLarge is matched by *MetaTooLargeError.
	ErrMetaTooLarge = errors.New("cluster: node metadata too large")
)

// MetaTooLargeError reports metadata that does not fit memberlist's budget.
// Capabilities are the usual culprit: trim tags or values.
type MetaTooLargeError struct {
	Size, Limit int
}

func (e *MetaTooLargeError) Error() string {
	return fmt.Sprintf("cluster: node metadata is %d bytes encoded, limit is %d (announce fewer or shorter capabilities)", e.Size, e.Limit)
}

// Is lets callers test with errors.Is(err, ErrMetaTooLarge).
func (e *MetaTooLargeError) Is(target error) bool { return target == ErrMetaTooLarge }

// NodeMeta is what a node announces about itself through gossip.
type NodeMeta struct {
	NodeID   string // derived from the node's ed25519 key by the caller
	QUICAddr string // host:port of the QUIC listener; "" while not listening
	// X25519Public is the node's static key that migration sources seal a
	// daemon identity to; X25519Signature binds it to the node key. Both are
	// opaque here: the migration/transport layers create and verify them.
	X25519Public    []byte
	X25519Signature []byte
	// NodeKey is the node's ed25519 public key (its hash is NodeID), which
	// verifies X25519Signature.
	NodeKey            []byte
	Capabilities       Capabilities
	Load               int // daemons currently hosted
	MigrationSupported bool
	Version            string // software version, for operators and compatibility checks
	// AdminURL is where the node serves its admin API (http(s)://host:port),
	// so operators and the CLI can aim at the right node; "" when unknown.
	AdminURL string
	// Draining: the node is being emptied; schedulers place nothing there
	// and sources do not migrate daemons to it.
	Draining bool
}

// Validate checks every field against its limits. It does not check the
// signature (this package cannot: it does not know the node key).
func (m NodeMeta) Validate() error {
	if m.NodeID == "" {
		return fmt.Errorf("%w: empty node id", ErrInvalidMeta)
	}
	if err := printable(m.NodeID, MaxNodeIDLen); err != nil {
		return fmt.Errorf("%w: node id: %w", ErrInvalidMeta, err)
	}
	if m.QUICAddr != "" {
		if err := validHostPort(m.QUICAddr); err != nil {
			return fmt.Errorf("%w: quic address %q: %w", ErrInvalidMeta, m.QUICAddr, err)
		}
	}
	if len(m.X25519Public) != 0 && len(m.X25519Public) != X25519KeySize {
		return fmt.Errorf("%w: x25519 public key is %d bytes, want %d", ErrInvalidMeta, len(m.X25519Public), X25519KeySize)
	}
	if len(m.NodeKey) != 0 && len(m.NodeKey) != NodeKeySize {
		return fmt.Errorf("%w: node key is %d bytes, want %d", ErrInvalidMeta, len(m.NodeKey), NodeKeySize)
	}
	if len(m.X25519Signature) > MaxSignatureLen {
		return fmt.Errorf("%w: x25519 key signature is %d bytes, at most %d", ErrInvalidMeta, len(m.X25519Signature), MaxSignatureLen)
	}
	if err := m.Capabilities.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMeta, err)
	}
	if m.Load < 0 || m.Load > 1<<31-1 {
		return fmt.Errorf("%w: load %d out of range", ErrInvalidMeta, m.Load)
	}
	if err := printable(m.Version, MaxVersionLen); err != nil {
		return fmt.Errorf("%w: version: %w", ErrInvalidMeta, err)
	}
	if m.AdminURL != "" {
		if err := validAdminURL(m.AdminURL); err != nil {
			return fmt.Errorf("%w: admin url %q: %w", ErrInvalidMeta, m.AdminURL, err)
		}
	}
	return nil
}

// validAdminURL accepts exactly scheme://host:port with scheme http or https.
func validAdminURL(s string) error {
	if err := printable(s, MaxAdminURLLen); err != nil {
		return err
	}
	rest, ok := strings.CutPrefix(s, "http://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "https://"); !ok {
			return errors.New("want http:// or https://")
		}
	}
	return validHostPort(rest)
}

func printable(s string, maxLen int) error {
	if len(s) > maxLen {
		return fmt.Errorf("longer than %d bytes", maxLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return fmt.Errorf("byte %#x at %d is not printable ASCII", s[i], i)
		}
	}
	return nil
}

func validHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("empty host")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return fmt.Errorf("bad port %q", port)
	}
	return printable(s, 300)
}

// Short wire keys: the 512-byte budget is shared with capabilities.
const (
	keyNodeID    = "id"
	keyQUIC      = "q"
	keyXPub      = "xk"
	keyXSig      = "xs"
	keyNodeKey   = "nk"
	keyTags      = "t"
	keyValues    = "kv"
	keyLoad      = "l"
	keyMigration = "m"
	keyVersion   = "v"
	keyAdmin     = "a"
	keyDraining  = "dr"
	// keyLeaving is internal: set by Leave so peers can tell a graceful
	// departure from a failure (memberlist itself does not tell its
	// delegates which one it was).
	keyLeaving = "bye"
)

// EncodeMeta validates m and encodes it deterministically (same meta, same
// bytes: memberlist compares bytes to decide whether to announce an update).
func EncodeMeta(m NodeMeta) ([]byte, error) { return encodeMeta(m, false) }

func encodeMeta(m NodeMeta, leaving bool) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	caps := m.Capabilities.Normalize()
	var buf bytes.Buffer
	buf.WriteByte(metaFormatV1)
	enc := msgpack.NewEncoder(&buf)

	n := 1 // node id is always present
	for _, present := range []bool{m.QUICAddr != "", len(m.X25519Public) > 0, len(m.X25519Signature) > 0, len(m.NodeKey) > 0,
		len(caps.Tags) > 0, len(caps.Values) > 0, m.Load != 0, m.MigrationSupported, m.Version != "", m.AdminURL != "", m.Draining, leaving} {
		if present {
			n++
		}
	}
	// bytes.Buffer writes cannot fail, so neither can the encoder; errors are
	// still collected to keep that assumption out of the code.
	var errs []error
	put := func(err error) { errs = append(errs, err) }
	put(enc.EncodeMapLen(n))
	put(enc.EncodeString(keyNodeID))
	put(enc.EncodeString(m.NodeID))
	if m.QUICAddr != "" {
		put(enc.EncodeString(keyQUIC))
		put(enc.EncodeString(m.QUICAddr))
	}
	if len(m.X25519Public) > 0 {
		put(enc.EncodeString(keyXPub))
		put(enc.EncodeBytes(m.X25519Public))
	}
	if len(m.X25519Signature) > 0 {
		put(enc.EncodeString(keyXSig))
		put(enc.EncodeBytes(m.X25519Signature))
	}
	if len(m.NodeKey) > 0 {
		put(enc.EncodeString(keyNodeKey))
		put(enc.EncodeBytes(m.NodeKey))
	}
	if len(caps.Tags) > 0 {
		put(enc.EncodeString(keyTags))
		put(enc.EncodeArrayLen(len(caps.Tags)))
		for _, t := range caps.Tags {
			put(enc.EncodeString(t))
		}
	}
	if len(caps.Values) > 0 {
		put(enc.EncodeString(keyValues))
		put(enc.EncodeMapLen(len(caps.Values)))
		for _, k := range slices.Sorted(maps.Keys(caps.Values)) {
			put(enc.EncodeString(k))
			put(enc.EncodeString(caps.Values[k]))
		}
	}
	if m.Load != 0 {
		put(enc.EncodeString(keyLoad))
		put(enc.EncodeInt(int64(m.Load)))
	}
	if m.MigrationSupported {
		put(enc.EncodeString(keyMigration))
		put(enc.EncodeBool(true))
	}
	if m.Version != "" {
		put(enc.EncodeString(keyVersion))
		put(enc.EncodeString(m.Version))
	}
	if m.AdminURL != "" {
		put(enc.EncodeString(keyAdmin))
		put(enc.EncodeString(m.AdminURL))
	}
	if m.Draining {
		put(enc.EncodeString(keyDraining))
		put(enc.EncodeBool(true))
	}
	if leaving {
		put(enc.EncodeString(keyLeaving))
		put(enc.EncodeBool(true))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: encode: %w", ErrInvalidMeta, err)
	}
	if buf.Len() > MetaMaxSize {
		return nil, &MetaTooLargeError{Size: buf.Len(), Limit: MetaMaxSize}
	}
	return buf.Bytes(), nil
}

// DecodeMeta strictly decodes metadata received from another node: unknown
// format, unknown or repeated keys, wrong types, trailing bytes and values
// that fail Validate are all errors. Every length read from the input is
// checked against the bytes actually left before anything is allocated, so a
// hostile peer cannot make us allocate more than the input size.
func DecodeMeta(b []byte) (NodeMeta, error) {
	m, _, err := decodeMeta(b)
	return m, err
}

func decodeMeta(b []byte) (NodeMeta, bool, error) {
	if len(b) == 0 {
		return NodeMeta{}, false, fmt.Errorf("%w: empty", ErrInvalidMeta)
	}
	if len(b) > MetaMaxSize {
		return NodeMeta{}, false, fmt.Errorf("%w: %w", ErrInvalidMeta, &MetaTooLargeError{Size: len(b), Limit: MetaMaxSize})
	}
	if b[0] != metaFormatV1 {
		return NodeMeta{}, false, fmt.Errorf("%w: %w: format %d, this build reads %d", ErrInvalidMeta, ErrUnsupportedMetaFormat, b[0], metaFormatV1)
	}
	m, leaving, err := decodeMetaBody(b[1:])
	if err != nil {
		return NodeMeta{}, false, fmt.Errorf("%w: %w", ErrInvalidMeta, err)
	}
	if err := m.Validate(); err != nil {
		return NodeMeta{}, false, err
	}
	return m, leaving, nil
}

type metaReader struct {
	r *bytes.Reader
	d *msgpack.Decoder
}

// decodeMetaBody reads the msgpack map written by EncodeMeta.
func decodeMetaBody(body []byte) (m NodeMeta, leaving bool, err error) {
	r := bytes.NewReader(body)
	mr := metaReader{r: r, d: msgpack.NewDecoder(r)}
	n, err := mr.length(mr.d.DecodeMapLen())
	if err != nil {
		return NodeMeta{}, false, fmt.Errorf("top-level map: %w", err)
	}
	seen := make(map[string]bool, n)
	for range n {
		key, err := mr.str(64)
		if err != nil {
			return NodeMeta{}, false, fmt.Errorf("key: %w", err)
		}
		if seen[key] {
			return NodeMeta{}, false, fmt.Errorf("key %q repeated", key)
		}
		seen[key] = true
		switch key {
		case keyNodeID:
			m.NodeID, err = mr.str(MaxNodeIDLen)
		case keyQUIC:
			m.QUICAddr, err = mr.str(300)
		case keyXPub:
			m.X25519Public, err = mr.blob(X25519KeySize)
		case keyXSig:
			m.X25519Signature, err = mr.blob(MaxSignatureLen)
		case keyNodeKey:
			m.NodeKey, err = mr.blob(NodeKeySize)
		case keyTags:
			m.Capabilities.Tags, err = mr.tags()
		case keyValues:
			m.Capabilities.Values, err = mr.values()
		case keyLoad:
			var l int64
			l, err = mr.d.DecodeInt64()
			if err == nil && (l < 0 || l > 1<<31-1) {
				err = fmt.Errorf("load %d out of range", l)
			}
			m.Load = int(l)
		case keyMigration:
			m.MigrationSupported, err = mr.d.DecodeBool()
		case keyVersion:
			m.Version, err = mr.str(MaxVersionLen)
		case keyAdmin:
			m.AdminURL, err = mr.str(MaxAdminURLLen)
		case keyDraining:
			// Only true is ever written: an explicit false is not canonical.
			m.Draining, err = mr.d.DecodeBool()
			if err == nil && !m.Draining {
				err = errors.New("false is written by omission")
			}
		case keyLeaving:
			leaving, err = mr.d.DecodeBool()
		default:
			return NodeMeta{}, false, fmt.Errorf("unknown key %q", key)
		}
		if err != nil {
			return NodeMeta{}, false, fmt.Errorf("field %q: %w", key, err)
		}
	}
	if r.Len() != 0 {
		return NodeMeta{}, false, fmt.Errorf("%d trailing bytes", r.Len())
	}
	return m, leaving, nil
}

// length turns a msgpack container length into a safe count: nil containers
// are refused, and a count larger than the remaining bytes (each element takes
// at least one) is a lie that would otherwise drive a huge allocation.
func (mr metaReader) length(n int, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errors.New("nil where a container was expected")
	}
	if n > mr.r.Len() {
		return 0, fmt.Errorf("claims %d elements with %d bytes left", n, mr.r.Len())
	}
	return n, nil
}

func (mr metaReader) blob(maxLen int) ([]byte, error) {
	n, err := mr.d.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, errors.New("nil where bytes were expected")
	}
	if n > maxLen || n > mr.r.Len() {
		return nil, fmt.Errorf("length %d exceeds limit %d or remaining %d bytes", n, maxLen, mr.r.Len())
	}
	buf := make([]byte, n)
	if err := mr.d.ReadFull(buf); err != nil {
		return nil, err
	}
	return buf, nil
}

func (mr metaReader) str(maxLen int) (string, error) {
	b, err := mr.blob(maxLen)
	return string(b), err
}

func (mr metaReader) tags() ([]string, error) {
	n, err := mr.length(mr.d.DecodeArrayLen())
	if err != nil {
		return nil, err
	}
	if n > MaxCapabilities {
		return nil, fmt.Errorf("%d tags, at most %d", n, MaxCapabilities)
	}
	out := make([]string, 0, n)
	for range n {
		t, err := mr.str(MaxNameLen)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if !slices.IsSorted(out) || len(slices.Compact(slices.Clone(out))) != len(out) {
		// EncodeMeta always writes sorted unique tags; anything else was not
		// produced by it.
		return nil, errors.New("tags not sorted and unique")
	}
	return out, nil
}

func (mr metaReader) values() (map[string]string, error) {
	n, err := mr.length(mr.d.DecodeMapLen())
	if err != nil {
		return nil, err
	}
	if n > MaxCapabilities {
		return nil, fmt.Errorf("%d values, at most %d", n, MaxCapabilities)
	}
	out := make(map[string]string, n)
	for range n {
		k, err := mr.str(MaxNameLen)
		if err != nil {
			return nil, err
		}
		v, err := mr.str(MaxValueLen)
		if err != nil {
			return nil, err
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("value key %q repeated", k)
		}
		out[k] = v
	}
	return out, nil
}
