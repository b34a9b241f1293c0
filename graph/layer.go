package graph

import (
	"bufio"
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"io"
)

// A graph tier is stored as a base (its canonical stream) plus delta layers:
// canonical streams of the records that changed since an earlier state,
// upserts as the whole new record and deletions as tombstone lines. Diff
// computes a layer from two states, Apply merges a base and its layers back
// into a state, both in one streaming pass over sorted input.
//
// A layer built from the mutation log (oplog.Replay's layer mode) also holds
// detach lines, {"id":"42","type":"detach"} (NewDetach), first in the
// stream: node 42 was deleted during the layer's interval, so every
// relationship of an older input that starts or ends at it, in any tier,
// is gone. The log cannot name those relationships without reading the
// base, so the layer names the node and Apply drops them. Diff writes no
// detach lines: it names every deleted relationship by its tombstone.

// ordered wraps an input stream and checks that it is in strict canonical
// order: an id defined twice or out of order would make a merge silently
// wrong. It keeps the last key, not the last record: an input's record may
// be valid only until its next Next call (NewBorrowedLineIterator).
type ordered struct {
	it   Iterator
	what string
	// state: the input is a state (Diff's inputs, Apply's base), where a
	// detach line is an error.
	state bool
	last  Key
	any   bool
}

func (o *ordered) next() (*Record, error) {
	rec, err := o.it.Next()
	if err != nil {
		return nil, err
	}
	if o.state && rec.Kind == KindDetach {
		return nil, fmt.Errorf("%s: detach line for node %s in a state (detach lines belong only in delta layers)", o.what, rec.ID)
	}
	if o.any {
		if c := o.last.Compare(rec); c >= 0 {
			if c == 0 {
				return nil, fmt.Errorf("%s: %s %s appears twice", o.what, rec.Kind, rec.ID)
			}
			return nil, fmt.Errorf("%s: %s %s comes after %s %s, not in canonical order",
				o.what, rec.Kind, rec.ID, o.last.Kind, o.last.ID)
		}
	}
	o.last, o.any = KeyOf(rec), true
	return rec, nil
}

// nextOrNil returns the next record of a state, or nil at the end.
func (o *ordered) nextOrNil() (*Record, error) {
	rec, err := o.next()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err == nil && rec.Tombstone {
		return nil, fmt.Errorf("%s: tombstone for %s %s in a state", o.what, rec.Kind, rec.ID)
	}
	return rec, err
}

// Diff merges two canonically sorted states and calls emit, in canonical
// order, for every record that is new or changed in new (tombstone false:
// the new record) and for every record of old that new lacks (tombstone
// true: a tombstone record). Records compare by their canonical bytes. Diff
// does not close the iterators.
func Diff(old, new Iterator, emit func(rec *Record, tombstone bool) error) error {
	o := &ordered{it: old, what: "old state", state: true}
	n := &ordered{it: new, what: "new state", state: true}
	a, err := o.nextOrNil()
	if err != nil {
		return fmt.Errorf("diff records: %w", err)
	}
	b, err := n.nextOrNil()
	if err != nil {
		return fmt.Errorf("diff records: %w", err)
	}
	for a != nil || b != nil {
		c := 0
		switch {
		case a == nil:
			c = 1
		case b == nil:
			c = -1
		default:
			c = Compare(a, b)
		}
		switch {
		case c < 0:
			err = emit(NewTombstone(a.Kind, a.ID), true)
		case c > 0 || !bytes.Equal(a.Canonical, b.Canonical):
			err = emit(b, false)
		}
		if err != nil {
			return err
		}
		if c <= 0 {
			if a, err = o.nextOrNil(); err != nil {
				return fmt.Errorf("diff records: %w", err)
			}
		}
		if c >= 0 {
			if b, err = n.nextOrNil(); err != nil {
				return fmt.Errorf("diff records: %w", err)
			}
		}
	}
	return nil
}

// Apply returns the state that results from applying layers (oldest first)
// to base, in canonical order: for each kind and id the record of the newest
// input that has one, left out if that is a tombstone, and a relationship
// left out if a newer input than the one it comes from has a detach line
// for its start or end node. Detach lines are never in the result; one in
// the base is an error. Every input must be in strict canonical order.
// The result owns the inputs: closing it closes them all.
//
// It streams: one record per input is held, plus the ids of the layers'
// detach lines (the nodes the log deleted: bounded by the log, not by the
// graph). An input is read on only at the Next call after its record was
// returned or dropped, so inputs may borrow (see Iterator), and so does
// the result when they do.
func Apply(base Iterator, layers []Iterator) Iterator {
	if len(layers) == 0 {
		// A tier stored whole: no heap to keep, only the checks.
		return &stateIter{o: ordered{it: base, what: "base", state: true}}
	}
	a := &applyIter{}
	for i, it := range append([]Iterator{base}, layers...) {
		what := "base"
		if i > 0 {
			what = fmt.Sprintf("layer %d", i)
		}
		a.srcs = append(a.srcs, &ordered{it: it, what: what, state: i == 0})
	}
	return a
}

type applyIter struct {
	srcs    []*ordered
	h       recordHeap
	started bool
	// detached maps a node id to the newest input (layer number) that has
	// a detach line for it.
	detached map[string]int
	// passed: the heap's top has been returned or skipped, and its input
	// is read on at the next call.
	passed bool
	err    error
}

// heads are the current records of the inputs; for equal keys the newest
// input (highest number) comes first.
type head struct {
	rec *Record
	src int
}

type recordHeap []head

func (h recordHeap) Len() int { return len(h) }
func (h recordHeap) Less(i, j int) bool {
	if c := Compare(h[i].rec, h[j].rec); c != 0 {
		return c < 0
	}
	return h[i].src > h[j].src
}
func (h recordHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *recordHeap) Push(x any)   { *h = append(*h, x.(head)) }
func (h *recordHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// advance replaces the heap top, from input src, with that input's next
// record (or drops it at the input's end).
func (a *applyIter) advance() error {
	src := a.h[0].src
	rec, err := a.srcs[src].next()
	switch {
	case err == nil:
		a.h[0].rec = rec
		heap.Fix(&a.h, 0)
	case errors.Is(err, io.EOF):
		heap.Pop(&a.h)
	default:
		return err
	}
	return nil
}

func (a *applyIter) Next() (*Record, error) {
	if a.err != nil {
		return nil, a.err
	}
	if !a.started {
		a.started = true
		for i, s := range a.srcs {
			rec, err := s.next()
			if errors.Is(err, io.EOF) {
				continue
			}
			if err != nil {
				a.err = fmt.Errorf("apply layers: %w", err)
				return nil, a.err
			}
			a.h = append(a.h, head{rec: rec, src: i})
		}
		heap.Init(&a.h)
	}
	for len(a.h) > 0 {
		if a.passed {
			// The top was returned by the last call, or skipped: only now
			// is its input read on (its record may be valid only until
			// then), and the older inputs' records of its key dropped.
			a.passed = false
			k := KeyOf(a.h[0].rec)
			if err := a.advance(); err != nil {
				a.err = fmt.Errorf("apply layers: %w", err)
				return nil, a.err
			}
			for len(a.h) > 0 && k.Compare(a.h[0].rec) == 0 {
				if err := a.advance(); err != nil {
					a.err = fmt.Errorf("apply layers: %w", err)
					return nil, a.err
				}
			}
			continue
		}
		top, src := a.h[0].rec, a.h[0].src
		a.passed = true
		switch {
		case top.Kind == KindDetach:
			// The heap merges the inputs in canonical order, where every
			// detach line sorts before every node and relationship: the
			// heap's top is a detach line as long as any input has one
			// left. So when the first relationship leaves the heap, every
			// input's detach lines have been read and this map is
			// complete. Of equal keys the newest input comes first: src
			// is the newest layer that detaches the node.
			if a.detached == nil {
				a.detached = make(map[string]int)
			}
			a.detached[top.ID] = src
		case top.Tombstone:
		case top.Kind == KindRelationship && (a.detachedAfter(top.StartID, src) || a.detachedAfter(top.EndID, src)):
			// Its node was deleted in a newer layer than the one the
			// relationship comes from: detached with it.
		default:
			return top, nil
		}
	}
	a.err = io.EOF
	return nil, io.EOF
}

// detachedAfter reports whether an input newer than src detaches node.
func (a *applyIter) detachedAfter(node string, src int) bool {
	k, ok := a.detached[node]
	return ok && k > src
}

func (a *applyIter) Close() error {
	var err error
	for _, s := range a.srcs {
		if cerr := s.it.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// stateIter is Apply of a base alone: the base, checked to be a state in
// canonical order.
type stateIter struct {
	o   ordered
	err error
}

func (s *stateIter) Next() (*Record, error) {
	for s.err == nil {
		rec, err := s.o.next()
		switch {
		case errors.Is(err, io.EOF):
			s.err = io.EOF
		case err != nil:
			s.err = fmt.Errorf("apply layers: %w", err)
		case !rec.Tombstone: // Apply leaves tombstones out
			return rec, nil
		}
	}
	return nil, s.err
}

func (s *stateIter) Close() error { return s.o.it.Close() }

// NewLineIterator reads a stream of canonical lines, as WriteLines writes
// them: a base or a delta layer, tombstone and detach lines included (Apply
// refuses a detach line in the base). A line that is malformed or not in
// canonical form is a *SyntaxError (which names tier).
// Closing the iterator does not close r.
func NewLineIterator(r io.Reader, tier string) Iterator {
	rd := NewReader(r, tier)
	rd.tombstones, rd.strict = true, true
	return lineIter{rd}
}

type lineIter struct{ r *Reader }

func (l lineIter) Next() (*Record, error) { return l.r.Next() }
func (l lineIter) Close() error           { return nil }

// NewSliceIterator returns an Iterator over recs, in the order given.
func NewSliceIterator(recs []*Record) Iterator {
	return &sliceIter{recs: recs}
}

type sliceIter struct{ recs []*Record }

func (s *sliceIter) Next() (*Record, error) {
	if len(s.recs) == 0 {
		return nil, io.EOF
	}
	r := s.recs[0]
	s.recs = s.recs[1:]
	return r, nil
}

func (s *sliceIter) Close() error { return nil }

// WriteLines writes the canonical line of every record of it, each ending
// in '\n', and returns the bytes written. It does not close it.
func WriteLines(w io.Writer, it Iterator) (n int64, err error) {
	if lw, ok := w.(LineWriter); ok {
		return writeEach(lw, it)
	}
	bw := bufLines{bufio.NewWriterSize(w, 256<<10)}
	if n, err = writeEach(bw, it); err != nil {
		return n, err
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("write records: %w", err)
	}
	return n, nil
}

// bufLines is a LineWriter over a bufio.Writer (whose errors stick, so
// the newline's error is the line's).
type bufLines struct{ *bufio.Writer }

func (b bufLines) WriteLine(line []byte) error {
	b.Write(line)
	return b.WriteByte('\n')
}

// LineWriter is a writer that takes a line at a time without a copy
// (chunk.LineChunker): WriteLines gives it each canonical line.
type LineWriter interface {
	io.Writer
	// WriteLine writes line (which holds no '\n') and a '\n' after it.
	WriteLine(line []byte) error
}

func writeEach(w LineWriter, it Iterator) (n int64, err error) {
	for {
		rec, err := it.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := w.WriteLine(rec.Canonical); err != nil {
			return n, fmt.Errorf("write records: %w", err)
		}
		n += int64(len(rec.Canonical)) + 1
	}
}
