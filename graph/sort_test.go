package graph

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestSorterSpills sorts random records with tiny memory limits, forcing many
// runs (and merge passes), and compares with a stable in-memory sort.
func TestSorterSpills(t *testing.T) {
	recs := newRandGen(1).records(t, 3000, 400, 300, "t")
	// Every third record as a stored stream's reader gives it: partial
	// records must come out of the sort partial.
	partial := 0
	for i := 0; i < len(recs); i += 3 {
		p, err := NewStoredLineIterator(bytes.NewReader(append(bytes.Clone(recs[i].Canonical), '\n')), "t").Next()
		if err != nil {
			t.Fatal(err)
		}
		if p.Partial() {
			partial++
		}
		recs[i] = p
	}
	if partial < 500 {
		t.Fatalf("only %d of the records are partial", partial)
	}
	want := slices.Clone(recs)
	slices.SortStableFunc(want, Compare) // equal keys stay in input order

	for _, tc := range []struct {
		name     string
		memLimit int64
		fanIn    int
		compress bool
	}{
		{"in memory", 64 << 20, 0, false},
		{"4KiB", 4 << 10, 0, false},
		{"4KiB fan-in 3", 4 << 10, 3, false},
		{"4KiB zstd", 4 << 10, 5, true},
		{"1KiB", 1 << 10, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := NewSorter(tc.memLimit, dir)
			s.Compress = tc.compress
			if tc.fanIn > 0 {
				s.ext.fanIn = tc.fanIn
			}
			for i, r := range recs {
				if err := s.Add(r, i+1); err != nil {
					t.Fatal(err)
				}
			}
			runs := len(s.ext.runs)
			if tc.memLimit < 1<<20 && runs < 10 {
				t.Errorf("only %d runs spilled", runs)
			}
			it, err := s.Sort()
			if err != nil {
				t.Fatal(err)
			}
			got := drain(t, it)
			if len(got) != len(want) {
				t.Fatalf("got %d records, want %d", len(got), len(want))
			}
			for i := range want {
				w := *want[i]
				w.Line = slices.Index(recs, want[i]) + 1 // Add's line number
				if !reflect.DeepEqual(got[i], &w) {
					t.Fatalf("record %d:\n got %+v\nwant %+v", i, got[i], &w)
				}
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("temporary files left after Close: %d", len(ents))
			}
		})
	}
}

func TestSorterDuplicatesAdjacent(t *testing.T) {
	in := `{"type":"relationship","id":"x","label":"K","start":{"id":"a"},"end":{"id":"b"}}
{"type":"node","id":"x","properties":{"v":1}}
{"type":"node","id":"w"}
{"type":"node","id":"x","properties":{"v":2}}
{"type":"node","id":"é"}
{"type":"node","id":"z"}
{"type":"node","id":"x","properties":{"v":3}}
`
	s := NewSorter(1<<10, t.TempDir())
	for _, r := range readAll(t, in, "t") {
		if err := s.Add(r, r.Line); err != nil {
			t.Fatal(err)
		}
	}
	it, err := s.Sort()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range drain(t, it) {
		got = append(got, describe(r))
	}
	want := []string{`node "w" line 3`, `node "x" line 2`, `node "x" line 4`, `node "x" line 7`,
		`node "z" line 6`, `node "é" line 5`, `relationship "x" line 1`}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestSorterCloseWithoutSort(t *testing.T) {
	dir := t.TempDir()
	s := NewSorter(1<<10, dir)
	g := newRandGen(2)
	for i, r := range readAll(t, strings.Repeat(g.line(10, 10)+"\n", 100), "t") {
		if err := s.Add(r, i); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) == 0 {
		t.Fatal("expected spilled runs")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("temporary files left: %d", len(ents))
	}
	if err := s.Add(&Record{}, 1); err == nil {
		t.Error("Add after Close succeeded")
	}
}

func TestSorterEmpty(t *testing.T) {
	it, err := NewSorter(1<<20, t.TempDir()).Sort()
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(t, it); len(got) != 0 {
		t.Fatalf("got %d records", len(got))
	}
}

// TestSorterLargeItems spills records larger than a run's read buffer
// (32 KiB), which the merge reads by copying rather than in place.
func TestSorterLargeItems(t *testing.T) {
	var lines []string
	for i := range 60 {
		bio := strings.Repeat(fmt.Sprintf("word%d ", i), 1000+(i%7)*2000) // 7–90 KB
		lines = append(lines, fmt.Sprintf(`{"type":"node","id":"n%d","properties":{"bio":%q}}`, (i*37)%60, bio))
	}
	recs := readAll(t, strings.Join(lines, "\n"), "t")
	s := NewSorter(128<<10, t.TempDir())
	for i, r := range recs {
		if err := s.Add(r, i+1); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.ext.runs) < 5 {
		t.Fatalf("only %d runs spilled", len(s.ext.runs))
	}
	it, err := s.Sort()
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, it)
	want := slices.Clone(recs)
	slices.SortStableFunc(want, Compare)
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || !bytes.Equal(got[i].Canonical, want[i].Canonical) {
			t.Fatalf("record %d: %s (%d bytes), want %s (%d bytes)", i, got[i].ID, len(got[i].Canonical), want[i].ID, len(want[i].Canonical))
		}
	}
}
