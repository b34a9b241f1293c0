package verify_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/graphgen"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/oplog/oplogtest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
	"github.com/strata-backup/strata/snapshot"
	"github.com/strata-backup/strata/verify"
)

// checkFixture is a small repository with everything check looks at: plain
// files spread over several packs, graph tiers with a delta layer, two
// snapshots, and a log of four segments.
type checkFixture struct {
	t     *testing.T
	ctx   context.Context
	r     *repo.Repository
	be    backend.Backend
	snaps []chunk.ID // oldest first
	segs  []string   // segment keys in lsn order
}

func newCheckFixture(t *testing.T) *checkFixture {
	t.Helper()
	f := &checkFixture{t: t, ctx: context.Background(), r: repotest.New(t)}
	f.be = f.r.Backend()
	src, graphDir := t.TempDir(), t.TempDir()
	repotest.WriteFile(t, filepath.Join(src, "a.txt"), []byte("alpha\n"))
	repotest.WriteFile(t, filepath.Join(src, "d", "c.txt"), []byte("gamma\n"))
	// Incompressible and above repotest's 1 MiB packs: several packs.
	repotest.WriteFile(t, filepath.Join(src, "big.bin"), repotest.RandomBytes(1500<<10, 1))
	o := graphgen.Options{Nodes: 200, Seed: 3}
	for i := range 2 {
		if _, err := graphgen.WriteDir(graphDir, o); err != nil {
			t.Fatal(err)
		}
		var tiers []snapshot.TierSpec
		for _, name := range graphgen.Tiers {
			tiers = append(tiers, snapshot.TierSpec{Name: name, Source: filepath.Join(graphDir, name+".jsonl")})
		}
		res, err := snapshot.Backup(f.ctx, f.r, snapshot.BackupOptions{
			Paths: []string{src}, Tiers: tiers, Host: "h", Time: time.Date(2026, 3, 1, i, 0, 0, 0, time.UTC),
		})
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		f.snaps = append(f.snaps, res.ID)
		o.Change, o.ChangeSeed = 0.05, 7 // the second backup stores delta layers
		repotest.WriteFile(t, filepath.Join(src, "a.txt"), []byte("alpha, changed\n"))
	}
	f.segs = oplogtest.Segments(t, f.r, 1, 4, 3, 1, true)
	return f
}

// keys lists the repository's keys under prefix, sorted.
func (f *checkFixture) keys(prefix string) []string {
	f.t.Helper()
	var out []string
	if err := f.be.List(f.ctx, prefix, func(oi backend.ObjectInfo) error {
		out = append(out, oi.Key)
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func (f *checkFixture) get(key string) []byte {
	f.t.Helper()
	b, err := backend.LoadAll(f.ctx, f.be, key)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// put replaces key's bytes (Save is create-only: remove first).
func (f *checkFixture) put(key string, b []byte) {
	f.t.Helper()
	if err := f.be.Remove(f.ctx, key); err != nil && !errors.Is(err, backend.ErrNotFound) {
		f.t.Fatal(err)
	}
	if err := f.be.Save(f.ctx, key, b); err != nil {
		f.t.Fatal(err)
	}
}

func (f *checkFixture) remove(key string) {
	f.t.Helper()
	if err := f.be.Remove(f.ctx, key); err != nil {
		f.t.Fatal(err)
	}
}

// flip inverts one byte of key at offset (negative: from the end).
func (f *checkFixture) flip(key string, offset int) {
	f.t.Helper()
	b := f.get(key)
	if offset < 0 {
		offset += len(b)
	}
	b[offset] ^= 0xff
	f.put(key, b)
}

// dataBlob returns a data blob's location as the index has it.
func (f *checkFixture) dataBlob() index.Location {
	f.t.Helper()
	for _, k := range f.keys("index/") {
		id, _ := chunk.ParseID(strings.TrimPrefix(k, "index/"))
		file, err := f.r.LoadIndexFile(f.ctx, id)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, p := range file.Packs {
			for _, b := range p.Blobs {
				if b.Type == index.DataBlob && b.Length > 100 {
					return index.Location{Pack: p.ID, Blob: b}
				}
			}
		}
	}
	f.t.Fatal("no data blob")
	return index.Location{}
}

// treePack returns the key of the pack holding the first snapshot's root tree.
func (f *checkFixture) treePack() string {
	f.t.Helper()
	sn, err := snapshot.Load(f.ctx, f.r, f.snaps[0])
	if err != nil {
		f.t.Fatal(err)
	}
	locs, err := f.r.LookupBlob(f.ctx, *sn.Tree)
	if err != nil || len(locs) == 0 {
		f.t.Fatalf("root tree: %v %v", locs, err)
	}
	return repo.ObjectKey(repo.PrefixData, locs[0].Pack)
}

func mustCheck(t *testing.T, r *repo.Repository, opts verify.CheckOptions) *verify.CheckResult {
	t.Helper()
	opts.TmpDir = t.TempDir()
	res, err := verify.Check(context.Background(), r, opts)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if res.OK != (len(res.Problems) == 0) {
		t.Fatalf("ok=%v with %d problems", res.OK, len(res.Problems))
	}
	return res
}

// findProblem returns the problems of kind naming object ("" : any object).
func findProblem(res *verify.CheckResult, object, kind string) []verify.Problem {
	var out []verify.Problem
	for _, p := range res.Problems {
		if p.Kind == kind && (object == "" || p.Object == object) {
			out = append(out, p)
		}
	}
	return out
}

func dumpProblems(res *verify.CheckResult) string {
	var b strings.Builder
	for _, p := range res.Problems {
		fmt.Fprintf(&b, "\n  %s: %s: %s", p.Object, p.Kind, p.Detail)
	}
	for _, p := range res.Warnings {
		fmt.Fprintf(&b, "\n  warning %s: %s: %s", p.Object, p.Kind, p.Detail)
	}
	return b.String()
}

// TestCheckDamage damages a fresh repository in one way per case and
// requires check (structure, or only with read-data where the damage is
// inside a blob) to report it as damage naming the damaged object.
func TestCheckDamage(t *testing.T) {
	cases := []struct {
		name string
		// damage damages f and returns the object the problem must name
		// and its kind.
		damage func(f *checkFixture) (object, kind string)
		// readData: the structure check cannot see this damage; only
		// reading the pack can.
		readData bool
		// detail, when set, must occur in the problem's detail.
		detail string
	}{
		{name: "flip a byte inside a data blob", readData: true, damage: func(f *checkFixture) (string, string) {
			l := f.dataBlob()
			key := repo.ObjectKey(repo.PrefixData, l.Pack)
			f.flip(key, int(l.Offset+l.Length/2))
			return key, verify.KindHashMismatch
		}},
		{name: "flip a byte inside a data blob (the blob is named)", readData: true, damage: func(f *checkFixture) (string, string) {
			l := f.dataBlob()
			key := repo.ObjectKey(repo.PrefixData, l.Pack)
			f.flip(key, int(l.Offset+l.Length/2))
			return key, verify.KindBadBlob
		}},
		{name: "flip a byte in a pack header", damage: func(f *checkFixture) (string, string) {
			key := f.keys("data/")[0]
			f.flip(key, -10)
			return key, verify.KindPackHeader
		}},
		{name: "truncate a pack", damage: func(f *checkFixture) (string, string) {
			key := f.keys("data/")[0]
			b := f.get(key)
			f.put(key, b[:len(b)/2])
			return key, verify.KindPackHeader
		}},
		{name: "delete a pack", damage: func(f *checkFixture) (string, string) {
			key := f.keys("data/")[0]
			f.remove(key)
			return key, verify.KindMissingPack
		}},
		{name: "delete an index object", damage: func(f *checkFixture) (string, string) {
			// The index object is gone, so the problem names what needed
			// it: the snapshots whose blobs are now in no index.
			f.remove(f.keys("index/")[0])
			return "", verify.KindMissingBlob
		}},
		{name: "alter an index object", damage: func(f *checkFixture) (string, string) {
			key := f.keys("index/")[0]
			f.flip(key, 30)
			return key, verify.KindHashMismatch
		}},
		{name: "alter a snapshot", damage: func(f *checkFixture) (string, string) {
			key := repo.ObjectKey(repo.PrefixSnapshots, f.snaps[0])
			f.flip(key, -1)
			return key, verify.KindHashMismatch
		}},
		{name: "delete the pack of a snapshot's tree", damage: func(f *checkFixture) (string, string) {
			f.remove(f.treePack())
			return repo.ObjectKey(repo.PrefixSnapshots, f.snaps[0]), verify.KindUnreadableBlob
		}},
		{name: "delete the pack of a snapshot's tree (the pack is named)", damage: func(f *checkFixture) (string, string) {
			key := f.treePack()
			f.remove(key)
			return key, verify.KindMissingPack
		}},
		{name: "drop an oplog segment from inside the log", detail: "after lsn 3 up to lsn 6", damage: func(f *checkFixture) (string, string) {
			f.remove(f.segs[1])
			return "oplog/0000000001", verify.KindOplogGap
		}},
		{name: "alter an oplog segment", damage: func(f *checkFixture) (string, string) {
			f.flip(f.segs[2], 40)
			return f.segs[2], verify.KindHashMismatch
		}},
		{name: "swap two objects' names", damage: func(f *checkFixture) (string, string) {
			a, b := repo.ObjectKey(repo.PrefixSnapshots, f.snaps[0]), repo.ObjectKey(repo.PrefixSnapshots, f.snaps[1])
			ab, bb := f.get(a), f.get(b)
			f.put(a, bb)
			f.put(b, ab)
			return b, verify.KindHashMismatch // and a: checked below
		}},
		{name: "swap two packs' names", damage: func(f *checkFixture) (string, string) {
			// The headers still authenticate, but list other blobs than
			// the index says the packs hold.
			ks := f.keys("data/")
			ab, bb := f.get(ks[0]), f.get(ks[1])
			f.put(ks[0], bb)
			f.put(ks[1], ab)
			return ks[1], verify.KindIndexMismatch
		}},
		{name: "truncate a key file", damage: func(f *checkFixture) (string, string) {
			// A second key, so that the repository still opens.
			id, err := f.r.AddKey(f.ctx, "another password")
			if err != nil {
				f.t.Fatal(err)
			}
			key := "keys/" + id.String()
			b := f.get(key)
			f.put(key, b[:len(b)-20])
			return key, verify.KindHashMismatch
		}},
		{name: "an index object under snapshots/ (wrong associated data)", damage: func(f *checkFixture) (string, string) {
			b := f.get(f.keys("index/")[0])
			key := repo.ObjectKey(repo.PrefixSnapshots, chunk.ObjectID(b))
			f.put(key, b)
			return key, verify.KindUnauthenticated
		}},
		{name: "alter a heartbeat", damage: func(f *checkFixture) (string, string) {
			key, err := oplog.WriteHeartbeat(f.ctx, f.r, 1, oplog.Heartbeat{Time: time.Now(), LastLSN: 12})
			if err != nil {
				f.t.Fatal(err)
			}
			f.flip(key, 30)
			return key, verify.KindHashMismatch
		}},
		{name: "lose the log's tail a heartbeat vouched for", detail: "records after lsn 9", damage: func(f *checkFixture) (string, string) {
			if _, err := oplog.WriteHeartbeat(f.ctx, f.r, 1, oplog.Heartbeat{Time: time.Now(), LastLSN: 12}); err != nil {
				f.t.Fatal(err)
			}
			f.remove(f.segs[3])
			return "oplog/0000000001", verify.KindOplogGap
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newCheckFixture(t)
			if res := mustCheck(t, f.r, verify.CheckOptions{ReadData: true}); !res.OK || len(res.Warnings) > 0 {
				t.Fatalf("undamaged repository:%s", dumpProblems(res))
			}
			object, kind := tc.damage(f)
			r := repotest.Reopen(t, f.r) // a fresh index cache, as a new process has
			res := mustCheck(t, r, verify.CheckOptions{})
			if tc.readData {
				if !res.OK {
					t.Fatalf("the structure check found damage only read-data should see:%s", dumpProblems(res))
				}
				res = mustCheck(t, r, verify.CheckOptions{ReadData: true})
			}
			got := findProblem(res, object, kind)
			if len(got) == 0 {
				t.Fatalf("no %s problem naming %q:%s", kind, object, dumpProblems(res))
			}
			if tc.detail != "" && !strings.Contains(got[0].Detail, tc.detail) {
				t.Errorf("detail %q does not say %q", got[0].Detail, tc.detail)
			}
			if res.OK {
				t.Error("ok with damage")
			}
			t.Logf("found:%s", dumpProblems(res))
		})
	}
}

// TestCheckSwapNamesBoth: swapping two objects' bytes damages both names.
func TestCheckSwapNamesBoth(t *testing.T) {
	f := newCheckFixture(t)
	a, b := repo.ObjectKey(repo.PrefixSnapshots, f.snaps[0]), repo.ObjectKey(repo.PrefixSnapshots, f.snaps[1])
	ab, bb := f.get(a), f.get(b)
	f.put(a, bb)
	f.put(b, ab)
	res := mustCheck(t, f.r, verify.CheckOptions{})
	if len(findProblem(res, a, verify.KindHashMismatch)) != 1 || len(findProblem(res, b, verify.KindHashMismatch)) != 1 {
		t.Fatalf("want a hash mismatch on each:%s", dumpProblems(res))
	}
	// The bytes are authentic: the snapshots are still walked, nothing
	// else is reported.
	if len(res.Problems) != 2 || res.Snapshots != 2 {
		t.Errorf("want exactly the two problems and both snapshots walked (%d):%s", res.Snapshots, dumpProblems(res))
	}
}

// TestCheckCounters: an undamaged repository is OK with and without
// read-data, and the counters say what was looked at.
func TestCheckCounters(t *testing.T) {
	f := newCheckFixture(t)
	res := mustCheck(t, f.r, verify.CheckOptions{})
	if !res.OK || len(res.Warnings) != 0 {
		t.Fatalf("undamaged:%s", dumpProblems(res))
	}
	packs := len(f.keys("data/"))
	if res.Packs != packs || packs < 2 || res.IndexObjects != 2 || res.Snapshots != 2 || res.Trees < 6 ||
		res.Generations != 1 || res.Segments != 4 || res.Blobs == 0 || res.PacksRead != 0 || res.ReadData != "" {
		t.Errorf("counters %+v", res)
	}
	full := mustCheck(t, f.r, verify.CheckOptions{ReadData: true})
	if !full.OK || full.PacksRead != packs || full.ReadData != "all" || full.BlobsRead < full.Blobs || full.BytesRead <= res.BytesRead {
		t.Errorf("read-data counters %+v (structure read %d bytes)", full, res.BytesRead)
	}
}
