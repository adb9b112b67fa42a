package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmesh/wasmesh/abi"
)

func TestSaveLoadAndIDs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	id, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode())
	}
	again, created, err := LoadOrCreate(path)
	if err != nil || created || again.EntityID() != id.EntityID() {
		t.Fatalf("reload: %v %v", created, err)
	}
	if id.Origin() != abi.OriginHash(id.EntityID()) {
		t.Fatal("origin is not derived from the entity id")
	}
	msg := []byte("m")
	if !Verify(id.EntityID(), msg, id.Sign(msg)) || Verify(id.EntityID(), []byte("n"), id.Sign(msg)) {
		t.Fatal("sign/verify")
	}
	if err := id.Save(path); err == nil {
		t.Fatal("Save overwrote an existing key")
	}
}

func TestBadKeyFiles(t *testing.T) {
	for _, data := range []string{"", "garbage", keyFileHeader + "zz\n", keyFileHeader + "00\n"} {
		if _, err := Parse([]byte(data)); !errors.Is(err, ErrBadKeyFile) {
			t.Errorf("Parse(%q) = %v", data, err)
		}
	}
}

func TestWipe(t *testing.T) {
	id, _ := Generate()
	seed := id.Seed()
	id.Wipe()
	if !id.IsZero() || bytes.Equal(seed, make([]byte, 32)) {
		t.Fatal("wipe")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(keyFileHeader + "0000000000000000000000000000000000000000000000000000000000000000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := Parse(data)
		if err == nil && id.IsZero() {
			t.Fatal("accepted without a key")
		}
	})
}
