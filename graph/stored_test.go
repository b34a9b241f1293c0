package graph

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// storedCases are canonical lines of every shape the key reader takes or
// must leave to the full parse.
var storedCases = []string{
	`{"id":"n1","labels":["Person"],"properties":{"name":"Ada"},"type":"node"}`,
	`{"id":"n2","type":"node"}`,
	`{"id":"n3","properties":{"k":"},\"type\":\"node\"}"},"type":"node"}`,
	"{\"id\":\"é\u2028x\",\"labels\":[],\"type\":\"node\"}",
	`{"id":"a\\\"b","labels":["L"],"type":"node"}`, // escaped id: full parse
	`{"id":"\ud800","type":"node"}`,                // lone surrogate: full parse
	`{"id":"n4","tombstone":true,"type":"node"}`,
	`{"id":"r4","tombstone":true,"type":"relationship"}`,
	`{"id":"n5","type":"detach"}`,
	`{"end":{"id":"43","labels":["Person"]},"id":"7","label":"KNOWS","properties":{"since":1833},"start":{"id":"42","labels":["Person"]},"type":"relationship"}`,
	`{"end":{"id":"43"},"id":"8","label":"KNOWS","start":{"id":"42"},"type":"relationship"}`,
	`{"end":{"id":"43","labels":["a]\"}","b"]},"id":"9","label":"X","start":{"id":"42","labels":[]},"type":"relationship"}`,
	// A property that spells the start member: the last one is the
	// top-level start.
	`{"end":{"id":"e"},"id":"10","label":"X","properties":{"a":1,"start":{"id":"fake"}},"start":{"id":"s"},"type":"relationship"}`,
	// An endpoint with more members than id and labels: full parse.
	`{"end":{"id":"e","labels":["L"],"x":{"b":1,"start":{"id":"q"}}},"id":"11","label":"X","start":{"elementId":"4:1","id":"s","x":[1,{"start":{"id":"q"}}]},"type":"relationship"}`,
	`{"end":{"id":"e\\n"},"id":"12","label":"X","start":{"id":"s\\t"},"type":"relationship"}`,
}

// TestStoredLineIterator: for canonical lines, the key reader gives the
// strict reader's key fields and line, and Full gives its whole record.
func TestStoredLineIterator(t *testing.T) {
	var in []string
	for _, l := range storedCases {
		rec, err := NewLineIterator(strings.NewReader(l+"\n"), "t").Next()
		if err != nil {
			t.Fatalf("case %s is not a canonical line: %v", l, err)
		}
		if !bytes.Equal(rec.Canonical, []byte(l)) {
			t.Fatalf("case %s: canonical form is %s", l, rec.Canonical)
		}
		in = append(in, l)
	}
	want := NewLineIterator(strings.NewReader(strings.Join(in, "\n")+"\n"), "t")
	got := NewStoredLineIterator(strings.NewReader(strings.Join(in, "\n")+"\n"), "t")
	partial := 0
	var lp LineParser
	for i := range in {
		w, err := want.Next()
		if err != nil {
			t.Fatal(err)
		}
		g, err := got.Next()
		if err != nil {
			t.Fatalf("line %d %s: %v", i+1, in[i], err)
		}
		compareKeys(t, in[i], g, w)
		if g.Partial() {
			partial++
		}
		full, err := lp.Full(g)
		if err != nil {
			t.Fatalf("line %d: Full: %v", i+1, err)
		}
		w.partial = false
		if !reflect.DeepEqual(full, w) {
			t.Fatalf("line %d: Full gives\n%+v, want\n%+v", i+1, full, w)
		}
	}
	if _, err := got.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last line: %v, want EOF", err)
	}
	// The cases are meant to exercise both paths: the live records with
	// plain ids and endpoints (eight of them) are read by keys, the rest fully.
	if partial != 8 {
		t.Errorf("%d partial records, want 8", partial)
	}
}

func compareKeys(t *testing.T, line string, g, w *Record) {
	t.Helper()
	if g.Kind != w.Kind || g.ID != w.ID || g.Tombstone != w.Tombstone || g.StartID != w.StartID ||
		g.EndID != w.EndID || g.Line != w.Line || !bytes.Equal(g.Canonical, w.Canonical) {
		t.Fatalf("%s: stored reader gives\n%+v, full reader\n%+v", line, g, w)
	}
}

// TestStoredLineIteratorErrors: a line the key reader cannot vouch for is
// parsed in full, so a malformed or non-canonical line is still an error,
// and a partial record that is not canonical fails Full.
func TestStoredLineIteratorErrors(t *testing.T) {
	for _, l := range []string{
		`{"type":"node","id":"n1"}`, // not canonical: full parse refuses
		`{"id":"","type":"node"}`,   // empty id
		`{"end":{"id":"1"},"id":"2","label":"X","start":{"id":"3"},"type":"relationship"`,
		`{"end":{"id":"1"},"id":"2","start":{"id":"3"},"type":"relationship"}`, // no label
		`{"id":"n1","labels":["L"],"type":"detach"}`,
		`{"id":"n1","tombstone":true,"type":"detach"}`,
		`not json`,
	} {
		_, err := NewStoredLineIterator(strings.NewReader(l+"\n"), "t").Next()
		var se *SyntaxError
		if !errors.As(err, &se) || se.Tier != "t" || se.Line != 1 {
			t.Errorf("%s: err %v, want a SyntaxError for tier t line 1", l, err)
		}
	}
	// The key reader trusts what lies between the keys; Full does not.
	l := `{"id":"n1","labels":["L"],"properties":{"b":1,"a":2},"type":"node"}`
	rec, err := NewStoredLineIterator(strings.NewReader(l+"\n"), "t").Next()
	if err != nil || !rec.Partial() || rec.ID != "n1" {
		t.Fatalf("%s: %+v, %v", l, rec, err)
	}
	var lp LineParser
	if _, err := lp.Full(rec); err == nil || !strings.Contains(err.Error(), "not in canonical form") {
		t.Errorf("Full of a non-canonical partial record: %v", err)
	}
}

// FuzzStoredLine: the key reader never panics, and on a canonical line
// (the fuzz input's canonical form) it agrees with the strict reader.
func FuzzStoredLine(f *testing.F) {
	fuzzSeeds(f)
	for _, l := range storedCases {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		it := NewStoredLineIterator(bytes.NewReader(data), "fuzz")
		for {
			if _, err := it.Next(); err != nil {
				var se *SyntaxError
				if !errors.Is(err, io.EOF) && !errors.As(err, &se) {
					t.Fatal(err)
				}
				if se == nil {
					break
				}
			}
		}
		rd := NewReader(bytes.NewReader(data), "fuzz")
		rd.tombstones = true
		var lp LineParser
		for {
			rec, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				continue
			}
			line := append(bytes.Clone(rec.Canonical), '\n')
			w, err := NewLineIterator(bytes.NewReader(line), "fuzz").Next()
			if err != nil {
				t.Fatalf("canonical line %q: %v", line, err)
			}
			g, err := NewStoredLineIterator(bytes.NewReader(line), "fuzz").Next()
			if err != nil {
				t.Fatalf("canonical line %q: stored reader: %v", line, err)
			}
			compareKeys(t, string(line), g, w)
			full, err := lp.Full(g)
			if err != nil {
				t.Fatalf("canonical line %q: Full: %v", line, err)
			}
			full.Line = w.Line
			if !reflect.DeepEqual(full, w) {
				t.Fatalf("%q: Full gives\n%+v, want\n%+v", line, full, w)
			}
		}
	})
}
