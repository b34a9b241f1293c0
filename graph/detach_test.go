package graph

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestDetachLines(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"42", `{"id":"42","type":"detach"}`},
		{`a"b\é`, `{"id":"a\"b\\é","type":"detach"}`},
		{"\xed\xa0\x80é", `{"id":"\ud800\u00e9","type":"detach"}`},
	} {
		d := NewDetach(tc.id)
		if string(d.Canonical) != tc.want || d.Kind != KindDetach || !d.Tombstone || d.ID != tc.id {
			t.Errorf("NewDetach(%q) = %+v (%s), want %s", tc.id, d, d.Canonical, tc.want)
		}
		if ts := NewTombstone(KindDetach, tc.id); !bytes.Equal(ts.Canonical, d.Canonical) || ts.Kind != KindDetach {
			t.Errorf("NewTombstone(KindDetach, %q) = %s", tc.id, ts.Canonical)
		}
		recs := drain(t, NewLineIterator(strings.NewReader(tc.want+"\n"), "l"))
		if len(recs) != 1 || recs[0].Kind != KindDetach || !recs[0].Tombstone || recs[0].ID != tc.id ||
			string(recs[0].Canonical) != tc.want {
			t.Errorf("read back %q: %+v", tc.want, recs)
		}
	}
	if KindDetach.String() != "detach" || KindNode.String() != "node" || KindRelationship.String() != "relationship" {
		t.Error("Kind.String")
	}
	// The zero Kind stays a node.
	var k Kind
	if k != KindNode {
		t.Error("zero Kind is not KindNode")
	}
}

// TestDetachLinesRefused: only a layer (NewLineIterator) reads detach
// lines, and only in their exact form.
func TestDetachLinesRefused(t *testing.T) {
	// A plain Reader (tier exports, the checker's input, oplog records):
	// graphref's reason for an unknown type.
	for _, line := range []string{`{"id":"42","type":"detach"}`, `{"type":"detach","id":"42"}`} {
		_, err := NewReader(strings.NewReader(line), "t").Next()
		var se *SyntaxError
		if !errors.As(err, &se) || se.Reason != reasonType {
			t.Errorf("Reader on %s: %v", line, err)
		}
	}
	for _, tc := range []struct{ line, reason string }{
		{`{"id":"42","labels":[],"type":"detach"}`, reasonDetach},
		{`{"id":"42","tombstone":true,"type":"detach"}`, reasonDetach},
		{`{"id":"","type":"detach"}`, reasonID},
		{`{"id":42,"type":"detach"}`, reasonID},
		{`{"type":"detach"}`, reasonID},
		{`{"type":"detach","id":"42"}`, "not in canonical form"},
		{`{"id":"42","type":"Detach"}`, reasonType},
	} {
		it := NewLineIterator(strings.NewReader(tc.line+"\n"), "layer")
		_, err := it.Next()
		var se *SyntaxError
		if !errors.As(err, &se) || se.Reason != tc.reason {
			t.Errorf("layer line %s: %v, want %q", tc.line, err, tc.reason)
		}
	}
}

func TestDetachOrder(t *testing.T) {
	recs := []*Record{
		NewDetach("a"), NewDetach("b"),
		NewTombstone(KindNode, "0"), NewTombstone(KindNode, "a"),
		NewTombstone(KindRelationship, "0"), NewTombstone(KindRelationship, "a"),
	}
	for i := range recs {
		for j := range recs {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := Compare(recs[i], recs[j]); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", recs[i].Canonical, recs[j].Canonical, got, want)
			}
		}
	}
}

// TestDetachInState: a detach line is refused wherever a state is read.
func TestDetachInState(t *testing.T) {
	d := func() Iterator { return NewSliceIterator([]*Record{NewDetach("a")}) }
	want := "detach line for node a in a state"
	noop := func(*Record, bool) error { return nil }
	if err := Diff(d(), NewSliceIterator(nil), noop); err == nil || !strings.Contains(err.Error(), "old state: "+want) {
		t.Errorf("Diff old: %v", err)
	}
	if err := Diff(NewSliceIterator(nil), d(), noop); err == nil || !strings.Contains(err.Error(), "new state: "+want) {
		t.Errorf("Diff new: %v", err)
	}
	it := Apply(d(), []Iterator{NewSliceIterator(nil)})
	if _, err := it.Next(); err == nil || !strings.Contains(err.Error(), "apply layers: base: "+want) {
		t.Errorf("Apply base: %v", err)
	}
	// The checker and the CSV export refuse it (it is a tombstone to them)
	// rather than count it as a node or a relationship.
	c := NewChecker(1<<20, t.TempDir())
	if err := c.Add("t", 1, NewDetach("a")); err == nil || !strings.Contains(err.Error(), "detach a") {
		t.Errorf("Checker: %v", err)
	}
	c.Close()
	if _, err := WriteNeo4jCSV(filepath.Join(t.TempDir(), "out"), d(), t.TempDir()); err == nil ||
		!strings.Contains(err.Error(), "detach a") {
		t.Errorf("CSV: %v", err)
	}
	// Twice in one layer.
	it = Apply(NewSliceIterator(nil), []Iterator{NewSliceIterator([]*Record{NewDetach("a"), NewDetach("a")})})
	if _, err := it.Next(); err == nil || !strings.Contains(err.Error(), "layer 1: detach a appears twice") {
		t.Errorf("Apply twice: %v", err)
	}
	// After a node: out of order.
	node := readAll(t, `{"type":"node","id":"a"}`, "t")[0]
	// Apply reads an input on only when asked for the record after the
	// one it returned, so the error comes with the second record.
	it = Apply(NewSliceIterator(nil), []Iterator{NewSliceIterator([]*Record{node, NewDetach("b")})})
	if _, err := it.Next(); err != nil {
		t.Fatalf("Apply first record: %v", err)
	}
	if _, err := it.Next(); err == nil || !strings.Contains(err.Error(), "not in canonical order") {
		t.Errorf("Apply order: %v", err)
	}
}

func rel(t *testing.T, id, start, end string) *Record {
	t.Helper()
	return readAll(t, `{"type":"relationship","id":"`+id+`","label":"L","start":{"id":"`+start+`"},"end":{"id":"`+end+`"}}`, "t")[0]
}

func node(t *testing.T, id string) *Record {
	t.Helper()
	return readAll(t, `{"type":"node","id":"`+id+`"}`, "t")[0]
}

func ids(recs []*Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.Kind.String()[:1]+r.ID)
	}
	return strings.Join(s, " ")
}

// TestApplyDetach: a relationship is dropped if a newer input than the one
// it comes from detaches its start or end; never by its own input's.
func TestApplyDetach(t *testing.T) {
	base := []*Record{node(t, "a"), node(t, "b"), node(t, "c"),
		rel(t, "1", "a", "b"), rel(t, "2", "b", "c"), rel(t, "3", "c", "c"), rel(t, "4", "x", "y"), rel(t, "5", "b", "b")}
	l1 := []*Record{NewDetach("a"), NewDetach("c"),
		NewTombstone(KindNode, "a"), node(t, "c"), // c deleted and created again
		rel(t, "2", "b", "c"), // re-upserted after c's delete: kept
		rel(t, "6", "c", "b"), // new, after the delete: kept
		rel(t, "7", "b", "y"), // detached by layer 2
	}
	l2 := []*Record{NewDetach("q"), NewDetach("y")} // a detach line for a node no tier has
	got := drain(t, Apply(roundTrip(t, base), []Iterator{roundTrip(t, l1), roundTrip(t, l2)}))
	if want := "nb nc r2 r5 r6"; ids(got) != want {
		t.Errorf("got %s, want %s", ids(got), want)
	}
	// A layer of detach lines alone, as other tiers get: it removes
	// relationships of the tier whose nodes live elsewhere.
	got = drain(t, Apply(roundTrip(t, base), []Iterator{roundTrip(t, []*Record{NewDetach("x")})}))
	if want := "na nb nc r1 r2 r3 r5"; ids(got) != want {
		t.Errorf("got %s, want %s", ids(got), want)
	}
	// The detach of a newer layer wins over an older layer's re-upsert,
	// and the same detach in two layers counts for the newest.
	got = drain(t, Apply(roundTrip(t, base), []Iterator{
		roundTrip(t, []*Record{NewDetach("b"), rel(t, "5", "b", "b"), rel(t, "8", "a", "a")}),
		roundTrip(t, []*Record{NewDetach("b"), rel(t, "9", "b", "a")}),
		roundTrip(t, nil),
	}))
	if want := "na nb nc r3 r4 r8 r9"; ids(got) != want {
		t.Errorf("got %s, want %s", ids(got), want)
	}
}

// TestApplyDetachModel compares Apply with a model that applies the layers
// one after the other (detach lines first, then the records) on random
// states and layers.
func TestApplyDetachModel(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 3))
		nodeID := func() string { return "n" + strconv.Itoa(r.IntN(12)) }
		rnd := func() *Record {
			id := strconv.Itoa(r.IntN(15))
			if r.IntN(3) == 0 {
				return node(t, "n"+id)
			}
			return rel(t, "r"+id, nodeID(), nodeID())
		}
		var base []*Record
		for range r.IntN(30) {
			base = append(base, rnd())
		}
		base = sortedState(base)
		model := map[string]*Record{}
		for _, rec := range base {
			model[rec.Kind.String()+" "+rec.ID] = rec
		}
		var layers []Iterator
		var text []string
		for range r.IntN(4) + 1 {
			var l []*Record
			for range r.IntN(20) {
				switch r.IntN(4) {
				case 0:
					l = append(l, NewDetach(nodeID()))
				case 1:
					rec := rnd()
					l = append(l, NewTombstone(rec.Kind, rec.ID))
				default:
					l = append(l, rnd())
				}
			}
			l = sortedState(l)
			// The model: detach, then upserts and tombstones.
			for _, rec := range l {
				if rec.Kind == KindDetach {
					for k, m := range model {
						if m.Kind == KindRelationship && (m.StartID == rec.ID || m.EndID == rec.ID) {
							delete(model, k)
						}
					}
				}
			}
			for _, rec := range l {
				switch {
				case rec.Kind == KindDetach:
				case rec.Tombstone:
					delete(model, rec.Kind.String()+" "+rec.ID)
				default:
					model[rec.Kind.String()+" "+rec.ID] = rec
				}
			}
			var buf bytes.Buffer
			if _, err := WriteLines(&buf, NewSliceIterator(l)); err != nil {
				t.Fatal(err)
			}
			text = append(text, buf.String())
			layers = append(layers, NewLineIterator(bytes.NewReader(buf.Bytes()), "layer"))
		}
		var want []*Record
		for _, rec := range model {
			want = append(want, rec)
		}
		slices.SortFunc(want, Compare)
		got := drain(t, Apply(roundTrip(t, base), layers))
		if canonicalLines(got) != canonicalLines(want) {
			t.Fatalf("seed %d: base\n%s\nlayers\n%s\ngot\n%s\nwant\n%s", seed,
				canonicalLines(base), strings.Join(text, "--\n"), canonicalLines(got), canonicalLines(want))
		}
	}
}

// TestApplyDetachError: an error in a layer is returned, not EOF.
func TestApplyDetachError(t *testing.T) {
	it := Apply(NewSliceIterator(nil), []Iterator{NewLineIterator(strings.NewReader(`{"id":"a","type":"detach"}`+"\n"+`{"id":"b","type":"detach","x":1}`+"\n"), "layer")})
	_, err := it.Next()
	var se *SyntaxError
	if !errors.As(err, &se) || errors.Is(err, io.EOF) || se.Line != 2 {
		t.Errorf("got %v", err)
	}
}
