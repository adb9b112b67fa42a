package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

const (
	// maxPublish caps one pub command: every publish of an event is held
	// until the event commits, so an unbounded count would be an unbounded
	// transaction.
	maxPublish = 1000
	// maxPublishers bounds the table a stream of distinct names can grow;
	// names past it are counted under unknownPublisher.
	maxPublishers = 1024
	// maxName bounds a publisher name (and a pub tag, which becomes one).
	maxName = 64
	// unknownPublisher collects messages that do not parse, so they still
	// show up in get. It is not a valid name itself.
	unknownPublisher = "?"
)

// Errors of the commands; the handler returns them wrapped, failing the
// event, so errors.Is tells a caller which rule was broken.
var (
	errUsage      = errors.New("usage: pub <channel> <count> [<tag>]")
	errCount      = fmt.Errorf("count must be a decimal from 1 to %d", maxPublish)
	errTag        = fmt.Errorf("tag must be 1 to %d bytes and not %s", maxName, unknownPublisher)
	errPublishing = errors.New("publish failed")
)

// publisher is what the aggregator knows of one publisher.
type publisher struct {
	count uint64 // messages received from it
	last  uint64 // the seq of the latest of them (0: none parsed)
}

// aggregator is the daemon's whole state. It is plain Go data: the host's
// transparent snapshot carries it across migrations.
type aggregator struct {
	total     uint64
	anomalies uint64
	pubs      map[string]*publisher
	published uint64 // seq of this daemon's latest own publish
}

func newAggregator() *aggregator {
	return &aggregator{pubs: make(map[string]*publisher)}
}

// handle runs one event. self is called only when pub needs the default
// tag; publish is the SDK's (a stub in tests).
func (a *aggregator) handle(payload []byte, self func() [32]byte, publish func(channel string, payload []byte) error) ([][]byte, error) {
	f := strings.Fields(string(payload))
	// Two fields are always a message, whatever the first one says: the
	// home redelivers a channel message whose event failed until it
	// succeeds, so no well-formed message may look like a bad command.
	switch {
	case len(f) == 1 && f[0] == "get":
		return a.get(), nil
	case len(f) != 2 && len(f) > 0 && f[0] == "pub":
		return a.pub(f[1:], self, publish)
	}
	a.message(f)
	// A channel message has no answer: outputs of a delivery go to the
	// daemon's chain, and one per message would only grow it.
	return nil, nil
}

// get reports total, anomalies and then each publisher, sorted by name
// so that the output is a function of the state alone.
func (a *aggregator) get() [][]byte {
	outs := [][]byte{
		fmt.Appendf(nil, "total=%d", a.total),
		fmt.Appendf(nil, "anomalies=%d", a.anomalies),
	}
	for _, name := range slices.Sorted(maps.Keys(a.pubs)) {
		p := a.pubs[name]
		outs = append(outs, fmt.Appendf(nil, "%s=%d:%d", name, p.count, p.last))
	}
	return outs
}

// pub publishes count messages "<tag> <seq>". Any failure fails the whole
// event rather than reporting a partial result: the host then withdraws
// the publishes already made in it, so subscribers never see a gap or a
// half-sent batch, and the seq counter (rolled back with the event) stays
// in step with what was really published.
func (a *aggregator) pub(args []string, self func() [32]byte, publish func(string, []byte) error) ([][]byte, error) {
	if len(args) != 2 && len(args) != 3 {
		return nil, fmt.Errorf("pub takes 2 or 3 arguments, got %d: %w", len(args), errUsage)
	}
	channel := args[0]
	count, ok := parseDecimal(args[1])
	if !ok || count > maxPublish {
		return nil, fmt.Errorf("pub count %.20q: %w", args[1], errCount)
	}
	var tag string
	if len(args) == 3 {
		tag = args[2]
		if !validName(tag) {
			return nil, fmt.Errorf("pub tag %.80q: %w", tag, errTag)
		}
	} else {
		id := self()
		tag = "d" + hex.EncodeToString(id[:4])
	}
	seq := a.published
	for k := uint64(0); k < count; k++ {
		seq++
		if err := publish(channel, fmt.Appendf(nil, "%s %d", tag, seq)); err != nil {
			return nil, fmt.Errorf("pub %q: %w: error=%w after=%d", channel, errPublishing, err, k)
		}
	}
	a.published = seq
	return [][]byte{fmt.Appendf(nil, "published=%d last=%d", count, seq)}, nil
}

// message accounts one channel message "<publisher> <seq>". Anything else
// is an anomaly counted under unknownPublisher: a subscriber cannot refuse
// what was published, so it reports it instead of failing.
func (a *aggregator) message(f []string) {
	a.total++
	var seq uint64
	ok := len(f) == 2 && validName(f[0])
	if ok {
		seq, ok = parseDecimal(f[1])
	}
	name := unknownPublisher
	if ok {
		name = f[0]
	}
	p := a.pubs[name]
	if p == nil && name != unknownPublisher && len(a.pubs) >= maxPublishers {
		name, ok = unknownPublisher, false
		p = a.pubs[name]
	}
	if p == nil {
		p = &publisher{}
		// Clone: f[0] is a slice of the whole payload, which the key
		// would otherwise keep alive.
		a.pubs[strings.Clone(name)] = p
	}
	p.count++
	if !ok {
		a.anomalies++
		return
	}
	// A duplicate, a loss or a reorder all break the +1 step.
	if seq != p.last+1 {
		a.anomalies++
	}
	p.last = seq
}

func validName(s string) bool {
	return len(s) > 0 && len(s) <= maxName && s != unknownPublisher
}

// parseDecimal accepts canonical decimals from 1 up (no sign, no leading
// zero), so each number has exactly one spelling.
func parseDecimal(s string) (uint64, bool) {
	if s == "" || s[0] == '0' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}
