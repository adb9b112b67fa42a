package protocol

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/wasmesh/wasmesh/internal/migration/wire"
)

// Pre-copy, as two more sans-I/O machines. Before the protocol freezes a
// large daemon its source ships a base snapshot while the daemon keeps
// running, then rounds of the pages dirtied since (PrecopySource); the
// target builds a staged instance from the base and writes every round
// into it (PrecopyTarget). Each transfer is acknowledged with its round,
// and the source sends the next only after that acknowledgement, so the
// target's stage is always exactly the base plus the rounds it
// acknowledged. At the freeze the source sends, inside the ordinary
// snapshot transfer, the pages that differ from what the target
// acknowledged last, or a full snapshot when pre-copy did not end with an
// acknowledged stage. The three protocol machines never see pre-copy.

// Pre-copy errors; each matches ErrPrecopy.
var (
	ErrPrecopy = errors.New("migration: pre-copy")
	// ErrNoStagedBase: a round arrived for a migration with nothing staged
	// here (never sent, refused, expired, or lost in a restart).
	ErrNoStagedBase = fmt.Errorf("%w: round without a staged base", ErrPrecopy)
	// ErrPrecopyOrder: a transfer out of the one-at-a-time order.
	ErrPrecopyOrder = fmt.Errorf("%w: transfer out of order", ErrPrecopy)
	// ErrPrecopyRefused: the target answered a transfer with an error.
	ErrPrecopyRefused = fmt.Errorf("%w: refused by the target", ErrPrecopy)
	// ErrPrecopyTimeout: the target did not acknowledge a transfer in
	// PrecopySourceConfig.AckTimeout.
	ErrPrecopyTimeout = fmt.Errorf("%w: no acknowledgement", ErrPrecopy)
	// ErrPrecopyExpired: the stage waited longer than its TTL.
	ErrPrecopyExpired = fmt.Errorf("%w: staged base expired", ErrPrecopy)
)

// PrecopyChunk is one chunk of transfer Round of a pre-copy: round 0 is the
// base, then the rounds of dirtied pages. Chunk.Header.ID is the migration
// id, Chunk.SnapshotSeq the snapshot sequence the transfer was taken at.
type PrecopyChunk struct {
	Round uint32
	Chunk wire.SnapshotChunk
}

// PrecopyAck answers transfer Round of migration ID: Err empty means the
// target's stage now equals the base plus every round up to Round.
type PrecopyAck struct {
	ID    uint64
	Round uint32
	Err   string
}

// PrecopyOutput is what one call into a pre-copy machine asks of the I/O
// layer: send the chunks (source, to the target) or acknowledgements
// (target, to the source), then perform the effects in order.
type PrecopyOutput struct {
	Chunks  []PrecopyChunk
	Acks    []PrecopyAck
	Effects []PrecopyEffect
}

// Empty reports whether there is nothing to do.
func (o PrecopyOutput) Empty() bool {
	return len(o.Chunks) == 0 && len(o.Acks) == 0 && len(o.Effects) == 0
}

// PrecopyEffect is something only the I/O layer can do.
type PrecopyEffect interface{ isPrecopyEffect() }

// TakeBase (source): snapshot the running daemon and feed back BaseTaken
// (or TakeFailed{Round: 0}).
type TakeBase struct{}

// TakeRound (source): compute the pages dirtied since the last committed
// snapshot and feed back RoundTaken (or TakeFailed).
type TakeRound struct{ Round uint32 }

// CommitRound (source): the target acknowledged Round; what was taken for
// it (merged onto the previous committed snapshot, for a round) is now
// what the target's stage equals, and what the next round and the final
// delta are computed against.
type CommitRound struct{ Round uint32 }

// PrecopyFinished (source, exactly once) ends the pre-copy.
type PrecopyFinished struct{ Result PrecopyResult }

// StageBase (target): build a staged instance from the base bytes, then
// feed back StageDone{Round: 0}.
type StageBase struct {
	ID   uint64
	Data []byte
}

// AdvanceStage (target): write round Round into the staged instance (which
// the I/O layer discards if that fails), then feed back StageDone.
type AdvanceStage struct {
	ID    uint64
	Round uint32
	Data  []byte
}

// DiscardStage (target): drop the staged instance, if any, and every
// reservation of migration ID. Never emitted while a stage operation runs.
type DiscardStage struct{ ID uint64 }

func (TakeBase) isPrecopyEffect()        {}
func (TakeRound) isPrecopyEffect()       {}
func (CommitRound) isPrecopyEffect()     {}
func (PrecopyFinished) isPrecopyEffect() {}
func (StageBase) isPrecopyEffect()       {}
func (AdvanceStage) isPrecopyEffect()    {}
func (DiscardStage) isPrecopyEffect()    {}

// PrecopyInput is a result the I/O layer feeds back.
type PrecopyInput interface{ isPrecopyInput() }

// BaseTaken (source): the encoded base, its snapshot sequence, and how many
// bytes of pages it holds (what a first round is measured against).
type BaseTaken struct {
	Data      []byte
	Seq       uint64
	PageBytes int64
}

// RoundTaken (source): the encoded round, its snapshot sequence, and how
// many bytes of dirtied pages it holds.
type RoundTaken struct {
	Round      uint32
	Data       []byte
	Seq        uint64
	DirtyBytes int64
}

// TakeFailed (source): the base or a round could not be taken.
type TakeFailed struct {
	Round uint32
	Err   error
}

// StageDone (target): the stage operation for Round ended; Size is what
// the staged instance holds now.
type StageDone struct {
	Round uint32
	Size  uint64
	Err   error
}

func (BaseTaken) isPrecopyInput()  {}
func (RoundTaken) isPrecopyInput() {}
func (TakeFailed) isPrecopyInput() {}
func (StageDone) isPrecopyInput()  {}

// PrecopyResult is how a pre-copy ended. Staged: the target's stage equals
// the snapshot committed for Round, so the freeze may send a delta against
// it; otherwise the freeze must send a full snapshot.
type PrecopyResult struct {
	Staged    bool
	Round     uint32
	Rounds    int   // rounds after the base the target acknowledged
	Bytes     []int // size of the base, then of each acknowledged round
	Converged bool  // a round found at most DirtyBytes dirtied
	Err       error // why nothing is staged (nil when Staged)
}

// PrecopySourceConfig configures one pre-copy on the source.
type PrecopySourceConfig struct {
	ID     uint64
	Origin uint64 // the daemon, named in every chunk (the target keys by ID)
	Target NodeID
	// Rounds bounds the rounds after the base (0: base, then freeze).
	Rounds int
	// DirtyBytes: a round that finds at most this much dirtied is not
	// sent; the freeze will carry about as much.
	DirtyBytes int64
	ChunkSize  int
	// AckTimeout: give up (a full snapshot follows) when a transfer is not
	// acknowledged in this long. Must be positive.
	AckTimeout time.Duration
	// Retransmit resends an unacknowledged transfer after this long; 0
	// never does, for a reliable ordered stream.
	Retransmit time.Duration
}

type precopySourceState uint8

const (
	psTaking precopySourceState = iota + 1
	psWaiting
	psDone
)

// PrecopySource is the source side of one pre-copy.
type PrecopySource struct {
	cfg       PrecopySourceConfig
	state     precopySourceState
	round     uint32 // being taken or awaiting its acknowledgement
	committed bool   // some round (the base at least) is acknowledged
	prev      int64  // bytes the previous transfer carried: a round must shrink
	sending   []PrecopyChunk
	sentBytes int
	sentAt    time.Time
	deadline  time.Time
	res       PrecopyResult
}

// NewPrecopySource starts a pre-copy: its output asks for the base.
func NewPrecopySource(cfg PrecopySourceConfig, now time.Time) (*PrecopySource, PrecopyOutput, error) {
	if cfg.AckTimeout <= 0 || cfg.Rounds < 0 || cfg.Retransmit < 0 || cfg.Target == "" {
		return nil, PrecopyOutput{}, fmt.Errorf("%w: pre-copy source %+v", ErrConfig, cfg)
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultLimits().ChunkSize
	}
	s := &PrecopySource{cfg: cfg, state: psTaking}
	return s, PrecopyOutput{Effects: []PrecopyEffect{TakeBase{}}}, nil
}

// Done reports whether the pre-copy ended, and how.
func (s *PrecopySource) Done() (bool, PrecopyResult) { return s.state == psDone, s.res }

// Handle feeds back the result of TakeBase or TakeRound.
func (s *PrecopySource) Handle(in PrecopyInput, now time.Time) (PrecopyOutput, error) {
	var out PrecopyOutput
	if s.state != psTaking {
		return out, fmt.Errorf("%w: pre-copy source got %T while not taking", ErrWrongPhase, in)
	}
	switch in := in.(type) {
	case BaseTaken:
		if s.round != 0 {
			return out, fmt.Errorf("%w: base taken while round %d is", ErrWrongPhase, s.round)
		}
		s.prev = in.PageBytes
		s.send(in.Data, in.Seq, now, &out)
	case RoundTaken:
		if in.Round != s.round || s.round == 0 {
			return out, fmt.Errorf("%w: round %d taken while round %d is", ErrStaleAttempt, in.Round, s.round)
		}
		if !s.WouldSend(in.DirtyBytes) {
			s.res.Converged = in.DirtyBytes <= s.cfg.DirtyBytes
			s.finish(nil, &out)
			break
		}
		s.prev = in.DirtyBytes
		s.send(in.Data, in.Seq, now, &out)
	case TakeFailed:
		if in.Round != s.round {
			return out, fmt.Errorf("%w: take of round %d failed while round %d is", ErrStaleAttempt, in.Round, s.round)
		}
		// A round not taken leaves the stage as it was; a base not taken
		// leaves nothing.
		s.finish(in.Err, &out)
	default:
		return out, fmt.Errorf("%w: pre-copy source input %T", ErrInvalid, in)
	}
	return out, nil
}

// WouldSend says whether a round that found dirty bytes dirtied is sent,
// so the I/O layer encodes only those (RoundTaken.Data may be nil for the
// others). A round is not sent when the freeze will carry about as much
// (at most DirtyBytes: converged), or when it did not shrink since the
// previous transfer: the daemon dirties pages as fast as they travel, and
// another round would only resend them.
func (s *PrecopySource) WouldSend(dirty int64) bool {
	return dirty > s.cfg.DirtyBytes && dirty < s.prev
}

func (s *PrecopySource) send(data []byte, seq uint64, now time.Time, out *PrecopyOutput) {
	s.sending = s.sending[:0]
	for _, c := range Split(wire.Header{ID: s.cfg.ID, Attempt: max(s.round, 1)}, cmp.Or(s.cfg.Origin, s.cfg.ID), seq, data, s.cfg.ChunkSize) {
		s.sending = append(s.sending, PrecopyChunk{Round: s.round, Chunk: c})
	}
	s.sentBytes = len(data)
	s.state, s.sentAt, s.deadline = psWaiting, now, now.Add(s.cfg.AckTimeout)
	out.Chunks = append(out.Chunks, s.sending...)
}

// Step takes an acknowledgement from the target.
func (s *PrecopySource) Step(from NodeID, a PrecopyAck, now time.Time) (PrecopyOutput, error) {
	var out PrecopyOutput
	switch {
	case from != s.cfg.Target:
		return out, &SenderError{Role: RoleSource, From: from, Want: []NodeID{s.cfg.Target}}
	case a.ID != s.cfg.ID:
		return out, fmt.Errorf("%w: pre-copy ack of %016x", ErrUnknownMigration, a.ID)
	case s.state == psDone:
		return out, ErrFinished
	case s.state != psWaiting || a.Round != s.round:
		// A duplicate or a late answer to an earlier transfer.
		return out, fmt.Errorf("%w: pre-copy ack of round %d while at round %d", ErrStaleAttempt, a.Round, s.round)
	}
	if a.Err != "" {
		// The target holds nothing for this migration any more.
		s.committed = false
		s.finish(fmt.Errorf("%w: round %d: %s", ErrPrecopyRefused, a.Round, a.Err), &out)
		return out, nil
	}
	s.committed = true
	s.res.Bytes = append(s.res.Bytes, s.sentBytes)
	if s.round > 0 {
		s.res.Rounds++
	}
	out.Effects = append(out.Effects, CommitRound{Round: s.round})
	if int(s.round) >= s.cfg.Rounds {
		s.finish(nil, &out)
		return out, nil
	}
	s.round++
	s.state = psTaking
	s.sending = s.sending[:0]
	out.Effects = append(out.Effects, TakeRound{Round: s.round})
	return out, nil
}

// Tick retransmits or gives up an unacknowledged transfer.
func (s *PrecopySource) Tick(now time.Time) PrecopyOutput {
	var out PrecopyOutput
	if s.state != psWaiting {
		return out
	}
	if !now.Before(s.deadline) {
		// The target may or may not have staged this transfer: nothing it
		// holds can be relied on.
		s.committed = false
		s.finish(fmt.Errorf("%w: round %d in %v", ErrPrecopyTimeout, s.round, s.cfg.AckTimeout), &out)
		return out
	}
	if s.cfg.Retransmit > 0 && now.Sub(s.sentAt) >= s.cfg.Retransmit {
		s.sentAt = now
		out.Chunks = append(out.Chunks, s.sending...)
	}
	return out
}

// Cancel ends the pre-copy now; nothing staged is relied on.
func (s *PrecopySource) Cancel(err error) PrecopyOutput {
	var out PrecopyOutput
	if s.state != psDone {
		s.committed = false
		s.finish(err, &out)
	}
	return out
}

func (s *PrecopySource) finish(err error, out *PrecopyOutput) {
	s.res.Staged = s.committed
	if s.committed {
		// The last acknowledged round: the one in flight or being taken is
		// not in the stage.
		s.res.Round = s.round
		if s.state == psTaking && s.round > 0 {
			s.res.Round = s.round - 1
		}
	} else {
		s.res.Rounds, s.res.Converged = 0, false
		if err == nil {
			err = ErrPrecopy
		}
		s.res.Err = err
	}
	s.state, s.sending = psDone, nil
	out.Effects = append(out.Effects, PrecopyFinished{Result: s.res})
}
