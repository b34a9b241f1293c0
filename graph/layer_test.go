package graph

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// mutate returns a new state from s: about a tenth of the records changed,
// a tenth deleted, some added.
func mutate(t *testing.T, s []*Record, seed uint64) []*Record {
	r := rand.New(rand.NewPCG(seed, 1))
	var lines []string
	for _, rec := range s {
		switch r.IntN(10) {
		case 0: // deleted
		case 1: // changed
			line := strings.Replace(string(rec.Canonical), `"id":`, `"m`+strconv.FormatUint(seed, 10)+`":{"v":`+strconv.Itoa(r.IntN(1000))+`},"id":`, 1)
			lines = append(lines, line)
		default:
			lines = append(lines, string(rec.Canonical))
		}
	}
	g := newRandGen(seed)
	for range len(s)/10 + 1 {
		lines = append(lines, g.line(1000, 1000))
	}
	return sortedState(readAll(t, strings.Join(lines, "\n"), "t"))
}

// diffLayer runs Diff and returns the layer, checking that tombstone flags
// and records agree.
func diffLayer(t *testing.T, old, new []*Record) []*Record {
	t.Helper()
	var layer []*Record
	err := Diff(NewSliceIterator(old), NewSliceIterator(new), func(rec *Record, tombstone bool) error {
		if rec.Tombstone != tombstone {
			t.Fatalf("tombstone flag %v for %s", tombstone, describe(rec))
		}
		layer = append(layer, rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return layer
}

// roundTrip writes records with WriteLines and reads them back with
// NewLineIterator, as a stored layer would be.
func roundTrip(t *testing.T, recs []*Record) Iterator {
	t.Helper()
	var buf bytes.Buffer
	n, err := WriteLines(&buf, NewSliceIterator(recs))
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteLines: %d, %v", n, err)
	}
	return NewLineIterator(bytes.NewReader(buf.Bytes()), "layer")
}

func TestDiffApply(t *testing.T) {
	states := [][]*Record{sortedState(newRandGen(10).records(t, 2000, 1000, 1000, "t"))}
	var layers [][]*Record
	for i := range 4 {
		next := mutate(t, states[i], uint64(i+20))
		layer := diffLayer(t, states[i], next)
		if len(layer) == 0 || len(layer) > len(next)/2 {
			t.Fatalf("layer %d has %d records for %d", i, len(layer), len(next))
		}
		states = append(states, next)
		layers = append(layers, layer)
	}
	// Each layer is in canonical order.
	for i, l := range layers {
		for j := 1; j < len(l); j++ {
			if Compare(l[j-1], l[j]) >= 0 {
				t.Fatalf("layer %d not sorted at %d", i, j)
			}
		}
	}
	// Apply(base, [Diff(base, new)]) == new, and the same over 1..4 layers,
	// with the layers stored as canonical lines and read back.
	for k := 1; k <= len(layers); k++ {
		var its []Iterator
		for _, l := range layers[:k] {
			its = append(its, roundTrip(t, l))
		}
		got := drain(t, Apply(roundTrip(t, states[0]), its))
		if canonicalLines(got) != canonicalLines(states[k]) {
			t.Fatalf("Apply of %d layers differs from state %d (%d vs %d records)", k, k, len(got), len(states[k]))
		}
	}
	// A diff of a state with itself is empty; against nothing it is all
	// tombstones.
	if l := diffLayer(t, states[2], states[2]); len(l) != 0 {
		t.Errorf("self diff has %d records", len(l))
	}
	l := diffLayer(t, states[1], nil)
	if len(l) != len(states[1]) || !l[0].Tombstone {
		t.Errorf("diff to empty: %d records", len(l))
	}
	if got := drain(t, Apply(NewSliceIterator(states[1]), []Iterator{NewSliceIterator(l)})); len(got) != 0 {
		t.Errorf("applying all tombstones left %d records", len(got))
	}
}

func TestTombstoneLines(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		id   string
		want string
	}{
		{KindNode, "X", `{"id":"X","tombstone":true,"type":"node"}`},
		{KindRelationship, `a"b\é`, `{"id":"a\"b\\é","tombstone":true,"type":"relationship"}`},
		{KindNode, "\xed\xa0\x80é", `{"id":"\ud800\u00e9","tombstone":true,"type":"node"}`},
	} {
		ts := NewTombstone(tc.kind, tc.id)
		if string(ts.Canonical) != tc.want {
			t.Errorf("tombstone %q: %s, want %s", tc.id, ts.Canonical, tc.want)
		}
		recs := drain(t, NewLineIterator(strings.NewReader(tc.want+"\n"), "l"))
		if len(recs) != 1 || !recs[0].Tombstone || recs[0].ID != tc.id || recs[0].Kind != tc.kind {
			t.Errorf("read back %q: %+v", tc.want, recs)
		}
	}
	// A plain Reader sees an ordinary node with an extra key.
	rec := readAll(t, `{"id":"X","tombstone":true,"type":"node"}`, "t")[0]
	if rec.Tombstone {
		t.Error("Reader made a tombstone")
	}
}

func TestLineIteratorStrict(t *testing.T) {
	for _, tc := range []struct{ name, in, reason string }{
		{"unsorted keys", `{"type":"node","id":"n"}` + "\n", "not in canonical form"},
		{"whitespace", `{"id":"n", "type":"node"}` + "\n", "not in canonical form"},
		{"number form", `{"id":"n","properties":{"a":1e5},"type":"node"}` + "\n", "not in canonical form"},
		{"crlf", `{"id":"n","type":"node"}` + "\r\n", `line ending is not a single \n`},
		{"blank", `{"id":"m","type":"node"}` + "\n\n", "blank line"},
		{"malformed", `{"id":"n","type":"nod"}` + "\n", `field "type" must be`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := NewLineIterator(strings.NewReader(tc.in), "base")
			var err error
			for err == nil {
				_, err = it.Next()
			}
			var se *SyntaxError
			if !errors.As(err, &se) || !strings.HasPrefix(se.Reason, tc.reason) || se.Tier != "base" {
				t.Errorf("got %v, want reason %q", err, tc.reason)
			}
		})
	}
}

func TestMergeOrderErrors(t *testing.T) {
	recs := readAll(t, `{"id":"b","type":"node"}
{"id":"a","type":"node"}
{"id":"a","type":"node"}
`, "t")
	outOfOrder := []*Record{recs[0], recs[1]}
	twice := []*Record{recs[1], recs[2]}
	noop := func(*Record, bool) error { return nil }
	if err := Diff(NewSliceIterator(outOfOrder), NewSliceIterator(nil), noop); err == nil ||
		!strings.Contains(err.Error(), "not in canonical order") {
		t.Errorf("diff out of order: %v", err)
	}
	if err := Diff(NewSliceIterator(nil), NewSliceIterator(twice), noop); err == nil ||
		!strings.Contains(err.Error(), "appears twice") {
		t.Errorf("diff twice: %v", err)
	}
	it := Apply(NewSliceIterator(nil), []Iterator{NewSliceIterator(twice)})
	var err error
	for err == nil {
		_, err = it.Next()
	}
	if errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "apply layers: layer 1: node a appears twice") {
		t.Errorf("apply twice: %v", err)
	}
	stop := errors.New("stop")
	if err := Diff(NewSliceIterator(nil), NewSliceIterator(recs[1:2]), func(*Record, bool) error { return stop }); err != stop {
		t.Errorf("emit error not returned: %v", err)
	}
}
