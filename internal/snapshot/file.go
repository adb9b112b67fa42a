package snapshot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile stores an encoded snapshot at path atomically: a reader sees the
// old file or the complete new one, never a torn write, even across a crash
// (temp file in the same directory, fsync, rename, fsync of the directory).
// The file is mode 0600: a snapshot is a daemon's whole memory.
func WriteFile(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("snapshot: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return fmt.Errorf("snapshot: write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("snapshot: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("snapshot: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("snapshot: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("snapshot: write %s: %w", path, err)
	}
	// The rename is durable only once the directory entry is.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("snapshot: write %s: sync dir: %w", path, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("snapshot: write %s: sync dir: %w", path, err)
	}
	return nil
}

// ReadFile reads and decodes the snapshot at path. A file larger than
// MaxEncodedSize(lim) is refused before it is read. The result aliases a
// buffer owned by this call only, so it needs no Clone.
func ReadFile(path string, lim Limits) (*Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: read %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("snapshot: read %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("snapshot: read %s: not a regular file", path)
	}
	if limit := MaxEncodedSize(lim); fi.Size() > limit {
		return nil, fmt.Errorf("snapshot: read %s: %w: file is %d bytes, limit %d", path, ErrTooLarge, fi.Size(), limit)
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("snapshot: read %s: %w", path, err)
	}
	// A file that grew after Stat is being written to; refuse rather than
	// decode a prefix.
	var probe [1]byte
	if n, err := f.Read(probe[:]); n != 0 || !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("snapshot: read %s: file changed while reading", path)
	}
	s, err := Decode(data, lim)
	if err != nil {
		return nil, fmt.Errorf("snapshot: read %s: %w", path, err)
	}
	return s, nil
}
