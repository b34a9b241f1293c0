package graph

import (
	"context"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// captureRun adds the tiers to a Capture and drains its Iterators while it
// runs, returning each tier's records (as canonical lines) and the report.
func captureRun(t *testing.T, c *Capture, names []string, tiers map[string][]*Record) ([][]string, *Report, error) {
	t.Helper()
	for i, name := range names {
		for _, r := range tiers[name] {
			if err := c.Tier(i).Add(r, r.Line); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := make([][]string, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() {
			it := c.Iterator(i)
			defer it.Close()
			var last *Record
			for {
				rec, err := it.Next()
				if err == io.EOF {
					return
				}
				if err != nil {
					errs[i] = err
					return
				}
				if last != nil && Compare(last, rec) >= 0 {
					errs[i] = fmt.Errorf("tier %s: %s %s after %s %s", names[i], rec.Kind, rec.ID, last.Kind, last.ID)
					return
				}
				// The record before stays valid through this call.
				if n := len(out[i]); n > 0 && string(last.Canonical) != out[i][n-1] {
					errs[i] = fmt.Errorf("tier %s: record %s changed under the caller", names[i], last.ID)
					return
				}
				last = rec
				out[i] = append(out[i], string(rec.Canonical))
			}
		})
	}
	rep, err := c.Run(context.Background())
	wg.Wait()
	for _, e := range errs {
		if e != nil && err == nil {
			err = e
		}
	}
	return out, rep, err
}

// TestCaptureMatchesChecker holds the fused sort-and-check to the Checker
// and the Sorter on random graphs full of duplicates, dangling endpoints
// and label mismatches, in both of its ways to find dangling endpoints:
// with memory so small that every sort spills runs (and merges them in
// passes) and the endpoints are sorted, and with a node table.
func TestCaptureMatchesChecker(t *testing.T) {
	for _, tc := range []struct {
		seed  uint64
		mem   int64
		table bool
	}{{3, 12 << 10, false}, {11, 12 << 10, false}, {29, 12 << 10, false}, {3, 16 << 20, true}, {11, 16 << 20, true}, {29, 16 << 20, true}} {
		seed := tc.seed
		t.Run(fmt.Sprint(seed, tc.table), func(t *testing.T) {
			g := newRandGen(seed)
			names := []string{"fast", "warm", "cold"}
			tiers := map[string][]*Record{}
			for _, tier := range names {
				tiers[tier] = g.records(t, 700, 500, 400, tier)
			}
			dir := t.TempDir()
			chk := NewChecker(4<<10, dir)
			chk.MaxProblems, chk.MaxWarnings = 1<<20, 1<<20
			want := checkTiers(t, chk, names, tiers)

			c := NewCapture(names, tc.mem, dir)
			c.MaxProblems, c.MaxWarnings = 1<<20, 1<<20
			out, got, err := captureRun(t, c, names, tiers)
			if err != nil {
				t.Fatal(err)
			}
			if c.table != tc.table {
				t.Fatalf("node table used: %v, want %v", c.table, tc.table)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("temporary files left: %d", len(ents))
			}
			if got.OK != want.OK || got.ProblemCount != want.ProblemCount || got.WarningCount != want.WarningCount {
				t.Fatalf("report: ok %v problems %d warnings %d, want %v %d %d", got.OK, got.ProblemCount, got.WarningCount,
					want.OK, want.ProblemCount, want.WarningCount)
			}
			if want.ProblemCount < 50 || want.WarningCount == 0 {
				t.Fatalf("test graph too clean: %d problems, %d warnings", want.ProblemCount, want.WarningCount)
			}
			problems := func(r *Report) []string {
				var s []string
				for _, p := range r.Problems {
					s = append(s, fmt.Sprintf("%s %s:%d %s %s", p.Kind, p.Tier, p.Line, p.ID, p.Detail))
				}
				slices.Sort(s)
				return s
			}
			if g, w := problems(got), problems(want); !slices.Equal(g, w) {
				t.Errorf("problems differ:\n got %q\nwant %q", g[:min(3, len(g))], w[:min(3, len(w))])
			}
			if g, w := slices.Sorted(slices.Values(got.Warnings)), slices.Sorted(slices.Values(want.Warnings)); !slices.Equal(g, w) {
				t.Errorf("warnings differ:\n got %q\nwant %q", g[:min(3, len(g))], w[:min(3, len(w))])
			}
			if fmt.Sprint(got.Stats.Total) != fmt.Sprint(want.Stats.Total) {
				t.Errorf("total stats %+v, want %+v", got.Stats.Total, want.Stats.Total)
			}
			for _, tier := range names {
				if fmt.Sprint(*got.Stats.Tiers[tier]) != fmt.Sprint(*want.Stats.Tiers[tier]) {
					t.Errorf("tier %s stats %+v, want %+v", tier, *got.Stats.Tiers[tier], *want.Stats.Tiers[tier])
				}
			}

			// Each tier's stream: its records in canonical order, each id
			// once overall, from the first tier (then line) defining it.
			seen := map[string]bool{}
			for i, tier := range names {
				recs := slices.Clone(tiers[tier])
				slices.SortStableFunc(recs, Compare)
				var wantLines []string
				for _, r := range recs {
					if k := r.Kind.String() + " " + r.ID; !seen[k] {
						seen[k] = true
						wantLines = append(wantLines, string(r.Canonical))
					}
				}
				if !slices.Equal(out[i], wantLines) {
					t.Errorf("tier %s: %d records out, want %d", tier, len(out[i]), len(wantLines))
				}
			}
		})
	}
}

// TestCaptureTableMatchesJoin: the node table and the endpoint sort list
// the same problems and warnings in the same order, also when the caps cut
// the lists (which keeps the first ones in the join's order), on random
// graphs and on one with more distinct label lists than the table keeps
// (which must fall back to the sort).
func TestCaptureTableMatchesJoin(t *testing.T) {
	names := []string{"fast", "warm", "cold"}
	graphs := map[string]map[string][]*Record{}
	for _, seed := range []uint64{5, 17} {
		g := newRandGen(seed)
		tiers := map[string][]*Record{}
		for _, tier := range names {
			tiers[tier] = g.records(t, 600, 300, 400, tier)
		}
		graphs[fmt.Sprint("random ", seed)] = tiers
	}
	// Every node its own label list, relationships to nodes with other
	// labels and to none.
	var lines []string
	n := maxLabelLists + 10
	for i := range n {
		lines = append(lines, fmt.Sprintf(`{"type":"node","id":"n%d","labels":["L%d"]}`, i, i))
	}
	for i := range 300 {
		start := fmt.Sprint("n", i*29%n)
		if i%4 == 0 {
			start = fmt.Sprint("missing", i)
		}
		lines = append(lines, fmt.Sprintf(`{"type":"relationship","id":"r%d","label":"T","start":{"id":%q,"labels":["L%d"]},"end":{"id":"n%d","labels":["X"]}}`,
			i, start, i*29%n, i*13%n))
	}
	graphs["many label lists"] = map[string][]*Record{"fast": readAll(t, strings.Join(lines, "\n"), "fast")}

	for name, tiers := range graphs {
		for _, caps := range [][2]int{{1 << 20, 1 << 20}, {7, 3}, {40, 1}, {0, 0}} {
			t.Run(fmt.Sprint(name, caps), func(t *testing.T) {
				run := func(mem int64) (*Capture, *Report) {
					c := NewCapture(names, mem, t.TempDir())
					c.MaxProblems, c.MaxWarnings = caps[0], caps[1]
					_, rep, err := captureRun(t, c, names, tiers)
					if err != nil {
						t.Fatal(err)
					}
					return c, rep
				}
				cs, sorted := run(12 << 10)
				ct, table := run(64 << 20)
				wantTable := name != "many label lists"
				if cs.table || ct.table != wantTable {
					t.Fatalf("node table used: %v and %v, want false and %v", cs.table, ct.table, wantTable)
				}
				if sorted.ProblemCount < 20 || sorted.WarningCount < 2 {
					t.Fatalf("test graph too clean: %d problems, %d warnings", sorted.ProblemCount, sorted.WarningCount)
				}
				if !reflect.DeepEqual(table, sorted) {
					t.Errorf("reports differ:\n table %+v\nsorted %+v", table, sorted)
				}
			})
		}
	}
}

// TestCaptureConsumerGone: a consumer that stops early does not stall Run,
// and a cancelled Run ends every Iterator with its error.
func TestCaptureConsumerGone(t *testing.T) {
	recs := newRandGen(5).records(t, 2000, 3000, 3000, "a")
	names := []string{"a", "b"}

	c := NewCapture(names, 8<<10, t.TempDir())
	for _, r := range recs {
		if err := c.Tier(0).Add(r, r.Line); err != nil {
			t.Fatal(err)
		}
	}
	c.Iterator(0).Close() // nobody reads tier a
	if _, err := c.Run(context.Background()); err != nil {
		t.Fatalf("run with a closed consumer: %v", err)
	}
	if _, err := c.Iterator(1).Next(); err != io.EOF {
		t.Errorf("empty tier: %v, want EOF", err)
	}

	c = NewCapture(names, 8<<10, t.TempDir())
	for _, r := range recs {
		if err := c.Tier(0).Add(r, r.Line); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Run(ctx); err != context.Canceled {
		t.Fatalf("cancelled run: %v", err)
	}
	for i := range names {
		it := c.Iterator(i)
		for {
			if _, err := it.Next(); err != nil {
				if err != context.Canceled {
					t.Errorf("tier %s ends with %v, want the run's error", names[i], err)
				}
				break
			}
		}
	}
	if _, err := c.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

// The label and type counts are cached by the identity of interned lists
// and strings: shared ones (hits, and evictions from the small caches as
// hundreds of them take turns) and fresh copies (misses) must count as a
// plain count does.
func TestCaptureCounts(t *testing.T) {
	rng := newRandGen(5).r
	lists := make([][]string, 300)
	for i := range lists {
		lists[i] = []string{fmt.Sprintf("L%d", i%40), fmt.Sprintf("M%d", i)}
	}
	types := make([]string, 100)
	for i := range types {
		types[i] = fmt.Sprintf("T%d", i)
	}
	want := newStats()
	var recs []*Record
	for i := range 20000 {
		labels := lists[rng.IntN(len(lists))]
		if rng.IntN(4) == 0 {
			labels = slices.Clone(labels) // not interned
		}
		id := fmt.Sprint("n", i)
		recs = append(recs, &Record{Kind: KindNode, ID: id, Labels: labels, Canonical: []byte(id), Line: i + 1})
		want.Nodes++
		for _, l := range labels {
			want.Labels[l]++
		}
		typ := types[rng.IntN(len(types))]
		if rng.IntN(4) == 0 {
			typ = string([]byte(typ)) // not interned
		}
		rid := fmt.Sprint("r", i)
		recs = append(recs, &Record{Kind: KindRelationship, ID: rid, Type: typ, StartID: id, EndID: id,
			StartLabels: labels, EndLabels: labels, Canonical: []byte(rid), Line: i + 1})
		want.Relationships++
		want.Types[typ]++
	}
	c := NewCapture([]string{"t"}, 1<<20, t.TempDir())
	_, rep, err := captureRun(t, c, []string{"t"}, map[string][]*Record{"t": recs})
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Stats.Tiers["t"]; fmt.Sprint(*got) != fmt.Sprint(*want) {
		t.Errorf("stats %+v,\nwant %+v", *got, *want)
	}
	if !rep.OK || rep.WarningCount != 0 {
		t.Errorf("report: ok %v, %d warnings (the endpoints' labels match their nodes')", rep.OK, rep.WarningCount)
	}
}

// A record stays valid until the second call of Next after it: the batch
// it came in is refilled only after that (the race detector sees an early
// reuse too; this test sees it without).
func TestCaptureRecordStaysValid(t *testing.T) {
	var recs []*Record
	for i := range 40 * outRecords {
		id := fmt.Sprintf("n%05d", i)
		recs = append(recs, &Record{Kind: KindNode, ID: id, Canonical: []byte(`{"id":"` + id + `"}`), Line: i + 1})
	}
	c := NewCapture([]string{"t"}, 1<<20, t.TempDir())
	for _, r := range recs {
		if err := c.Tier(0).Add(r, r.Line); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := c.Run(context.Background()); done <- err }()
	it := c.Iterator(0)
	var last *Record
	var lastCanon string
	for i := 0; ; i++ {
		rec, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%outRecords == 0 {
			time.Sleep(5 * time.Millisecond) // a new batch: let Run refill what it may
		}
		if last != nil && string(last.Canonical) != lastCanon {
			t.Fatalf("record %d changed under the caller: %q, was %q", i-1, last.Canonical, lastCanon)
		}
		last, lastCanon = rec, string(rec.Canonical)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
