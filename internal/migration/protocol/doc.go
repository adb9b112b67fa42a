// Package protocol is the sans-I/O live-migration protocol (SPEC §4): three
// pure state machines — Orchestrator, Source and Target — that turn inputs
// (a message from an authenticated peer, a result from the I/O layer, the
// current time) into an Output: messages to send and effects to perform.
//
// Nothing here opens a socket, starts a goroutine or reads a clock. Callers
// own one machine per role per migration, serialise calls into it, send
// Output.Messages, perform Output.Effects in order and feed results back
// with Handle. Tick drives retransmission, timeouts and NotReady backoff.
//
// Machines are not safe for concurrent use. Every error returned by Step or
// Handle leaves the machine's state unchanged unless the Output says
// otherwise (an Abort it sends, a Done effect).
//
// See README.md for the message table and the effects each role emits.
package protocol
