package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/instrument"
)

// Digest is a module digest, "sha256:<64 hex>".
type Digest string

// DigestOf computes the digest of module bytes.
func DigestOf(module []byte) Digest {
	sum := sha256.Sum256(module)
	return Digest("sha256:" + hex.EncodeToString(sum[:]))
}

// Bytes returns the 32 raw digest bytes.
func (d Digest) Bytes() ([32]byte, error) {
	var out [32]byte
	s, ok := strings.CutPrefix(string(d), "sha256:")
	if !ok || len(s) != 64 {
		return out, fmt.Errorf("%w: %s is not sha256:<64 hex digits>", ErrUnknownKind, abi.Echo(string(d)))
	}
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		return out, fmt.Errorf("%w: %s is not sha256:<64 hex digits>", ErrUnknownKind, abi.Echo(string(d)))
	}
	return out, nil
}

// DigestFromBytes renders raw digest bytes.
func DigestFromBytes(b [32]byte) Digest { return Digest("sha256:" + hex.EncodeToString(b[:])) }

// Kind is a registered module: the original bytes, what the validator
// learned about them, and the instrumented, compiled variants (one per
// memory cap, since the cap is written into the module).
type Kind struct {
	Digest Digest
	Info   *abi.ModuleInfo
	bytes  []byte

	mu       sync.Mutex
	variants map[uint32]*variant
}

// Bytes returns the original module bytes (do not modify).
func (k *Kind) Bytes() []byte { return k.bytes }

// Cooperative reports whether the guest snapshots itself.
func (k *Kind) Cooperative() bool { return k.Info.Mode == "cooperative" }

type variant struct {
	compiled wazero.CompiledModule
	meta     *instrument.Result
}

// moduleStore holds kinds by digest plus human aliases.
type moduleStore struct {
	mu      sync.RWMutex
	kinds   map[Digest]*Kind
	aliases map[string]Digest
}

func newModuleStore() *moduleStore {
	return &moduleStore{kinds: make(map[Digest]*Kind), aliases: make(map[string]Digest)}
}

// add validates and stores module bytes; registering the same bytes again is
// a no-op returning the existing kind.
func (s *moduleStore) add(module []byte, alias string) (*Kind, error) {
	if err := validAlias(alias); err != nil {
		return nil, err
	}
	digest := DigestOf(module)
	s.mu.RLock()
	k, ok := s.kinds[digest]
	s.mu.RUnlock()
	if !ok {
		info, err := abi.Validate(module)
		if err != nil {
			return nil, &refusal{err: err}
		}
		k = &Kind{Digest: digest, Info: info, bytes: append([]byte(nil), module...), variants: make(map[uint32]*variant)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if existing, ok := s.kinds[digest]; ok {
		k = existing
	} else {
		s.kinds[digest] = k
	}
	if alias != "" {
		s.aliases[alias] = digest
	}
	return k, nil
}

func validAlias(alias string) error {
	if alias == "" {
		return nil
	}
	if strings.HasPrefix(alias, "sha256:") || len(alias) > 128 || strings.ContainsAny(alias, " \t\r\n/") {
		return fmt.Errorf("%w: kind name %s must be 1-128 characters without spaces or '/' and not start with sha256:", ErrUnknownKind, abi.Echo(alias))
	}
	return nil
}

// lookup resolves a digest or alias.
func (s *moduleStore) lookup(kindOrDigest string) (*Kind, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := Digest(kindOrDigest)
	if !strings.HasPrefix(kindOrDigest, "sha256:") {
		var ok bool
		if d, ok = s.aliases[kindOrDigest]; !ok {
			return nil, fmt.Errorf("%w: %s", ErrUnknownKind, abi.Echo(kindOrDigest))
		}
	}
	k, ok := s.kinds[d]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKind, d)
	}
	return k, nil
}

func (s *moduleStore) list() []*Kind {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Kind, 0, len(s.kinds))
	for _, k := range s.kinds {
		out = append(out, k)
	}
	return out
}

func (s *moduleStore) aliasesOf(d Digest) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for a, t := range s.aliases {
		if t == d {
			out = append(out, a)
		}
	}
	return out
}

func (s *moduleStore) clear() []*Kind {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Kind, 0, len(s.kinds))
	for _, k := range s.kinds {
		out = append(out, k)
	}
	s.kinds = make(map[Digest]*Kind)
	s.aliases = make(map[string]Digest)
	return out
}

// compile returns the compiled variant of k for a memory cap, compiling it
// once; wazero's compilation cache makes a recompile after restart cheap.
func (k *Kind) compile(ctx context.Context, rt wazero.Runtime, capPages uint32) (*variant, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if v, ok := k.variants[capPages]; ok {
		return v, nil
	}
	meta, err := instrument.Instrument(k.bytes, instrument.Options{MaxMemoryPages: capPages, MaxTableEntries: TableEntries(capPages)})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModuleRefused, err)
	}
	compiled, err := rt.CompileModule(ctx, meta.Module)
	if err != nil {
		return nil, fmt.Errorf("%w: compile %s: %w", ErrModuleRefused, k.Digest, err)
	}
	v := &variant{compiled: compiled, meta: meta}
	k.variants[capPages] = v
	return v, nil
}

func (k *Kind) close(ctx context.Context) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for cap, v := range k.variants {
		_ = v.compiled.Close(ctx)
		delete(k.variants, cap)
	}
}

// refusal is the validator's own "module refused: …" error, recognisable as
// ErrModuleRefused without saying so twice.
type refusal struct{ err error }

func (r *refusal) Error() string        { return r.err.Error() }
func (r *refusal) Unwrap() error        { return r.err }
func (r *refusal) Is(target error) bool { return target == ErrModuleRefused }
