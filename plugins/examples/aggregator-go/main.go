// Command aggregator-go is a wasmesh daemon that subscribes to channels and
// aggregates what is published there, and publishes itself.
//
//   - "get" emits total=<n>, anomalies=<n>, then <publisher>=<count>:<last>
//     for each publisher, sorted by name.
//   - "pub <channel> <count> [<tag>]" publishes count (1..1000) messages
//     "<tag> <seq>", seq continuing this daemon's own counter from 1; the
//     tag defaults to "d" and the first 8 hex digits of its entity id. It
//     emits published=<count> last=<seq>, or fails the event as a whole.
//   - anything else, and any two-field payload, is a channel message
//     "<publisher> <seq>": it counts, and a seq other than the publisher's
//     last+1 (or a payload that does not parse, counted under "?") is an
//     anomaly. Messages never fail their event.
//
// The state is ordinary Go data: the host snapshots the daemon's memory
// transparently, so it survives migration without any code here.
package main

import wasmesh "github.com/wasmesh/wasmesh/sdk-guest/go"

// state is package-level because the daemon's state must live somewhere
// the transparent snapshot sees; all logic is on the type, for tests.
var state = newAggregator()

func init() {
	wasmesh.Handle(func(ev wasmesh.Event) ([][]byte, error) {
		return state.handle(ev.Payload, wasmesh.Self, wasmesh.Publish)
	})
}

func main() {}
