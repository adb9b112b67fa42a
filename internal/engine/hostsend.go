package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmesh/wasmesh/abi"
	"github.com/wasmesh/wasmesh/internal/channel"
)

// hostSend is send(target_ptr, ptr, len) -> i32. The message is buffered
// with the event's outputs and joins the outbox only when the event
// commits, so a rolled-back event sends nothing.
//
// The result depends on how full the outbox is, which is not a function of
// the daemon's inputs (deliveries drain it meanwhile), so it is recorded
// with the clock and random readings: a rollback replay or a crash redo
// hands the guest the same answers and queues the same messages with the
// same sequence numbers.
func hostSend(ctx context.Context, mod api.Module, stack []uint64) {
	in := instOf(ctx)
	if in.phase != phaseProcess {
		panic(&guestAbort{cause: ErrWrongMoment, detail: "send is only allowed inside wasmesh_process"})
	}
	target := binary.LittleEndian.Uint64(in.read(mod, "send", api.DecodeU32(stack[0]), 8))
	p := in.read(mod, "send", api.DecodeU32(stack[1]), api.DecodeU32(stack[2]))
	in.reading(1)
	var code [1]byte
	in.rec.bytes(code[:], func(b []byte) { b[0] = in.sendCode(len(p)) })
	if code[0] > abi.SendFull {
		panic(&guestAbort{cause: ErrGuestTrap, detail: fmt.Sprintf("recorded send result %d is not one the host gives", code[0])})
	}
	if code[0] == abi.SendQueued {
		in.sends = append(in.sends, Send{Target: target, Payload: slices.Clone(p)})
		in.sendBytes += len(p)
	}
	stack[0] = api.EncodeI32(int32(code[0]))
}

// sendCode is the live answer for a message of n bytes, counting the
// sends this event already queued (the daemon's lock is held).
func (in *instance) sendCode(n int) byte {
	if n > MaxSendBytes {
		return abi.SendTooLarge
	}
	if !in.d.outbox.room(len(in.sends)+1, in.sendBytes+n) {
		return abi.SendFull
	}
	return abi.SendQueued
}

// hostPublish is publish(ch_ptr, ch_len, ptr, len) -> i32: send's twin
// for a channel. The message joins the outbox at commit as an entry
// without a target, numbered from the same outbound sequence and chained
// to the daemon's previous publish to that channel (Send.Prev); the node
// delivers it to the channel's home. The answer is recorded like send's,
// for the same reason: the outbox's fullness is not a function of the
// daemon's inputs.
func hostPublish(ctx context.Context, mod api.Module, stack []uint64) {
	in := instOf(ctx)
	if in.phase != phaseProcess {
		panic(&guestAbort{cause: ErrWrongMoment, detail: "publish is only allowed inside wasmesh_process"})
	}
	ch := in.read(mod, "publish", api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	p := in.read(mod, "publish", api.DecodeU32(stack[2]), api.DecodeU32(stack[3]))
	in.reading(1)
	var code [1]byte
	in.rec.bytes(code[:], func(b []byte) { b[0] = in.publishCode(ch, len(p)) })
	if code[0] > abi.PublishTooManyChannels {
		panic(&guestAbort{cause: ErrGuestTrap, detail: fmt.Sprintf("recorded publish result %d is not one the host gives", code[0])})
	}
	if code[0] == abi.PublishQueued {
		name := string(ch)
		// A record that says "queued" for what the host never queues
		// would put a message in the outbox that no snapshot can carry.
		if channel.ValidName(name) != nil || len(p) > MaxSendBytes {
			panic(&guestAbort{cause: ErrGuestTrap, detail: "recorded publish result 0 for a publish the host refuses"})
		}
		in.sends = append(in.sends, Send{Channel: name, Payload: slices.Clone(p)})
		in.sendBytes += len(p)
		in.d.outbox.queuedPublish(name)
	}
	stack[0] = api.EncodeI32(int32(code[0]))
}

// publishCode is the live answer for a publish of n bytes to ch; the
// checks that depend only on the call come first, so a bad call answers
// the same whatever the outbox holds.
func (in *instance) publishCode(ch []byte, n int) byte {
	if len(ch) > channel.MaxNameLen || channel.ValidName(string(ch)) != nil {
		return abi.PublishBadChannel
	}
	if n > MaxSendBytes {
		return abi.PublishTooLarge
	}
	if !in.d.outbox.channelRoom(string(ch)) {
		return abi.PublishTooManyChannels
	}
	if !in.d.outbox.room(len(in.sends)+1, in.sendBytes+n) {
		return abi.PublishFull
	}
	return abi.PublishQueued
}

// resetSends drops the running event's queued sends and publishes: they
// were committed, or the event failed and they never happen.
func (in *instance) resetSends() {
	clear(in.sends)
	in.sends = in.sends[:0]
	in.sendBytes = 0
	clear(in.d.outbox.evNew)
}
