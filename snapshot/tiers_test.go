package snapshot_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/graph"
	"github.com/strata-backup/strata/graphgen"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
	"github.com/strata-backup/strata/snapshot"
)

// writeTiers writes a generated graph; shuffle reorders each file's lines
// (an export whose order is unstable).
func writeTiers(t *testing.T, dir string, o graphgen.Options, shuffle uint64) {
	t.Helper()
	if _, err := graphgen.WriteDir(dir, o); err != nil {
		t.Fatal(err)
	}
	if shuffle == 0 {
		return
	}
	for _, name := range graphgen.Tiers {
		p := filepath.Join(dir, name+".jsonl")
		b, _ := os.ReadFile(p)
		lines := strings.SplitAfter(string(b), "\n")
		rng := rand.New(rand.NewPCG(shuffle, 1))
		rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
		if err := os.WriteFile(p, []byte(strings.Join(lines, "")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func tierSpecs(dir string) []snapshot.TierSpec {
	var specs []snapshot.TierSpec
	for _, name := range graphgen.Tiers {
		specs = append(specs, snapshot.TierSpec{Name: name, Source: filepath.Join(dir, name+".jsonl")})
	}
	return specs
}

// canonical returns a tier file's records in canonical form and order.
func canonical(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := graph.NewSorter(64<<20, t.TempDir())
	defer s.Close()
	rd := graph.NewReader(f, "x")
	for {
		rec, err := rd.Next()
		if err != nil {
			break
		}
		_ = s.Add(rec, rd.Line())
	}
	it, err := s.Sort()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := graph.WriteLines(&buf, it); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func restoreTiers(t *testing.T, r *repo.Repository, res *snapshot.BackupResult) string {
	t.Helper()
	out := t.TempDir()
	if _, err := snapshot.RestoreSnapshot(context.Background(), r, snapshot.Entry{ID: res.ID, Snapshot: res.Snapshot}, snapshot.SnapshotRestoreOptions{
		RestoreOptions: snapshot.RestoreOptions{Target: out}}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return out
}

func sameTiers(t *testing.T, src, restored string) {
	t.Helper()
	for _, name := range graphgen.Tiers {
		got, err := os.ReadFile(filepath.Join(restored, name+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if want := canonical(t, filepath.Join(src, name+".jsonl")); string(got) != want {
			t.Errorf("tier %s: restored state differs from the export (%d vs %d bytes)", name, len(got), len(want))
		}
	}
}

// backupExport writes the generated graph o into src (shuffle as for
// writeTiers) and backs it up with opts.
func backupExport(t *testing.T, r *repo.Repository, src string, o graphgen.Options, shuffle uint64, opts snapshot.BackupOptions) *snapshot.BackupResult {
	t.Helper()
	writeTiers(t, src, o, shuffle)
	res, err := snapshot.Backup(context.Background(), r, opts)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return res
}

func TestGraphTiersIncremental(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	o := graphgen.Options{Nodes: 6000, Seed: 5}
	src := t.TempDir()
	// A tiny sort memory forces every tier through spill files.
	opts := snapshot.BackupOptions{Tiers: tierSpecs(src), Host: "h", SortMemory: 64 << 10}
	first := backupExport(t, r, src, o, 1, opts)
	var nodes int64
	for _, tr := range first.Snapshot.Tiers {
		if tr.Format != snapshot.FormatGraph || tr.Nodes == 0 || tr.Stats == nil || len(tr.Layers) != 0 {
			t.Errorf("tier %+v", tr)
		}
		nodes += tr.Nodes
	}
	if nodes != 6000 {
		t.Errorf("%d nodes recorded, want 6000", nodes)
	}
	sameTiers(t, src, restoreTiers(t, r, first))
	// The integrity check of the stored state sees every record whole:
	// the labels and types the capture counted.
	rep, err := snapshot.CheckTiers(ctx, r, snapshot.Entry{ID: first.ID, Snapshot: first.Snapshot}, 1<<20, t.TempDir())
	if err != nil || !rep.OK {
		t.Fatalf("integrity of the stored state: %+v, %v", rep, err)
	}
	for _, tr := range first.Snapshot.Tiers {
		st := rep.Stats.Tiers[tr.Name]
		if st == nil || !maps.Equal(st.Labels, tr.Stats.Labels) || !maps.Equal(st.Types, tr.Stats.Types) {
			t.Errorf("tier %s: the check of the stored state counts %+v, the capture %+v", tr.Name, st, tr.Stats)
		}
	}

	// The same graph exported in another order: nothing new to store.
	again := backupExport(t, r, src, o, 2, opts)
	if again.Summary.BytesAdded*100 > first.Summary.BytesAdded {
		t.Errorf("shuffled unchanged export added %d bytes of %d (want < 1%%)", again.Summary.BytesAdded, first.Summary.BytesAdded)
	}

	// 1% of records change: a delta layer, a few percent of the first backup.
	o.Change, o.ChangeSeed = 0.01, 3
	delta := backupExport(t, r, src, o, 3, opts)
	for _, tr := range delta.Snapshot.Tiers {
		if len(tr.Layers) != 1 || tr.Layers[0].Upserts == 0 {
			t.Errorf("tier %s: layers %+v, want one layer of upserts", tr.Name, tr.Layers)
		}
	}
	if delta.Summary.BytesStored*20 > first.Summary.BytesStored {
		t.Errorf("1%% change stored %d bytes, more than 5%% of the first backup's %d", delta.Summary.BytesStored, first.Summary.BytesStored)
	}
	sameTiers(t, src, restoreTiers(t, repotest.Reopen(t, r), delta))
	rep, err = snapshot.CheckTiers(ctx, r, snapshot.Entry{ID: delta.ID, Snapshot: delta.Snapshot}, 1<<20, t.TempDir())
	if err != nil || !rep.OK || rep.Stats.Total.Nodes != 6000 {
		t.Errorf("integrity of the stored state: %+v, %v", rep, err)
	}

	// Streaming one tier to a writer gives the same state.
	var buf bytes.Buffer
	if err := snapshot.StreamTier(ctx, r, snapshot.Entry{ID: delta.ID, Snapshot: delta.Snapshot}, "warm", nil, 0, "", &buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != canonical(t, filepath.Join(src, "warm.jsonl")) {
		t.Error("streamed tier differs from the export")
	}

	// Past the layer cap the next backup writes a fresh base.
	opts.MaxLayers = 1
	o.ChangeSeed = 4
	rebased := backupExport(t, r, src, o, 0, opts)
	for _, tr := range rebased.Snapshot.Tiers {
		if len(tr.Layers) != 0 {
			t.Errorf("tier %s kept %d layers past the cap", tr.Name, len(tr.Layers))
		}
	}
	sameTiers(t, src, restoreTiers(t, r, rebased))
}

// TestStoredTierWritesAsStored: the state of a tier stored whole is
// written out as its stored bytes, which are what the records read one by
// one give; a tier with a layer has only the records.
func TestStoredTierWritesAsStored(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	o := graphgen.Options{Nodes: 600, Seed: 9}
	src := t.TempDir()
	opts := snapshot.BackupOptions{Tiers: tierSpecs(src)}
	first := backupExport(t, r, src, o, 1, opts)
	o.Change, o.ChangeSeed = 0.05, 3
	layered := backupExport(t, r, src, o, 0, opts)
	for _, tr := range first.Snapshot.Tiers {
		records := func() string {
			it, err := snapshot.TierState(ctx, r, tr)
			if err != nil {
				t.Fatal(err)
			}
			defer it.Close()
			var b bytes.Buffer
			// Only Next: WriteLines uses a LineWriter, never WriteTo.
			if _, err := graph.WriteLines(&b, struct{ graph.Iterator }{it}); err != nil {
				t.Fatal(err)
			}
			return b.String()
		}()
		it, err := snapshot.TierState(ctx, r, tr)
		if err != nil {
			t.Fatal(err)
		}
		wt, ok := it.(io.WriterTo)
		if !ok {
			t.Fatalf("tier %s stored whole: its state cannot be written as stored", tr.Name)
		}
		var b bytes.Buffer
		if n, err := wt.WriteTo(&b); err != nil || n != int64(b.Len()) || b.String() != records {
			t.Errorf("tier %s: WriteTo gave %d bytes (%v), the records %d", tr.Name, n, err, len(records))
		}
		// Written out, the stream is consumed.
		if n, err := wt.WriteTo(&b); n != 0 || err != nil {
			t.Errorf("tier %s: a second WriteTo wrote %d bytes (%v)", tr.Name, n, err)
		}
		if _, err := it.Next(); !errors.Is(err, io.EOF) {
			t.Errorf("tier %s: Next after WriteTo: %v, want EOF", tr.Name, err)
		}
		it.Close()

		it, _ = snapshot.TierState(ctx, r, tr)
		if _, err := it.Next(); err != nil {
			t.Fatal(err)
		}
		if _, err := it.(io.WriterTo).WriteTo(io.Discard); err == nil {
			t.Errorf("tier %s: WriteTo after Next wrote", tr.Name)
		}
		it.Close()
	}
	withLayer := 0
	for _, tr := range layered.Snapshot.Tiers {
		if len(tr.Layers) == 0 {
			continue
		}
		withLayer++
		it, err := snapshot.TierState(ctx, r, tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := it.(io.WriterTo); ok {
			t.Errorf("tier %s has a layer: its state must be merged, not copied", tr.Name)
		}
		it.Close()
	}
	if withLayer == 0 {
		t.Fatal("the changed export's backup stored no layer")
	}
	sameTiers(t, src, restoreTiers(t, r, layered))
}

func countObjects(t *testing.T, r *repo.Repository, prefix string) int {
	n := 0
	_ = r.List(context.Background(), prefix, func(chunk.ID, int64) error { n++; return nil })
	return n
}

func TestBadGraphStoresNothing(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	dir := t.TempDir()
	good := `{"type":"node","id":"a","labels":["X"]}` + "\n" + `{"type":"node","id":"b","labels":["X"]}` + "\n"
	cases := []struct {
		name, content string
		want          string
		integrity     bool
	}{
		{"malformed", good + `{"type":"node","id":` + "\n", "tier t: line 3", false},
		{"dangling", good + `{"type":"relationship","id":"r","label":"R","start":{"id":"a","labels":["X"]},"end":{"id":"zz","labels":["X"]}}` + "\n", "dangling", true},
		{"duplicate", good + `{"type":"node","id":"a","labels":["Y"]}` + "\n", "duplicate", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".jsonl")
			_ = os.WriteFile(p, []byte(tc.content), 0o644)
			before := countObjects(t, r, repo.PrefixSnapshots) + countObjects(t, r, repo.PrefixIndex) + countObjects(t, r, "data")
			_, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Tiers: []snapshot.TierSpec{{Name: "t", Source: p}}})
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, snapshot.ErrIntegrity) != tc.integrity {
				t.Fatalf("got %v, want an error with %q (integrity %v)", err, tc.want, tc.integrity)
			}
			if n := countObjects(t, r, repo.PrefixSnapshots) + countObjects(t, r, repo.PrefixIndex) + countObjects(t, r, "data"); n != before {
				t.Errorf("a failed backup left %d objects", n-before)
			}
			if tc.integrity {
				res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Tiers: []snapshot.TierSpec{{Name: "t", Source: p}}, AllowDangling: true})
				if err != nil || res.Integrity.OK {
					t.Fatalf("--allow-dangling: %v", err)
				}
				_ = r.Backend().Remove(ctx, repo.ObjectKey(repo.PrefixSnapshots, res.ID))
			}
		})
	}
}

func TestTierSources(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "db", "a.bin"), randomData(1, 100000), 0o644)
	writeFile(t, filepath.Join(dir, "db", "sub", "b.bin"), []byte("b"), 0o644)
	g := `{"type":"node","id":"a","labels":["X"]}` + "\n"
	c := `{"type":"node","id":"c","labels":["X"]}` + "\n"
	res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{
		Stdin: strings.NewReader(g),
		Tiers: []snapshot.TierSpec{
			{Name: "db", Source: filepath.Join(dir, "db")},
			{Name: "dump", Source: "cmd:printf hello"},
			{Name: "g", Source: "-", Format: snapshot.FormatGraph},
			{Name: "cold", Source: "cmd:printf '" + c + "'", Format: snapshot.FormatGraph},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := restoreTiers(t, r, res)
	// Graph tiers come back in canonical form: keys sorted, compact.
	canon := func(id string) string { return `{"id":"` + id + `","labels":["X"],"type":"node"}` + "\n" }
	for p, want := range map[string]string{"db/sub/b.bin": "b", "dump/dump": "hello", "g.jsonl": canon("a"), "cold.jsonl": canon("c")} {
		if b, err := os.ReadFile(filepath.Join(out, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	_, err = snapshot.Backup(ctx, r, snapshot.BackupOptions{Tiers: []snapshot.TierSpec{{Name: "x", Source: "cmd:echo oops >&2; exit 3"}}})
	if err == nil || !strings.Contains(err.Error(), "oops") {
		t.Errorf("failing command: %v, want its stderr in the error", err)
	}
}

// TestLDBCAgainstGraphref backs up the LDBC SNB tiers (real data, converted
// by ../shared/tools/ldbc2strata.py) and checks the restore with graphref.
func TestLDBCAgainstGraphref(t *testing.T) {
	tools, data := filepath.Join("..", "..", "shared", "tools"), filepath.Join("..", "..", "shared", "data", "ldbc-snb-interactive-v1-test")
	if _, err := os.Stat(filepath.Join(tools, "graphref.py")); err != nil {
		t.Skip("../shared/tools is absent (fresh clone without the shared data): the LDBC oracle test needs it")
	}
	if _, err := os.Stat(data); err != nil {
		t.Skip("../shared/data/ldbc-snb-interactive-v1-test is absent")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed: graphref.py needs it")
	}
	if testing.Short() {
		t.Skip("converting LDBC takes a few seconds")
	}
	ldbc := t.TempDir()
	if out, err := exec.Command("python3", filepath.Join(tools, "ldbc2strata.py"), "--data", data, "--out", ldbc, "--with-deletes").CombinedOutput(); err != nil {
		t.Fatalf("ldbc2strata: %v\n%s", err, out)
	}
	ctx := context.Background()
	r := repotest.New(t)
	var specs []snapshot.TierSpec
	for _, name := range []string{"cold", "warm", "fast"} {
		specs = append(specs, snapshot.TierSpec{Name: name, Source: filepath.Join(ldbc, name+".jsonl")})
	}
	res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Tiers: specs})
	if err != nil {
		t.Fatalf("backup of the LDBC tiers: %v", err)
	}
	want := map[string][2]int64{"cold": {25566, 25559}, "warm": {7783, 38308}, "fast": {1386, 6975}}
	for _, tr := range res.Snapshot.Tiers {
		if w := want[tr.Name]; tr.Nodes != w[0] || tr.Relationships != w[1] {
			t.Errorf("tier %s: %d nodes, %d relationships; the converter says %v", tr.Name, tr.Nodes, tr.Relationships, w)
		}
	}
	restored := restoreTiers(t, repotest.Reopen(t, r), res)
	// graphref's canonical state of the same tiers must be byte-identical,
	// and compare must call them equal.
	ref := t.TempDir()
	args := []string{filepath.Join(tools, "graphref.py"), "state", "--out", ref}
	for _, s := range specs {
		args = append(args, "--tier", s.Name+"="+s.Source)
	}
	if out, err := exec.Command("python3", args...).CombinedOutput(); err != nil {
		t.Fatalf("graphref state: %v\n%s", err, out)
	}
	out, err := exec.Command("python3", filepath.Join(tools, "graphref.py"), "compare", ref, restored).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "equal:") {
		t.Fatalf("graphref compare: %v\n%s", err, out)
	}
	for _, name := range []string{"cold", "warm", "fast"} {
		a, _ := os.ReadFile(filepath.Join(ref, name+".jsonl"))
		b, _ := os.ReadFile(filepath.Join(restored, name+".jsonl"))
		if !bytes.Equal(a, b) {
			t.Errorf("tier %s: restore is not byte-identical to graphref's canonical form", name)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		t.Log(sc.Text())
	}
}

// A graph tier's canonical stream is cut at record ends (chunk.LineChunker),
// not by Rabin fingerprints, which end a chunk inside a line almost always.
func TestGraphTierChunksEndAtRecords(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	dir := t.TempDir()
	writeTiers(t, dir, graphgen.Options{Nodes: 20000, Seed: 5}, 0)
	res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Tiers: tierSpecs(dir)})
	if err != nil {
		t.Fatal(err)
	}
	min := int(r.Config().Chunker.MinSize)
	var cuts int
	for _, tier := range res.Snapshot.Tiers {
		tree, err := snapshot.LoadTree(ctx, r, *tier.Tree)
		if err != nil {
			t.Fatal(err)
		}
		base := tree.Find("base.jsonl")
		for i, id := range base.Content {
			b, err := r.LoadBlob(ctx, id, nil)
			if err != nil {
				t.Fatal(err)
			}
			if b[len(b)-1] != '\n' {
				t.Errorf("tier %s: chunk %d of %d ends inside a record", tier.Name, i, len(base.Content))
			}
			if i < len(base.Content)-1 {
				cuts++
				if len(b) < min {
					t.Errorf("tier %s: chunk %d has %d bytes, below the minimum %d", tier.Name, i, len(b), min)
				}
			}
		}
	}
	if cuts < 3 {
		t.Fatalf("only %d cuts: the graph is too small to show where chunks end", cuts)
	}
}

// TestCheckStateMatchesChecker: CheckState (graph.Capture's check) gives
// the report graph.Checker gives, word for word, on a graph with problems
// in several tiers (a dangling endpoint, an id defined twice across tiers,
// endpoint labels that differ from the node's), read as parsed lines and
// as stored lines (partial records, which both complete first).
func TestCheckStateMatchesChecker(t *testing.T) {
	tiers := map[string]string{
		"a": `{"id":"n1","labels":["X"],"type":"node"}` + "\n" +
			`{"id":"n2","labels":["Y"],"type":"node"}` + "\n" +
			`{"end":{"id":"n9","labels":["X"]},"id":"r1","label":"R","start":{"id":"n1","labels":["X"]},"type":"relationship"}` + "\n",
		"b": `{"id":"n2","labels":["Y"],"type":"node"}` + "\n" +
			`{"id":"n3","labels":["Z"],"type":"node"}` + "\n" +
			`{"end":{"id":"n3","labels":["W"]},"id":"r2","label":"S","start":{"id":"n1","labels":["X"]},"type":"relationship"}` + "\n",
	}
	for _, stored := range []bool{false, true} {
		open := func() map[string]graph.Iterator {
			its := map[string]graph.Iterator{}
			for name, text := range tiers {
				if stored {
					its[name] = graph.NewStoredLineIterator(strings.NewReader(text), name)
				} else {
					its[name] = graph.NewLineIterator(strings.NewReader(text), name)
				}
			}
			return its
		}
		got, err := snapshot.CheckState(context.Background(), open(), 1<<20, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		checker := graph.NewChecker(1<<20, t.TempDir())
		for _, name := range []string{"a", "b"} {
			it := open()[name]
			for line := 1; ; line++ {
				rec, err := it.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := checker.Add(name, line, rec); err != nil {
					t.Fatal(err)
				}
			}
		}
		want, err := checker.Finish()
		checker.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want.OK || want.ProblemCount < 2 || len(want.Warnings) == 0 {
			t.Fatalf("stored %v: the Checker's report has %d problems and %d warnings; the graph was meant to have both", stored, want.ProblemCount, len(want.Warnings))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("stored %v: CheckState reports\n%+v\nthe Checker\n%+v", stored, got, want)
		}
		// A cancelled check (verify interrupted) stops with the cause.
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := snapshot.CheckState(cancelled, open(), 1<<20, t.TempDir()); !errors.Is(err, context.Canceled) {
			t.Errorf("stored %v: a cancelled check returned %v", stored, err)
		}
	}
}
