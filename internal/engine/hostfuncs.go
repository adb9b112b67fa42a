package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmesh/wasmesh/abi"
)

// recorder makes a daemon's nondeterministic inputs (clock, randomness)
// replayable: while recording it appends what the guest was given; while
// replaying it hands the same bytes back, so a rollback replay reaches
// exactly the state the live run had.
type recorder struct {
	replaying bool
	buf       []byte // recording: appended; replaying: consumed from pos
	pos       int
	diverged  bool
}

func (r *recorder) reset() { r.buf, r.pos, r.replaying, r.diverged = r.buf[:0], 0, false, false }

// bytes fills p from the live source, recording it, or from the record.
func (r *recorder) bytes(p []byte, live func([]byte)) {
	if r.replaying {
		if r.pos+len(p) > len(r.buf) {
			r.diverged = true
			live(p)
			return
		}
		copy(p, r.buf[r.pos:])
		r.pos += len(p)
		return
	}
	live(p)
	r.buf = append(r.buf, p...)
}

func (r *recorder) u64(live func() uint64) uint64 {
	var b [8]byte
	r.bytes(b[:], func(p []byte) { binary.LittleEndian.PutUint64(p, live()) })
	return binary.LittleEndian.Uint64(b[:])
}

func instOf(ctx context.Context) *instance {
	in, _ := ctx.Value(instKey{}).(*instance)
	if in == nil {
		panic(&guestAbort{cause: ErrWrongMoment, detail: "host function called outside a wasmesh call"})
	}
	in.checkStop()
	return in
}

// checkStop ends a guest whose budget the watchdog has already spent at its
// next host call, so a loop of host calls (or one of large host calls) is
// stopped there rather than at the next loop-header check.
func (in *instance) checkStop() {
	if in.stopping() {
		panic(&guestAbort{cause: ErrEventTimeout, detail: fmt.Sprintf("budget %s", in.d.limits.EventTimeout)})
	}
}

func (in *instance) read(mod api.Module, fn string, ptr, n uint32) []byte {
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(&guestAbort{cause: ErrBadPointer, detail: fmt.Sprintf("%s(ptr=%d, len=%d) outside memory of %d bytes", fn, ptr, n, mod.Memory().Size())})
	}
	return b
}

// reading is the gate of every live clock or random read: over the
// per-event cap the event fails before anything is read or recorded, so
// neither journal grows past it. A replay hands back recorded bytes, which
// were under the cap when recorded.
func (in *instance) reading(n int) {
	if in.rec.replaying {
		return
	}
	max := in.d.limits.MaxReadingsBytes
	if max <= 0 {
		max = DefaultMaxReadingsBytes
	}
	if n > max-len(in.rec.buf) {
		panic(&guestAbort{cause: ErrReadingsLimit, detail: fmt.Sprintf("%d more clock/random bytes after %d, over the per-event cap of %d", n, len(in.rec.buf), max)})
	}
}

func (in *instance) now() int64 {
	in.reading(8)
	return int64(in.rec.u64(func() uint64 { return uint64(in.rt.cfg.Clock().UnixNano()) }))
}

// walltime, nanotime, randReader, logWriter, nanosleep and osyield are
// what wazero's WASI calls reach (clock_time_get, random_get, fd_write to
// stdout/stderr, poll_oneoff, sched_yield): each checks the stop flag
// first, so a loop of WASI calls is stopped at its next call, as a loop of
// wasmesh host calls is (instOf). The WASI calls that reach none of them
// do constant work, so the loop-header count bounds a loop of them.
func (in *instance) walltime() (int64, int32) {
	in.checkStop()
	ns := in.now()
	return ns / 1e9, int32(ns % 1e9)
}

func (in *instance) nanotime() int64 {
	in.checkStop()
	in.reading(8)
	return int64(in.rec.u64(func() uint64 { return uint64(in.rt.nanotime()) }))
}

type randReader struct{ in *instance }

func (r randReader) Read(p []byte) (int, error) {
	r.in.checkStop()
	r.in.reading(len(p))
	r.in.rec.bytes(p, r.in.liveRandom)
	return len(p), nil
}

func (in *instance) liveRandom(p []byte) {
	if _, err := in.rt.cfg.Rand.Read(p); err != nil {
		panic(&guestAbort{cause: ErrGuestTrap, detail: "host randomness unavailable: " + err.Error()})
	}
}

// logWriter routes WASI stdout/stderr into the daemon's log, line by line.
type logWriter struct {
	in    *instance
	level int32
	part  []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.in.checkStop()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.keep(p)
			break
		}
		w.keep(p[:i])
		w.in.log(w.level, w.part)
		w.part = w.part[:0]
		p = p[i+1:]
	}
	return n, nil
}

// keep adds p to the partial line, up to the line cap: log cuts a line
// there anyway, and a guest writing gigabytes without a newline must not
// make the host hold them.
func (w *logWriter) keep(p []byte) {
	if room := w.in.d.limits.MaxLogLineBytes - len(w.part); len(p) > room {
		p = p[:max(room, 0)]
	}
	w.part = append(w.part, p...)
}

// nanosleep is WASI's sleep (poll_oneoff with a clock subscription): it
// does not sleep, as wazero's default does not, so an event cannot wait
// past its budget; it only checks the stop flag.
func (in *instance) nanosleep(int64) { in.checkStop() }

// osyield is sched_yield's hook: a stop check.
func (in *instance) osyield() { in.checkStop() }

func (in *instance) log(level int32, msg []byte) {
	if in.rec.replaying {
		return
	}
	in.logLines++
	if in.logLines > in.d.limits.MaxLogLines {
		in.d.logsDropped.Add(1)
		return
	}
	if len(msg) > in.d.limits.MaxLogLineBytes {
		msg = msg[:in.d.limits.MaxLogLineBytes]
	}
	in.d.logs.add(LogLine{Time: in.rt.cfg.Clock(), Level: int(level), Text: string(msg)})
}

// hostModule builds the "wasmesh" import module. One instance serves every
// daemon of the runtime; the calling daemon is found through the call's
// context, which each instance creates once.
func hostModule(r wazero.Runtime) wazero.HostModuleBuilder {
	b := r.NewHostModuleBuilder(abi.ImportModule)
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	fn := func(name string, f api.GoModuleFunc, params, results []api.ValueType) {
		b.NewFunctionBuilder().WithGoModuleFunction(f, params, results).Export(name)
	}
	fn(abi.ImportEmit, hostEmit, []api.ValueType{i32, i32}, nil)
	fn(abi.ImportFail, hostFail, []api.ValueType{i32, i32}, nil)
	fn(abi.ImportLog, hostLog, []api.ValueType{i32, i32, i32}, nil)
	fn(abi.ImportStateWrite, hostStateWrite, []api.ValueType{i32, i32}, nil)
	fn(abi.ImportNow, hostNow, nil, []api.ValueType{i64})
	fn(abi.ImportRandom, hostRandom, []api.ValueType{i32, i32}, nil)
	fn(abi.ImportSelf, hostSelf, []api.ValueType{i32}, nil)
	fn(abi.ImportPublish, hostPublish, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32})
	fn(abi.ImportSend, hostSend, []api.ValueType{i32, i32, i32}, []api.ValueType{i32})
	return b
}

func hostEmit(ctx context.Context, mod api.Module, stack []uint64) {
	in := instOf(ctx)
	if in.phase != phaseProcess {
		panic(&guestAbort{cause: ErrWrongMoment, detail: "emit is only allowed inside wasmesh_process"})
	}
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	p := in.read(mod, "emit", ptr, n)
	lim := &in.d.limits
	if in.out.count() >= lim.MaxOutputs {
		panic(&guestAbort{cause: ErrOutputLimit, detail: fmt.Sprintf("more than %d outputs", lim.MaxOutputs)})
	}
	if len(p) > lim.MaxOutputSize {
		panic(&guestAbort{cause: ErrOutputLimit, detail: fmt.Sprintf("one output of %d bytes, limit %d", len(p), lim.MaxOutputSize)})
	}
	if in.out.bytes()+len(p) > lim.MaxOutputBytes {
		panic(&guestAbort{cause: ErrOutputLimit, detail: fmt.Sprintf("more than %d output bytes", lim.MaxOutputBytes)})
	}
	in.out.add(p)
}

func hostFail(ctx context.Context, mod api.Module, stack []uint64) {
	in := instOf(ctx)
	p := in.read(mod, "fail", api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	if len(p) > 1024 {
		p = p[:1024]
	}
	in.failMsg = string(p)
}

func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	in := instOf(ctx)
	level := api.DecodeI32(stack[0])
	if level < abi.LogDebug || level > abi.LogError {
		level = abi.LogInfo
	}
	p := in.read(mod, "log", api.DecodeU32(stack[1]), api.DecodeU32(stack[2]))
	in.log(level, p)
}

func hostStateWrite(ctx context.Context, mod api.Module, stack []uint64) {
	in := instOf(ctx)
	if in.phase != phaseSnapshot {
		panic(&guestAbort{cause: ErrWrongMoment, detail: "state_write is only allowed inside wasmesh_snapshot"})
	}
	p := in.read(mod, "state_write", api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	if len(in.state)+len(p) > in.d.limits.MaxStateBytes {
		panic(&guestAbort{cause: ErrOutputLimit, detail: fmt.Sprintf("state over %d bytes", in.d.limits.MaxStateBytes)})
	}
	in.state = append(in.state, p...)
}

func hostNow(ctx context.Context, _ api.Module, stack []uint64) {
	stack[0] = uint64(instOf(ctx).now())
}

func hostRandom(ctx context.Context, mod api.Module, stack []uint64) {
	in := instOf(ctx)
	p := in.read(mod, "random", api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	in.reading(len(p))
	in.rec.bytes(p, in.liveRandom)
}

func hostSelf(ctx context.Context, mod api.Module, stack []uint64) {
	in := instOf(ctx)
	p := in.read(mod, "self", api.DecodeU32(stack[0]), abi.EntityIDSize)
	id := in.d.entity
	copy(p, id[:])
}

// LogLine is one line of a daemon's log.
type LogLine struct {
	Time  time.Time
	Level int
	Text  string
}
