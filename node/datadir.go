package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/wasmesh/wasmesh/abi"
)

// layout is the data dir:
//
//	node.key, static.key   node ed25519 and X25519 keys (0600, internal/transport/quic/nodekey)
//	node.crt, ca.crt       cluster credentials (unless --dev)
//	modules/sha256/<hex>   module bytes by digest
//	cache/                 wazero's compilation cache
//	store.db               bbolt: daemon records (with seeds, 0600) and small snapshots
//	snapshots/             checkpoints above 256 KiB, one file each (internal/store)
//	node.json              the addresses this run bound (for scripts and tests)
type layout struct{ root string }

func (l layout) modules() string   { return filepath.Join(l.root, "modules", "sha256") }
func (l layout) cache() string     { return filepath.Join(l.root, "cache") }
func (l layout) store() string     { return filepath.Join(l.root, "store.db") }
func (l layout) readyFile() string { return filepath.Join(l.root, "node.json") }
func (l layout) journal() string   { return filepath.Join(l.root, "journal") }
func (l layout) channels() string  { return filepath.Join(l.root, "channels.defs") }

func (l layout) create() error {
	for _, d := range []string{l.root, l.modules(), l.cache()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("%w: data dir: %w", ErrBadConfig, err)
		}
	}
	return nil
}

func digestHex(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("%w: digest %s is not sha256:<64 hex digits>", ErrBadRequest, abi.Echo(digest))
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("%w: digest %s is not sha256:<64 hex digits>", ErrBadRequest, abi.Echo(digest))
	}
	return h, nil
}

// saveModule writes module bytes under their digest, atomically, so a crash
// never leaves a truncated module that a restart would refuse.
func (l layout) saveModule(module []byte) (string, error) {
	sum := sha256.Sum256(module)
	h := hex.EncodeToString(sum[:])
	path := filepath.Join(l.modules(), h)
	if _, err := os.Stat(path); err == nil {
		return "sha256:" + h, nil
	}
	tmp, err := os.CreateTemp(l.modules(), ".tmp-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(module); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return "sha256:" + h, nil
}

func (l layout) loadModule(digest string) ([]byte, error) {
	h, err := digestHex(digest)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(l.modules(), h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: module %s is not on this node", ErrUnknownKind, digest)
	}
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != h {
		return nil, fmt.Errorf("module file %s does not hash to its name (corrupt data dir)", h)
	}
	return b, nil
}

// moduleDigests lists stored modules.
func (l layout) moduleDigests() ([]string, error) {
	ents, err := os.ReadDir(l.modules())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if len(e.Name()) == 64 && !e.IsDir() {
			out = append(out, "sha256:"+e.Name())
		}
	}
	return out, nil
}
