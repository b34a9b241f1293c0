package verify_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
	"github.com/strata-backup/strata/snapshot"
	"github.com/strata-backup/strata/verify"
)

func TestParseSubset(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want verify.Subset
		bad  bool
	}{
		{in: "1/2", want: verify.Subset{N: 1, M: 2}},
		{in: "7/7", want: verify.Subset{N: 7, M: 7}},
		{in: "50%", want: verify.Subset{Percent: 50}},
		{in: "2.5%", want: verify.Subset{Percent: 2.5}},
		{in: "100%", want: verify.Subset{Percent: 100}},
		{in: "0/2", bad: true}, {in: "3/2", bad: true}, {in: "1/0", bad: true}, {in: "1/257", bad: true},
		{in: "a/b", bad: true}, {in: "1/2/3", bad: true}, {in: "12", bad: true}, {in: "", bad: true},
		{in: "0%", bad: true}, {in: "101%", bad: true}, {in: "%", bad: true}, {in: "NaN%", bad: true}, {in: "-5%", bad: true},
	} {
		got, err := verify.ParseSubset(tc.in)
		switch {
		case tc.bad && err == nil:
			t.Errorf("%q: accepted as %+v", tc.in, got)
		case !tc.bad && (err != nil || got != tc.want):
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		case !tc.bad && got.String() != tc.in:
			t.Errorf("%q: String() = %q", tc.in, got.String())
		}
	}
}

// TestCheckSubsets: N/M runs 1..M read every pack exactly once, and a
// percentage draws the same packs again from its seed.
func TestCheckSubsets(t *testing.T) {
	f := newCheckFixture(t)
	packs := len(f.keys("data/"))
	total := 0
	for n := 1; n <= 3; n++ {
		res := mustCheck(t, f.r, verify.CheckOptions{Subset: &verify.Subset{N: n, M: 3}})
		if !res.OK || res.ReadData != fmt.Sprintf("%d/3", n) {
			t.Fatalf("subset %d/3: %+v%s", n, res, dumpProblems(res))
		}
		total += res.PacksRead
	}
	if total != packs {
		t.Errorf("subsets 1/3..3/3 read %d packs, the repository has %d", total, packs)
	}
	res := mustCheck(t, f.r, verify.CheckOptions{Subset: &verify.Subset{Percent: 50}})
	if res.Seed == 0 || res.PacksRead != (packs+1)/2 || res.ReadData != "50%" {
		t.Errorf("50%%: read %d of %d packs, seed %d", res.PacksRead, packs, res.Seed)
	}
	// With 1% of a few packs at least one is read; damage in every pack
	// shows that the draw follows the seed.
	for _, k := range f.keys("data/") {
		l := len(f.get(k))
		f.flip(k, l/3)
	}
	a := mustCheck(t, f.r, verify.CheckOptions{Subset: &verify.Subset{Percent: 1, Seed: 42}})
	b := mustCheck(t, f.r, verify.CheckOptions{Subset: &verify.Subset{Percent: 1, Seed: 42}})
	pa, pb := findProblem(a, "", verify.KindHashMismatch), findProblem(b, "", verify.KindHashMismatch)
	if a.PacksRead != 1 || a.Seed != 42 || len(pa) != 1 || len(pb) != 1 || pa[0].Object != pb[0].Object {
		t.Errorf("1%% with seed 42: %d packs, seed %d, problems %v then %v", a.PacksRead, a.Seed, pa, pb)
	}
}

// TestCheckWarnings: what an interrupted run leaves (packs no index lists)
// and keys outside the layout are warnings; the repository is OK.
func TestCheckWarnings(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	src := t.TempDir()
	repotest.WriteFile(t, filepath.Join(src, "x"), repotest.RandomBytes(5000, 9))
	res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	// As if the backup had crashed before its index and snapshot.
	f := &checkFixture{t: t, ctx: ctx, r: r, be: r.Backend()}
	f.remove(repo.ObjectKey(repo.PrefixSnapshots, res.ID))
	for _, k := range f.keys("index/") {
		f.remove(k)
	}
	f.put("snapshots/not-an-id", []byte("x"))
	f.put("stray/file", []byte("x"))
	f.put("oplog/0000000001/junk", []byte("x"))
	got := mustCheck(t, r, verify.CheckOptions{ReadData: true})
	if !got.OK || len(got.Warnings) != len(f.keys("data/"))+3 {
		t.Fatalf("want OK with a warning per pack and per stray:%s", dumpProblems(got))
	}
	kinds := map[string]int{}
	for _, w := range got.Warnings {
		kinds[w.Kind]++
	}
	if kinds[verify.KindStray] != 3 || kinds[verify.KindUnreferenced] == 0 {
		t.Errorf("warnings by kind %v", kinds)
	}
}

// logRecord is one record at lsn (with prev_lsn when prev > 0) at second
// sec of 2026-03-01 12:00.
func logRecord(t *testing.T, lsn, prev uint64, sec int, prop string) *oplog.Record {
	t.Helper()
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(sec) * time.Second).Format(time.RFC3339)
	p := ""
	if prev > 0 {
		p = fmt.Sprintf(`"prev_lsn":%d,`, prev)
	}
	line := fmt.Sprintf(`{"lsn":%d,%s"ts":%q,"tier":"warm","op":"upsert","record":{"type":"node","id":"n%d","labels":["P"],"properties":{"p":%q}}}`, lsn, p, ts, lsn, prop)
	r, err := oplog.ParseRecord([]byte(line), 1)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dense returns records from..to, record i at second sec(i).
func dense(t *testing.T, from, to uint64, sec func(uint64) int) []*oplog.Record {
	var out []*oplog.Record
	for lsn := from; lsn <= to; lsn++ {
		out = append(out, logRecord(t, lsn, 0, sec(lsn), "v"))
	}
	return out
}

func perLSN(lsn uint64) int { return int(lsn) }

// logWriter stores segments by hand, as push and compaction would, and
// as they must not.
type logWriter struct {
	f   *checkFixture
	gen uint64
}

// seg stores recs as one segment and returns its key and end id.
func (w logWriter) seg(h oplog.Header, recs []*oplog.Record) (string, string) {
	w.f.t.Helper()
	h.Generation, h.SealedAt = w.gen, "2026-03-01T13:00:00Z"
	plain, err := oplog.EncodeSegment(h, recs)
	if err != nil {
		w.f.t.Fatal(err)
	}
	stored, id := w.f.r.SealObject(repo.PrefixOplog, plain)
	key := oplog.SegmentKey(w.gen, recs[0].LSN, recs[len(recs)-1].LSN, id)
	w.f.put(key, stored)
	if h.Level > 0 {
		return key, h.Tail
	}
	return key, id.String()
}

func newLogFixture(t *testing.T) *checkFixture {
	r := repotest.New(t)
	return &checkFixture{t: t, ctx: context.Background(), r: r, be: r.Backend()}
}

// TestCheckOplog builds logs by hand, legal and broken, and checks what
// check says about each.
func TestCheckOplog(t *testing.T) {
	cases := []struct {
		name   string
		build  func(f *checkFixture) // writes generation 1 (and more)
		object string                // "" with kind "": no problem
		kind   string
		detail string
	}{
		{name: "a dense chain", build: func(f *checkFixture) {
			w := logWriter{f, 1}
			_, e := w.seg(oplog.Header{}, dense(f.t, 1, 5, perLSN))
			_, e = w.seg(oplog.Header{Prev: e}, dense(f.t, 6, 9, perLSN))
			w.seg(oplog.Header{Prev: e}, dense(f.t, 10, 10, perLSN))
		}},
		{name: "a sparse chain (prev_lsn)", build: func(f *checkFixture) {
			w := logWriter{f, 1}
			_, e := w.seg(oplog.Header{}, []*oplog.Record{logRecord(f.t, 10, 0, 1, "a"), logRecord(f.t, 20, 10, 2, "b")})
			w.seg(oplog.Header{Prev: e}, []*oplog.Record{logRecord(f.t, 35, 20, 3, "c")})
		}},
		{name: "a sparse gap", object: "oplog/0000000001", kind: verify.KindOplogGap, detail: "after lsn 20 up to lsn 30", build: func(f *checkFixture) {
			w := logWriter{f, 1}
			_, e := w.seg(oplog.Header{}, []*oplog.Record{logRecord(f.t, 10, 0, 1, "a"), logRecord(f.t, 20, 10, 2, "b")})
			w.seg(oplog.Header{Prev: e}, []*oplog.Record{logRecord(f.t, 35, 30, 3, "c")})
		}},
		{name: "prev names another segment", kind: verify.KindOplogChain, detail: "does not name the segment before it", build: func(f *checkFixture) {
			w := logWriter{f, 1}
			_, e := w.seg(oplog.Header{}, dense(f.t, 1, 5, perLSN))
			w.seg(oplog.Header{Prev: e}, dense(f.t, 6, 7, perLSN))
			w.seg(oplog.Header{Prev: e}, dense(f.t, 8, 9, perLSN))
		}},
		{name: "ts going back across segments", kind: verify.KindOplogChain, detail: "goes back", build: func(f *checkFixture) {
			w := logWriter{f, 1}
			_, e := w.seg(oplog.Header{}, dense(f.t, 1, 5, perLSN))
			w.seg(oplog.Header{Prev: e}, dense(f.t, 6, 7, func(uint64) int { return 0 }))
		}},
		{name: "a partial overlap", kind: verify.KindOplogChain, detail: "without covering it", build: func(f *checkFixture) {
			w := logWriter{f, 1}
			_, e := w.seg(oplog.Header{}, dense(f.t, 1, 5, perLSN))
			w.seg(oplog.Header{Prev: e}, dense(f.t, 4, 8, perLSN))
		}},
		{name: "the head pruned, recorded", build: func(f *checkFixture) {
			w := logWriter{f, 1}
			k, e := w.seg(oplog.Header{}, dense(f.t, 1, 5, perLSN))
			w.seg(oplog.Header{Prev: e}, dense(f.t, 6, 9, perLSN))
			if _, err := f.r.SaveDeletion(f.ctx, repo.Deletion{Kind: repo.DeletionPruneDelete, Reason: "prune", Removed: []string{k}}); err != nil {
				f.t.Fatal(err)
			}
			f.remove(k)
		}},
		{name: "the head lost", object: "oplog/0000000001", kind: verify.KindOplogGap, detail: "before lsn 6", build: func(f *checkFixture) {
			w := logWriter{f, 1}
			k, e := w.seg(oplog.Header{}, dense(f.t, 1, 5, perLSN))
			w.seg(oplog.Header{Prev: e}, dense(f.t, 6, 9, perLSN))
			f.remove(k)
		}},
		{name: "a compaction interrupted before the removal", build: func(f *checkFixture) {
			w := logWriter{f, 1}
			_, e1 := w.seg(oplog.Header{}, dense(f.t, 1, 3, perLSN))
			_, e2 := w.seg(oplog.Header{Prev: e1}, dense(f.t, 4, 6, perLSN))
			w.seg(oplog.Header{Level: 1, Tail: e2}, dense(f.t, 1, 6, perLSN))
			w.seg(oplog.Header{Prev: e2}, dense(f.t, 7, 9, perLSN))
		}},
		{name: "a covered segment that differs", kind: verify.KindOplogOverlap, detail: "lsn 5 differs", build: func(f *checkFixture) {
			w := logWriter{f, 1}
			_, e1 := w.seg(oplog.Header{}, dense(f.t, 1, 3, perLSN))
			recs := dense(f.t, 4, 6, perLSN)
			recs[1] = logRecord(f.t, 5, 0, 5, "other")
			_, e2 := w.seg(oplog.Header{Prev: e1}, recs)
			w.seg(oplog.Header{Level: 1, Tail: e2}, dense(f.t, 1, 6, perLSN))
		}},
		{name: "a compacted segment without a tail", kind: verify.KindOplogHeader, build: func(f *checkFixture) {
			logWriter{f, 1}.seg(oplog.Header{Level: 1}, dense(f.t, 1, 3, perLSN))
		}},
		{name: "a key that does not match the header", kind: verify.KindOplogHeader, detail: "the key says", build: func(f *checkFixture) {
			k, _ := logWriter{f, 1}.seg(oplog.Header{}, dense(f.t, 1, 3, perLSN))
			s, _ := oplog.ParseSegmentKey(k)
			f.put(oplog.SegmentKey(1, 1, 4, s.ID), f.get(k))
			f.remove(k)
		}},
		{name: "generation 2 with its parent", build: func(f *checkFixture) {
			logWriter{f, 1}.seg(oplog.Header{}, dense(f.t, 1, 5, perLSN))
			logWriter{f, 2}.seg(oplog.Header{Parent: &oplog.Parent{Generation: 1, LSN: 3}}, dense(f.t, 4, 6, perLSN))
		}},
		{name: "generation 2 without a parent", kind: verify.KindOplogParent, detail: "needs a parent", build: func(f *checkFixture) {
			logWriter{f, 1}.seg(oplog.Header{}, dense(f.t, 1, 5, perLSN))
			logWriter{f, 2}.seg(oplog.Header{}, dense(f.t, 4, 6, perLSN))
		}},
		{name: "generation 2 branching from a missing generation", kind: verify.KindOplogParent, detail: "has no segments", build: func(f *checkFixture) {
			logWriter{f, 2}.seg(oplog.Header{Parent: &oplog.Parent{Generation: 1, LSN: 3}}, dense(f.t, 4, 6, perLSN))
		}},
		{name: "generation 2 starting before its branch point", kind: verify.KindOplogParent, detail: "not after its branch point", build: func(f *checkFixture) {
			logWriter{f, 1}.seg(oplog.Header{}, dense(f.t, 1, 5, perLSN))
			logWriter{f, 2}.seg(oplog.Header{Parent: &oplog.Parent{Generation: 1, LSN: 3}}, dense(f.t, 2, 6, perLSN))
		}},
		{name: "an undecodable segment", kind: verify.KindUndecodable, build: func(f *checkFixture) {
			stored, id := f.r.SealObject(repo.PrefixOplog, []byte("not a segment\n"))
			f.put(oplog.SegmentKey(1, 1, 2, id), stored)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newLogFixture(t)
			tc.build(f)
			res := mustCheck(t, f.r, verify.CheckOptions{})
			if tc.kind == "" {
				if !res.OK {
					t.Fatalf("want no problems:%s", dumpProblems(res))
				}
				return
			}
			got := findProblem(res, tc.object, tc.kind)
			if len(got) == 0 {
				t.Fatalf("no %s problem naming %q:%s", tc.kind, tc.object, dumpProblems(res))
			}
			if tc.detail != "" && !containsDetail(got, tc.detail) {
				t.Errorf("no detail says %q:%s", tc.detail, dumpProblems(res))
			}
			t.Logf("found:%s", dumpProblems(res))
		})
	}
}

func containsDetail(ps []verify.Problem, s string) bool {
	for _, p := range ps {
		if strings.Contains(p.Detail, s) {
			return true
		}
	}
	return false
}

// TestCheckAfterCompaction: the log as oplog's own compaction leaves it
// passes, and so does a compaction interrupted before its removals.
func TestCheckAfterCompaction(t *testing.T) {
	f := newLogFixture(t)
	l, err := oplog.Open(f.ctx, f.r, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Segments of 3 records, 20 s apart: three per minute.
	var keys []string
	for s := range 7 {
		first := uint64(3*s + 1)
		key, err := l.Append(f.ctx, dense(t, first, first+2, func(lsn uint64) int { return 20 * int((lsn-1)/3) }))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	saved := map[string][]byte{}
	for _, k := range keys {
		saved[k] = f.get(k)
	}
	cres, err := l.Compact(f.ctx, oplog.CompactOptions{Levels: []time.Duration{time.Minute}})
	if err != nil || len(cres.Written) == 0 {
		t.Fatalf("compact: %+v, %v", cres, err)
	}
	if res := mustCheck(t, f.r, verify.CheckOptions{}); !res.OK || res.Segments != cres.After {
		t.Fatalf("after compaction (%d segments):%s", cres.After, dumpProblems(res))
	}
	for _, k := range cres.Removed {
		f.put(k, saved[k])
	}
	if res := mustCheck(t, f.r, verify.CheckOptions{}); !res.OK || res.Segments != cres.After+len(cres.Removed) {
		t.Fatalf("with the replaced segments back:%s", dumpProblems(res))
	}
	// A replaced segment coming back damaged is still damage.
	f.flip(cres.Removed[0], 50)
	res := mustCheck(t, f.r, verify.CheckOptions{})
	if len(findProblem(res, cres.Removed[0], verify.KindHashMismatch)) != 1 {
		t.Fatalf("damaged leftover:%s", dumpProblems(res))
	}
}

// TestCheckCancelled: a cancelled context is an error, not damage.
func TestCheckCancelled(t *testing.T) {
	f := newCheckFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res, err := verify.Check(ctx, f.r, verify.CheckOptions{ReadData: true, TmpDir: t.TempDir()}); err == nil {
		t.Fatalf("check with a cancelled context: %+v", res)
	}
}

// TestCheckProgress: the stages are announced in order.
func TestCheckProgress(t *testing.T) {
	f := newCheckFixture(t)
	p := &recordingProgress{}
	mustCheck(t, f.r, verify.CheckOptions{ReadData: true, Progress: p})
	want := []string{"list", "objects", "packs", "snapshots", "oplog", "read-data"}
	if fmt.Sprint(p.stages) != fmt.Sprint(want) {
		t.Errorf("stages %v, want %v", p.stages, want)
	}
}

type recordingProgress struct{ stages []string }

func (p *recordingProgress) Stage(name string, _ int, _ int64) { p.stages = append(p.stages, name) }
func (p *recordingProgress) Done(int, int64)                   {}

// FuzzCheckObject: an object may hold any authentic plaintext (written by
// a bug, or by another version). Check must meet it without a panic or an
// operational error, whatever the object's kind.
func FuzzCheckObject(f *testing.F) {
	const id = "ab00000000000000000000000000000000000000000000000000000000000000"
	f.Add(uint8(0), []byte(`{"packs":[{"id":"`+id+`","blobs":[{"id":"`+id+`","type":"tree","offset":0,"length":41,"raw_length":1}]}]}`))
	f.Add(uint8(0), []byte(`{"supersedes":["`+id+`"],"packs":[]}`))
	f.Add(uint8(1), []byte(`{"version":1,"time":"2026-01-01T00:00:00Z","hostname":"h","paths":["/"],"tree":"`+id+
		`","tiers":[{"name":"g","format":"graph","tree":"`+id+`","layers":[{"since":"`+id+`"}]}]}`))
	f.Add(uint8(2), []byte(`{"generation":1,"level":1,"first_lsn":1,"last_lsn":1,"records":1,"prev":"x","tail":"y"}`+"\n"+
		`{"lsn":1,"ts":"2026-03-01T00:00:01Z","tier":"warm","op":"delete","kind":"node","id":"a"}`+"\n"))
	f.Add(uint8(3), []byte(`{"kind":"prune-delete","time":"2026-01-01T00:00:00Z","removed":["oplog/0000000001/00000000000000000001-00000000000000000009-`+id+`"]}`))
	f.Add(uint8(4), []byte(`{"time":"2026-01-01T00:00:00Z","last_lsn":18446744073709551615}`))
	f.Add(uint8(5), []byte(`[]`))
	r := repotest.New(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, kind uint8, plain []byte) {
		prefix := []string{repo.PrefixIndex, repo.PrefixSnapshots, repo.PrefixOplog, repo.PrefixDeletions, repo.PrefixOplog, repo.PrefixPolicy}[int(kind)%6]
		stored, oid := r.SealObject(prefix, plain)
		key := repo.ObjectKey(prefix, oid)
		switch int(kind) % 6 {
		case 2:
			key = oplog.SegmentKey(1, 1, 1, oid)
		case 4:
			key = oplog.HeartbeatPrefix(1) + oid.String()
		}
		if err := r.Backend().Save(ctx, key, stored); err != nil {
			t.Fatal(err)
		}
		defer r.Backend().Remove(ctx, key)
		if _, err := verify.Check(ctx, r, verify.CheckOptions{ReadData: true, TmpDir: t.TempDir()}); err != nil {
			t.Fatalf("check: %v", err)
		}
	})
}

// hookBackend runs hook once, just before the first Load of key (the
// hook may load key itself).
type hookBackend struct {
	backend.Backend
	key  string
	done atomic.Bool
	hook func()
}

func (b *hookBackend) Load(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error) error {
	if key == b.key && b.done.CompareAndSwap(false, true) {
		b.hook()
	}
	return b.Backend.Load(ctx, key, offset, length, fn)
}

// TestCheckDuringCompaction: a compaction that replaces segments after
// check listed them is no damage: check lists the generation again.
func TestCheckDuringCompaction(t *testing.T) {
	ctx := context.Background()
	hb := &hookBackend{Backend: backend.OpenMem()}
	r := repotest.NewOn(t, hb)
	l, err := oplog.Open(ctx, r, 1)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for s := range 7 {
		first := uint64(3*s + 1)
		key, err := l.Append(ctx, dense(t, first, first+2, func(lsn uint64) int { return 20 * int((lsn-1)/3) }))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	var cres oplog.CompactResult
	hb.key = keys[1]
	hb.hook = func() {
		if cres, err = l.Compact(ctx, oplog.CompactOptions{Levels: []time.Duration{time.Minute}}); err != nil {
			t.Error(err)
		}
	}
	res := mustCheck(t, r, verify.CheckOptions{})
	if len(cres.Removed) == 0 {
		t.Fatal("the compaction removed nothing")
	}
	if !res.OK || res.Segments != cres.After {
		t.Fatalf("check during a compaction (%d segments after it, %d counted):%s", cres.After, res.Segments, dumpProblems(res))
	}
}
