package graph

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// poison is the strictest borrowing iterator: every Next first overwrites
// the record it returned last (its fields and its Canonical bytes), then
// returns the next one in that same struct and buffer. A consumer that
// holds a record past its next Next call of the same input sees garbage.
type poison struct {
	it  Iterator
	cur Record
	buf []byte
}

func (p *poison) Next() (*Record, error) {
	for i := range p.buf {
		p.buf[i] = 'X'
	}
	p.cur = Record{Kind: 7, ID: "\xffpoisoned", StartID: "\xffpoisoned", EndID: "\xffpoisoned", Canonical: p.buf}
	rec, err := p.it.Next()
	if err != nil {
		return nil, err
	}
	p.buf = append(p.buf[:0], rec.Canonical...)
	p.cur = *rec
	p.cur.Canonical = p.buf
	return &p.cur, nil
}

func (p *poison) Close() error { return p.it.Close() }

// drainCopies is drain for a borrowed stream: it copies each record before
// asking for the next.
func drainCopies(t *testing.T, it Iterator) string {
	t.Helper()
	var b strings.Builder
	each(t, it, func(rec *Record) {
		b.Write(rec.Canonical)
		b.WriteByte('\n')
	})
	return b.String()
}

// TestMergesTakeBorrowedRecords: Apply and Diff give the same result when
// every input reuses its record at each Next (as a stored tier read with
// NewBorrowedLineIterator does) as when every record is its own.
func TestMergesTakeBorrowedRecords(t *testing.T) {
	base := sortedState(newRandGen(40).records(t, 3000, 1500, 1500, "t"))
	next := mutate(t, base, 41)
	layer := diffLayer(t, base, next)
	// A second layer that also deletes nodes with detach semantics: detach
	// lines first, then the other records of a diff.
	last := mutate(t, next, 42)
	var detach []*Record
	for _, r := range next[:40] {
		if r.Kind == KindNode {
			detach = append(detach, NewDetach(r.ID))
		}
	}
	layer2 := append(detach, diffLayer(t, next, last)...)

	borrowed := func(recs []*Record) Iterator { return &poison{it: NewSliceIterator(recs)} }
	for _, tc := range []struct {
		name string
		its  func(wrap func([]*Record) Iterator) Iterator
	}{
		{"base alone", func(w func([]*Record) Iterator) Iterator { return Apply(w(base), nil) }},
		{"one layer", func(w func([]*Record) Iterator) Iterator { return Apply(w(base), []Iterator{w(layer)}) }},
		{"two layers, detach", func(w func([]*Record) Iterator) Iterator {
			return Apply(w(base), []Iterator{w(layer), w(layer2)})
		}},
	} {
		want := drainCopies(t, tc.its(NewSliceIterator))
		if got := drainCopies(t, tc.its(borrowed)); got != want {
			t.Errorf("Apply, %s: borrowed inputs give %d bytes, owned ones %d", tc.name, len(got), len(want))
		}
	}
	if want := canonicalLines(next); drainCopies(t, Apply(borrowed(base), []Iterator{borrowed(layer)})) != want {
		t.Error("Apply of a borrowed base and layer is not the next state")
	}

	diff := func(old, new Iterator) string {
		var b strings.Builder
		if err := Diff(old, new, func(rec *Record, _ bool) error {
			b.Write(rec.Canonical)
			b.WriteByte('\n')
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if got, want := diff(borrowed(base), borrowed(next)), canonicalLines(layer); got != want {
		t.Errorf("Diff of borrowed states: %d bytes, want %d", len(got), len(want))
	}
}

// TestBorrowedLineIterator: a stored stream read with borrowed records
// gives, record by record, what NewStoredLineIterator gives, in one
// reused record.
func TestBorrowedLineIterator(t *testing.T) {
	state := sortedState(newRandGen(43).records(t, 2000, 1000, 1000, "t"))
	layer := append([]*Record{NewDetach("n1"), NewDetach(`a"b`)}, diffLayer(t, state, mutate(t, state, 44))...)
	for name, recs := range map[string][]*Record{"state": state, "layer": layer} {
		var buf bytes.Buffer
		if _, err := WriteLines(&buf, NewSliceIterator(recs)); err != nil {
			t.Fatal(err)
		}
		b := NewBorrowedLineIterator(bytes.NewReader(buf.Bytes()), name)
		s := NewStoredLineIterator(bytes.NewReader(buf.Bytes()), name)
		var first *Record
		reused := 0
		for i := 0; ; i++ {
			g, gerr := b.Next()
			w, werr := s.Next()
			if !errors.Is(gerr, werr) && (gerr == nil || werr == nil || gerr.Error() != werr.Error()) {
				t.Fatalf("%s line %d: borrowed error %v, stored error %v", name, i+1, gerr, werr)
			}
			if gerr != nil {
				break
			}
			if g.Kind != w.Kind || g.ID != w.ID || g.Tombstone != w.Tombstone || g.StartID != w.StartID ||
				g.EndID != w.EndID || g.Line != w.Line || !bytes.Equal(g.Canonical, w.Canonical) || g.Partial() != w.Partial() {
				t.Fatalf("%s line %d: borrowed %+v, stored %+v", name, i+1, g, w)
			}
			if first == nil {
				first = g
			} else if g == first {
				reused++
			}
		}
		if reused == 0 {
			t.Errorf("%s: the borrowed reader allocated every record", name)
		}
	}
}
