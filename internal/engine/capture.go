package engine

import (
	"bytes"
	"fmt"

	"github.com/wasmesh/wasmesh/internal/snapshot"
)

// image is a transparent capture of an instance: non-zero pages and every
// mutable global. Pages alias one contiguous buffer the image owns, so a
// capture is one pass of copying and reusing an image allocates nothing.
type image struct {
	memPages uint32
	index    []uint32
	data     []byte
	globals  []snapshot.Global
	// borrowed, when set, are pages owned by a snapshot the daemon was
	// restored from: the first checkpoint then costs no copy.
	borrowed []snapshot.Page
}

func (im *image) liveBytes() int {
	if im.borrowed != nil {
		return len(im.borrowed) * snapshot.PageSize
	}
	return len(im.data)
}

// borrow makes the image the state a snapshot describes, without copying.
func (im *image) borrow(s *snapshot.Snapshot) {
	im.memPages, im.borrowed, im.globals = s.MemoryPages, s.Pages, s.Globals
	im.index, im.data = im.index[:0], im.data[:0]
	if im.borrowed == nil {
		im.borrowed = []snapshot.Page{}
	}
}

// capture copies in's state into im, reusing im's buffers.
func (in *instance) capture(im *image, zero []byte) error {
	if in.tablesMutated() {
		return fmt.Errorf("%w: the guest mutated a table (table.set/grow/fill/copy/init); transparent snapshots cannot carry tables", ErrSnapshotUnsupported)
	}
	size := in.mem.Size()
	mem, ok := in.mem.Read(0, size)
	if !ok {
		return fmt.Errorf("%w: memory unreadable", ErrSnapshotUnsupported)
	}
	im.memPages = size / snapshot.PageSize
	im.index = im.index[:0]
	im.data = im.data[:0]
	im.borrowed = nil
	if cap(im.data) < int(size) {
		// Sized for the worst case up front: growing while copying costs
		// more than the copy itself.
		im.data = make([]byte, 0, size)
	}
	for p := uint32(0); p < im.memPages; p++ {
		page := mem[int(p)*snapshot.PageSize : int(p+1)*snapshot.PageSize]
		if bytes.Equal(page, zero) {
			continue
		}
		im.index = append(im.index, p)
		im.data = append(im.data, page...)
	}
	im.globals = im.globals[:0]
	for i, g := range in.globals {
		m := in.meta.Globals[i]
		im.globals = append(im.globals, snapshot.Global{Index: m.Index, Type: m.Type, Bits: g.Get()})
	}
	return nil
}

// apply writes an image into a fresh instance: grows memory to the
// captured size, writes the pages, zeroes every other page (data segments
// and start functions may have written there), and sets the globals.
func (in *instance) apply(memPages uint32, pages []snapshot.Page, globals []snapshot.Global) error {
	cur := in.mem.Size() / snapshot.PageSize
	if memPages < cur {
		return fmt.Errorf("%w: snapshot has %d memory pages, the fresh instance already %d", ErrSnapshotUnsupported, memPages, cur)
	}
	if memPages > cur {
		if _, ok := in.mem.Grow(memPages - cur); !ok {
			return fmt.Errorf("%w: snapshot needs %d pages, above this daemon's cap", ErrMemoryLimit, memPages)
		}
	}
	mem, ok := in.mem.Read(0, in.mem.Size())
	if !ok {
		return fmt.Errorf("%w: memory unwritable", ErrSnapshotUnsupported)
	}
	next := uint32(0)
	for _, pg := range pages {
		if pg.Index >= memPages || pg.Index < next || len(pg.Data) != snapshot.PageSize {
			return fmt.Errorf("%w: page %d out of order or malformed", ErrSnapshotUnsupported, pg.Index)
		}
		clear(mem[int(next)*snapshot.PageSize : int(pg.Index)*snapshot.PageSize])
		copy(mem[int(pg.Index)*snapshot.PageSize:], pg.Data)
		next = pg.Index + 1
	}
	clear(mem[int(next)*snapshot.PageSize : int(memPages)*snapshot.PageSize])
	if len(globals) != len(in.globals) {
		return fmt.Errorf("%w: snapshot has %d mutable globals, module %d", ErrSnapshotUnsupported, len(globals), len(in.globals))
	}
	for i, g := range globals {
		m := in.meta.Globals[i]
		if g.Index != m.Index || g.Type != m.Type {
			return fmt.Errorf("%w: global %d (%v) does not match module global %d (%v)", ErrSnapshotUnsupported, g.Index, g.Type, m.Index, m.Type)
		}
		in.globals[i].Set(g.Bits)
	}
	return nil
}

// pages returns the image's pages as snapshot pages aliasing its buffer.
func (im *image) pages() []snapshot.Page {
	if im.borrowed != nil {
		return im.borrowed
	}
	out := make([]snapshot.Page, len(im.index))
	for i, p := range im.index {
		out[i] = snapshot.Page{Index: p, Data: im.data[i*snapshot.PageSize : (i+1)*snapshot.PageSize : (i+1)*snapshot.PageSize]}
	}
	return out
}
