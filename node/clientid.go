package node

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"unicode"

	"github.com/wasmesh/wasmesh/abi"
)

// ClientSender is the sender id a client's events carry (SendOnce): the
// first 8 bytes, little endian, of SHA-256("wasmesh/client/v1" ‖ 0 ‖ name).
// Daemons see it as the event's origin; its horizon entry is the client's
// latest applied event id, which travels with the daemon in every snapshot.
// Names are 1-64 printable characters without spaces.
func ClientSender(name string) (uint64, error) {
	if name == "" || len(name) > 64 {
		return 0, fmt.Errorf("%w: client id %s must be 1-64 characters", ErrBadRequest, abi.Echo(name))
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return 0, fmt.Errorf("%w: client id %s must be printable, without spaces", ErrBadRequest, abi.Echo(name))
		}
	}
	h := sha256.New()
	h.Write([]byte("wasmesh/client/v1"))
	h.Write([]byte{0})
	h.Write([]byte(name))
	s := binary.LittleEndian.Uint64(h.Sum(nil))
	if s == 0 { // 0 is the anonymous sender, whose events are never deduplicated
		s = 1
	}
	return s, nil
}
