package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func fuzzSeeds(f *testing.F) {
	for _, tc := range canonicalCases {
		f.Add([]byte(`{"type":"node","id":"n1","properties":{"v":` + tc.in + `}}`))
	}
	g := newRandGen(4)
	for range 20 {
		f.Add([]byte(g.line(10, 10) + "\n" + g.line(10, 10)))
	}
	f.Add([]byte(`{"id":"X","tombstone":true,"type":"node"}` + "\n"))
	f.Add([]byte(`{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42","labels":["Person"]},"end":{"id":"43","labels":["Person"]},"properties":{"since":1833}}`))
	f.Add([]byte("{\"type\":\"node\",\"id\":\"\\ud800\"}\r\n\n \t\n{\"type\":\"node\",\"id\":\"a\",\"id\":\"b\"}"))
}

// FuzzReader: no panics; every record's canonical line is valid UTF-8 JSON
// and a fixed point that reads back as the same record.
func FuzzReader(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), "fuzz")
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			var se *SyntaxError
			if errors.As(err, &se) {
				if se.Line != r.Line() || se.Reason == "" {
					t.Fatalf("bad SyntaxError %+v at line %d", se, r.Line())
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.Valid(rec.Canonical) || !json.Valid(rec.Canonical) {
				t.Fatalf("canonical line is not valid JSON: %q", rec.Canonical)
			}
			again, err := NewReader(bytes.NewReader(rec.Canonical), "fuzz").Next()
			if err != nil {
				t.Fatalf("canonical line %q does not read back: %v", rec.Canonical, err)
			}
			again.Line = rec.Line
			if !reflect.DeepEqual(rec, again) {
				t.Fatalf("record changed on re-reading:\n%+v\n%+v", rec, again)
			}
		}
	})
}

// FuzzLineIterator: no panics; a stream it reads without error is written
// back byte for byte by WriteLines.
func FuzzLineIterator(f *testing.F) {
	fuzzSeeds(f)
	f.Add([]byte(`{"id":"X","tombstone":true,"type":"node"}` + "\n" + `{"id":"a","labels":["A"],"type":"node"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []*Record
		it := NewLineIterator(bytes.NewReader(data), "fuzz")
		for {
			rec, err := it.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatal(err)
				}
				return
			}
			if rec.Tombstone && string(NewTombstone(rec.Kind, rec.ID).Canonical) != string(rec.Canonical) {
				t.Fatalf("tombstone %q does not match NewTombstone", rec.Canonical)
			}
			recs = append(recs, rec)
		}
		var out strings.Builder
		if _, err := WriteLines(&out, NewSliceIterator(recs)); err != nil {
			t.Fatal(err)
		}
		want := string(data)
		if len(want) > 0 && want[len(want)-1] != '\n' {
			want += "\n"
		}
		if out.String() != want {
			t.Fatalf("written back differently:\n%q\n%q", want, out.String())
		}
	})
}
