package nodekey

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// writeSecretFile creates path with mode 0600 holding data, without ever
// replacing an existing file: the content goes to a temporary file first and
// is hard-linked into place, so a crash never leaves a half-written key and
// two processes racing to create a key agree on one (the loser gets
// fs.ErrExist and should load the winner's).
func writeSecretFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Link(tmp, path)
}

// readSecretFile reads a key file and refuses one that group or others can
// read: a leaked node or CA key is a leaked cluster membership.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v, want 0600", ErrBadKeyFile, path, fi.Mode().Perm())
	}
	return os.ReadFile(path)
}

// decodePEM returns the bytes of the single block of the given type.
func decodePEM(data []byte, typ, path string) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("%w: %s: no %q PEM block", ErrBadKeyFile, path, typ)
	}
	if len(pemTrim(rest)) != 0 {
		return nil, fmt.Errorf("%w: %s: trailing data after PEM block", ErrBadKeyFile, path)
	}
	return block.Bytes, nil
}

func pemTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// loadOrCreate loads path with load, or creates it with create and encode.
func loadOrCreate[T any](path string, load func([]byte) (T, error), create func() (T, []byte, error)) (T, error) {
	var zero T
	for range 2 {
		data, err := readSecretFile(path)
		if err == nil {
			return load(data)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return zero, err
		}
		v, enc, err := create()
		if err != nil {
			return zero, err
		}
		err = writeSecretFile(path, enc)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return zero, err
		}
		// Lost a creation race: loop and load the winner's key.
	}
	return zero, fmt.Errorf("%w: %s: could not load or create", ErrBadKeyFile, path)
}
