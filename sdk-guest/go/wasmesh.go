// Package wasmesh is the Go guest SDK for wasmesh: it hides guest ABI v1 so
// a daemon is one function from an event to its outputs.
//
//	package main
//
//	import wasmesh "github.com/wasmesh/wasmesh/sdk-guest/go"
//
//	func init() { wasmesh.Handle(handle) }
//
//	func handle(ev wasmesh.Event) ([][]byte, error) {
//		return [][]byte{ev.Payload}, nil
//	}
//
//	func main() {}
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -buildvcs=false -ldflags="-s -w" -trimpath -o x.wasm .
//
// Register hooks from init functions: the host runs package initialisation
// (the reactor's _initialize) and never calls main. Handlers run on the
// host's call and must not block (no channel waits, sleeps or goroutines
// that the handler waits for): the Go runtime has nothing to switch to and
// aborts.
//
// By default the host snapshots a daemon transparently (its whole linear
// memory and globals), so ordinary Go variables survive a migration. A guest
// that prefers to serialise its own state registers Snapshot and Restore and
// imports the coop package, which adds the two cooperative exports.
package wasmesh

import (
	"errors"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/sdk-guest/go/internal/rt"
)

// Event is one input to the daemon.
type Event struct {
	// Sender is the origin hash of the daemon or client that sent it.
	Sender uint64
	// Seq is the sender's sequence number for this event.
	Seq uint64
	// Payload aliases the SDK's input buffer: it is valid until the handler
	// returns and is overwritten by the next event. Copy it to keep it.
	// Returning it (or a sub-slice) as an output is fine.
	Payload []byte
}

// Handle registers the daemon's event handler. Each returned slice becomes
// one output, after any Emit calls made during the handler. A returned
// error, or a panic, fails the event with its message; the host discards
// the event's outputs.
func Handle(h func(ev Event) ([][]byte, error)) {
	rt.SetHandler(func(sender, seq uint64, payload []byte) ([][]byte, error) {
		return h(Event{Sender: sender, Seq: seq, Payload: payload})
	})
}

// OnInit registers a hook called once when the daemon is spawned, with the
// spawn's config (possibly empty; the slice is the hook's to keep). It is
// not called when a daemon is restored from a snapshot. An error fails the
// spawn.
func OnInit(f func(config []byte) error) { rt.SetInit(f) }

// Snapshot registers the cooperative snapshot hook: the bytes it returns are
// the daemon's whole state. It takes effect only in a module that imports
// github.com/wasmesh/wasmesh/sdk-guest/go/coop.
func Snapshot(f func() ([]byte, error)) { rt.SetSnapshot(f) }

// Restore registers the cooperative restore hook, called in a fresh instance
// (instead of OnInit) with what Snapshot returned. The slice is the hook's to
// keep. It takes effect only in a module that imports the coop package.
func Restore(f func(state []byte) error) { rt.SetRestore(f) }

// Emit sends one output now, before the handler returns; useful for a long
// stream of outputs that should not be collected in memory first. The host
// copies payload during the call.
func Emit(payload []byte) { rt.Emit(payload) }

// Level is a log level understood by the host.
type Level int32

// Log levels, as ABI v1 numbers them.
const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)

// Log writes one message to the host's log for this daemon.
func Log(level Level, msg string) { rt.Log(int32(level), msg) }

// Logf formats like fmt.Sprintf and logs the result.
func Logf(level Level, format string, args ...any) {
	rt.Log(int32(level), fmt.Sprintf(format, args...))
}

// Now returns the host's clock. Use it rather than time.Now: the host
// decides what time a daemon sees (and may make it deterministic).
func Now() time.Time { return time.Unix(0, rt.Now()) }

// NowUnixNano returns the host's clock as Unix nanoseconds.
func NowUnixNano() int64 { return rt.Now() }

// Random fills buf with random bytes from the host.
func Random(buf []byte) { rt.Random(buf) }

// Self returns the daemon's 32-byte entity id (its ed25519 public key). It
// stays the same across migrations.
func Self() [32]byte { return rt.Self() }

// Errors of Publish besides ErrSendTooLarge and ErrOutboxFull, which it
// shares with Send (a publish is a message in the same outbox).
var (
	// ErrBadChannel: the channel name is not valid ('/'-separated
	// segments of [a-z0-9._-], 1 to 255 bytes).
	ErrBadChannel = errors.New("wasmesh: bad channel name")
	// ErrTooManyChannels: the daemon already published to as many
	// distinct channels as the host keeps an order for (256); channels it
	// published to before still take publishes.
	ErrTooManyChannels = errors.New("wasmesh: too many channels published to")
	// ErrPublishDenied: a result code this SDK does not know.
	ErrPublishDenied = errors.New("wasmesh: publish refused by host")
)

// Errors of Send, one per result code of the send import.
var (
	// ErrSendTooLarge: the payload is over the host's per-message cap.
	ErrSendTooLarge = errors.New("wasmesh: message too large to send")
	// ErrOutboxFull: too many of the daemon's messages are undelivered;
	// try again in a later event.
	ErrOutboxFull = errors.New("wasmesh: outbox full")
	// ErrSendRefused: a result code this SDK does not know.
	ErrSendRefused = errors.New("wasmesh: send refused by host")
)

// Send queues payload as a message to the daemon whose origin hash is
// target (Event.Sender of a message it sent, or its id parsed from 16 hex
// digits). It is delivered after the current event succeeds, exactly once
// and in order, wherever the target lives; it arrives there as an Event
// with Sender = this daemon's origin and Seq = this daemon's outbound
// sequence. If the event fails, nothing is sent. Call it only from the
// event handler.
func Send(target uint64, payload []byte) error {
	switch rt.Send(target, payload) {
	case 0:
		return nil
	case 1:
		return ErrSendTooLarge
	case 2:
		return ErrOutboxFull
	}
	return ErrSendRefused
}

// Publish queues payload for a channel. Like Send, it is published after
// the current event succeeds, exactly once and in order with the daemon's
// other publishes to that channel; if the event fails, nothing is
// published. The daemon's module can run only where its node grants it
// channels. Call it only from the event handler.
func Publish(channel string, payload []byte) error {
	switch rt.Publish(channel, payload) {
	case 0:
		return nil
	case 1:
		return ErrSendTooLarge
	case 2:
		return ErrOutboxFull
	case 3:
		return ErrBadChannel
	case 4:
		return ErrTooManyChannels
	}
	return ErrPublishDenied
}
