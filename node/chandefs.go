package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/wasmesh/wasmesh/internal/channel"
	meshquic "github.com/wasmesh/wasmesh/internal/transport/quic"
	"github.com/wasmesh/wasmesh/internal/transport/quic/nodekey"
)

// Channel definitions are kept by every member, not only by the home:
// whichever member becomes a channel's home (its home left, or crashed
// without handing it over) can then take it up with its definition, and
// each node keeps them on disk across restarts. A node pushes what it
// knows to every member it has not pushed the current set to.

// maxDefs bounds the definitions a node keeps (and accepts in one push).
const maxDefs = 1 << 16

type chanDefs struct {
	n    *Node
	path string

	mu     sync.Mutex
	defs   map[string]channel.Definition
	pushed map[nodekey.NodeID]bool
	// writeMu orders the file writes; mu is not held while writing.
	writeMu sync.Mutex
}

func newChanDefs(n *Node, path string) *chanDefs {
	return &chanDefs{n: n, path: path, defs: map[string]channel.Definition{}, pushed: map[nodekey.NodeID]bool{}}
}

func encodeDefs(defs []channel.Definition) ([]byte, error) {
	frames := make([][]byte, len(defs))
	for i, d := range defs {
		b, err := channel.Encode(channel.CreateMsg{Def: d})
		if err != nil {
			return nil, err
		}
		frames[i] = b
	}
	return msgpack.Marshal(chanBatchFrame{B: frames})
}

func decodeDefs(frames [][]byte) ([]channel.Definition, error) {
	if len(frames) > maxDefs {
		return nil, fmt.Errorf("%w: %d channel definitions (max %d)", ErrTooLarge, len(frames), maxDefs)
	}
	out := make([]channel.Definition, 0, len(frames))
	for _, b := range frames {
		m, err := channel.Decode(b)
		if err != nil {
			return nil, wrap(ErrBadRequest, err)
		}
		c, ok := m.(channel.CreateMsg)
		if !ok {
			return nil, fmt.Errorf("%w: a %T among channel definitions", ErrBadRequest, m)
		}
		out = append(out, c.Def)
	}
	return out, nil
}

// load reads the definitions kept on disk; a missing file is none.
func (c *chanDefs) load() error {
	b, err := os.ReadFile(c.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var f chanBatchFrame
	if err := msgpack.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadConfig, c.path, err)
	}
	defs, err := decodeDefs(f.B)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadConfig, c.path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range defs {
		c.defs[d.Name] = d
	}
	return nil
}

func (c *chanDefs) get(name string) (channel.Definition, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.defs[name]
	return d, ok
}

func (c *chanDefs) all() []channel.Definition {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]channel.Definition, 0, len(c.defs))
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range c.defs {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, c.defs[name])
	}
	return out
}

// learn records definitions; when that changed anything, they are
// written to disk and pushed to every member again.
func (c *chanDefs) learn(defs ...channel.Definition) {
	c.mu.Lock()
	changed := false
	for _, d := range defs {
		if old, ok := c.defs[d.Name]; ok && old.Equal(d) {
			continue
		}
		if _, ok := c.defs[d.Name]; !ok && len(c.defs) >= maxDefs {
			continue
		}
		c.defs[d.Name] = d
		changed = true
	}
	if changed {
		clear(c.pushed)
	}
	c.mu.Unlock()
	if changed {
		// Off the caller's path: the home learns a definition with its
		// machine's lock held.
		c.n.wg.Add(1)
		go func() {
			defer c.n.wg.Done()
			if err := c.save(); err != nil {
				c.n.log.Warn("channel definitions not saved; a restart relies on the other members to learn them again", "err", err)
			}
		}()
		c.n.chHome.membersChanged()
	}
}

func (c *chanDefs) save() error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	b, err := encodeDefs(c.all())
	if err != nil {
		return err
	}
	tmp := c.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(c.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func (c *chanDefs) serve() {
	c.n.ep.Handle(subChanDefs, meshquic.Unary(func(ctx context.Context, _ meshquic.NodeID, req chanBatchFrame) (struct{}, error) {
		defs, err := decodeDefs(req.B)
		if err != nil {
			return struct{}{}, toWire(err)
		}
		c.learn(defs...)
		return struct{}{}, nil
	}))
}

// push sends the definitions to every peer that does not have the
// current set yet.
func (c *chanDefs) push(ctx context.Context) {
	defs := c.all()
	if len(defs) == 0 {
		return
	}
	var frames [][]byte
	for _, d := range defs {
		b, err := channel.Encode(channel.CreateMsg{Def: d})
		if err != nil {
			return
		}
		frames = append(frames, b)
	}
	for _, p := range c.n.peers() {
		c.mu.Lock()
		done := c.pushed[p.id]
		c.mu.Unlock()
		if done {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, chanCallTimeout)
		err := c.n.ep.Call(cctx, p.peer(), subChanDefs, chanBatchFrame{B: frames}, nil)
		cancel()
		if err == nil {
			c.mu.Lock()
			c.pushed[p.id] = true
			c.mu.Unlock()
		}
	}
}
