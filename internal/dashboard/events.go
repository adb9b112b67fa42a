package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/wasmesh/wasmesh/node"
)

// Source is what the event stream reads; *node.Node implements it.
type Source interface {
	Nodes() []node.NodeInfo
	Daemons(ctx context.Context) ([]node.DaemonInfo, []string)
}

// ActivitySource is a Source that can also tell its migrations and drain
// in progress; without it the stream reports none.
type ActivitySource interface {
	Activity() node.Activity
}

// State is one message of GET /v1/events: the cluster as this node sees it.
type State struct {
	Time        time.Time     `json:"time"`
	Node        string        `json:"node"` // the node answering
	Members     []Member      `json:"members"`
	Daemons     []Daemon      `json:"daemons"`
	Unreachable []string      `json:"unreachable,omitempty"`
	Activity    node.Activity `json:"activity"`
}

// Member is a node of the cluster.
type Member struct {
	Name     string   `json:"name"`
	ID       string   `json:"id"`
	State    string   `json:"state"`
	Tags     []string `json:"tags"`
	Load     int      `json:"load"`
	Draining bool     `json:"draining"`
	Local    bool     `json:"local,omitempty"`
	Version  string   `json:"version,omitempty"`
	Admin    string   `json:"admin,omitempty"`
}

// Daemon is a daemon of the cluster with its event rate.
type Daemon struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Node   string `json:"node"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
	// EventsPerSec is the processed count's rate since the last message
	// (0 on the first one, and after a move resets the counter).
	EventsPerSec    float64 `json:"events_per_sec"`
	EventsProcessed uint64  `json:"events_processed"`
	Errors          uint64  `json:"errors"`
	MemoryBytes     uint64  `json:"memory_bytes"`
	LastError       string  `json:"last_error,omitempty"`
}

// EventsOptions tune the stream.
type EventsOptions struct {
	// Interval between messages; default 1 s. While a migration or drain
	// runs messages come four times as often, so progress moves.
	Interval time.Duration
	// MaxStreams caps open streams (each polls the cluster); default 16.
	MaxStreams int
}

type events struct {
	src   Source
	opts  EventsOptions
	slots chan struct{}
}

// Events serves text/event-stream: a "state" event with a State as its
// data every interval, until the client goes away.
func Events(src Source, opts EventsOptions) http.Handler {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 16
	}
	return &events{src: src, opts: opts, slots: make(chan struct{}, opts.MaxStreams)}
}

// rate remembers a daemon's processed count to turn it into a rate.
type rate struct {
	count uint64
	at    time.Time
}

func (e *events) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case e.slots <- struct{}{}:
		defer func() { <-e.slots }()
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"too many dashboard streams open","code":"busy"}` + "\n"))
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	last := map[string]rate{}
	var buf bytes.Buffer
	for {
		st := e.state(ctx, last)
		buf.Reset()
		buf.WriteString("event: state\ndata: ")
		if err := json.NewEncoder(&buf).Encode(st); err != nil {
			return
		}
		buf.WriteString("\n") // Encode ended the data line; this ends the event
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return
		}
		wait := e.opts.Interval
		if len(st.Activity.Migrations) > 0 || st.Activity.Drain != nil {
			wait /= 4
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// state gathers one message; last carries the counts between messages.
func (e *events) state(ctx context.Context, last map[string]rate) State {
	// A peer that hangs must not stall the stream past a couple of beats.
	cctx, cancel := context.WithTimeout(ctx, 2*e.opts.Interval)
	defer cancel()
	ds, missing := e.src.Daemons(cctx)
	now := time.Now()
	st := State{Time: now, Members: []Member{}, Daemons: make([]Daemon, 0, len(ds)), Unreachable: missing}
	for _, n := range e.src.Nodes() {
		if n.Local {
			st.Node = n.Name
		}
		st.Members = append(st.Members, Member{
			Name: n.Name, ID: n.ID, State: n.State, Tags: n.Tags, Load: n.Load,
			Draining: n.State == "draining", Local: n.Local, Version: n.Version, Admin: n.Admin,
		})
	}
	seen := make(map[string]bool, len(ds))
	for _, d := range ds {
		status := d.Status
		if status == "" {
			status = node.StatusRunning
			if d.Failed {
				status = node.StatusFailed
			}
		}
		out := Daemon{
			ID: d.ID, Name: d.Name, Node: d.Node, Kind: d.Kind, Status: status,
			EventsProcessed: d.EventsProcessed, Errors: d.Errors, MemoryBytes: d.MemoryBytes, LastError: d.LastError,
		}
		if p, ok := last[d.ID]; ok && d.EventsProcessed >= p.count {
			if dt := now.Sub(p.at).Seconds(); dt > 0 {
				out.EventsPerSec = float64(d.EventsProcessed-p.count) / dt
			}
		}
		last[d.ID] = rate{count: d.EventsProcessed, at: now}
		seen[d.ID] = true
		st.Daemons = append(st.Daemons, out)
	}
	// Forget daemons that went away, so a long-open stream stays bounded.
	for id := range last {
		if !seen[id] {
			delete(last, id)
		}
	}
	if as, ok := e.src.(ActivitySource); ok {
		st.Activity = as.Activity()
	}
	if st.Activity.Migrations == nil {
		st.Activity.Migrations = []node.MigrationActivity{}
	}
	return st
}
