package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/mirror"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
	"github.com/strata-backup/strata/verify"
)

// mirrored returns a primary (see newPrimary) and a fresh, complete mirror
// of it.
func mirrored(t *testing.T) (*primary, backend.Backend) {
	t.Helper()
	p := newPrimary(t, backend.OpenMem())
	dst := backend.OpenMem()
	run(t, p, dst, mirror.Options{})
	return p, dst
}

func repair(t *testing.T, p *primary, from backend.Backend, dryRun bool) *mirror.RepairResult {
	t.Helper()
	res, err := mirror.Repair(context.Background(), p.r, from, mirror.RepairOptions{
		DryRun: dryRun, Check: verify.CheckOptions{TmpDir: t.TempDir()},
	})
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	return res
}

// put replaces key's bytes on be (stores are create-only: remove first).
func put(t *testing.T, be backend.Backend, key string, b []byte) {
	t.Helper()
	ctx := context.Background()
	if err := be.Remove(ctx, key); err != nil && !errors.Is(err, backend.ErrNotFound) {
		t.Fatal(err)
	}
	if err := be.Save(ctx, key, b); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, be backend.Backend, key string) []byte {
	t.Helper()
	b, err := backend.LoadAll(context.Background(), be, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// biggestPack is the key of the primary's largest pack (it holds data of
// big.bin, which every snapshot needs).
func (p *primary) biggestPack() string {
	p.t.Helper()
	var key string
	var size int64 = -1
	err := p.be.List(p.ctx, "data/", func(fi backend.ObjectInfo) error {
		if fi.Size > size && !bytes.Contains([]byte(fi.Key), []byte("not-an-object")) {
			key, size = fi.Key, fi.Size
		}
		return nil
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return key
}

func repairedKeys(res *mirror.RepairResult) map[string]string {
	out := map[string]string{}
	for _, o := range res.Repaired {
		out[o.Object] = o.Kind
	}
	return out
}

// TestRepair damages the primary in each way SPEC 7 names, repairs it from
// its mirror, and requires check --read-data to pass, the primary to hold
// the mirror's bytes again, and every snapshot to restore byte-identical.
func TestRepair(t *testing.T) {
	cases := []struct {
		name string
		// damage harms the primary and returns the keys repair must name.
		damage func(t *testing.T, p *primary) []string
		// found: check (before repair) finds the damage.
		found bool
	}{
		{"FlippedPackByte", func(t *testing.T, p *primary) []string {
			k := p.biggestPack()
			corrupt(t, p.be, k)
			return []string{k}
		}, true},
		{"TruncatedPack", func(t *testing.T, p *primary) []string {
			k := p.biggestPack()
			put(t, p.be, k, load(t, p.be, k)[:1000])
			return []string{k}
		}, true},
		{"DeletedPack", func(t *testing.T, p *primary) []string {
			k := p.biggestPack()
			if err := p.be.Remove(p.ctx, k); err != nil {
				t.Fatal(err)
			}
			return []string{k}
		}, true},
		{"DeletedIndex", func(t *testing.T, p *primary) []string {
			keys := p.keys("index/")
			for _, k := range keys {
				if err := p.be.Remove(p.ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			return keys
		}, true},
		{"AlteredSnapshot", func(t *testing.T, p *primary) []string {
			k := p.keys("snapshots/")[0]
			b := load(t, p.be, k)
			copy(b[30:], "XXXXXXXX")
			put(t, p.be, k, b)
			return []string{k}
		}, true},
		{"DeletedSnapshot", func(t *testing.T, p *primary) []string {
			// check cannot see a snapshot that is gone; the mirror can.
			k := p.keys("snapshots/")[1]
			if err := p.be.Remove(p.ctx, k); err != nil {
				t.Fatal(err)
			}
			return []string{k}
		}, false},
		{"DroppedOplogSegment", func(t *testing.T, p *primary) []string {
			k := p.segs[1]
			if err := p.be.Remove(p.ctx, k); err != nil {
				t.Fatal(err)
			}
			return []string{k}
		}, true},
		{"Everything", func(t *testing.T, p *primary) []string {
			packs := p.keys("data/")
			var want []string
			for i, k := range packs {
				if bytes.Contains([]byte(k), []byte("not-an-object")) {
					continue
				}
				if i%2 == 0 {
					corrupt(t, p.be, k)
				} else if err := p.be.Remove(p.ctx, k); err != nil {
					t.Fatal(err)
				}
				want = append(want, k)
			}
			idx := p.keys("index/")[0]
			corrupt(t, p.be, idx)
			if err := p.be.Remove(p.ctx, p.segs[0]); err != nil {
				t.Fatal(err)
			}
			corrupt(t, p.be, p.segs[2])
			return append(want, idx, p.segs[0], p.segs[2])
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, dst := mirrored(t)
			want := tc.damage(t, p)
			before, err := verify.Check(p.ctx, p.r, verify.CheckOptions{ReadData: true, TmpDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if before.OK == tc.found {
				t.Fatalf("check before repair: ok=%v, problems %+v", before.OK, before.Problems)
			}

			// A dry run lists the same and changes nothing.
			snap := contents(t, p.be)
			dry := repair(t, p, dst, true)
			if !dry.DryRun || len(dry.Repaired) != len(want) {
				t.Errorf("dry run: %+v, want %d objects", dry.Repaired, len(want))
			}
			after := contents(t, p.be)
			if len(after) != len(snap) {
				t.Fatalf("dry run changed the number of objects: %d -> %d", len(snap), len(after))
			}
			for k, v := range snap {
				if !bytes.Equal(after[k], v) {
					t.Fatalf("dry run changed %s", k)
				}
			}

			res := repair(t, p, dst, false)
			if !res.OK || !res.CheckOK || len(res.Unrepairable) != 0 {
				t.Fatalf("repair: ok=%v check_ok=%v unrepairable=%+v", res.OK, res.CheckOK, res.Unrepairable)
			}
			got := repairedKeys(res)
			for _, k := range want {
				if _, ok := got[k]; !ok {
					t.Errorf("%s not repaired (repaired: %v)", k, got)
				}
			}
			if len(got) != len(want) {
				t.Errorf("repaired %d objects, want %d: %v", len(got), len(want), got)
			}
			if res.After == nil && tc.found {
				t.Error("no second check")
			}
			mustCheck(t, p.r)
			assertReplica(t, p.be, dst)
			// A second process (fresh index cache) restores every snapshot,
			// the newest byte-identical to the source.
			if n := restoreAll(t, repotest.Reopen(t, p.r), p.src); n != 2 {
				t.Errorf("restored %d snapshots, want 2", n)
			}
			// Repair is idempotent: nothing is left to do.
			if again := repair(t, p, dst, false); !again.OK || len(again.Repaired) != 0 {
				t.Errorf("second repair: %+v", again)
			}
		})
	}
}

// TestRepairKinds: objects check names carry the problem's kind, objects
// only the sweep finds carry "missing".
func TestRepairKinds(t *testing.T) {
	p, dst := mirrored(t)
	pack := p.biggestPack()
	corrupt(t, p.be, pack)
	snap := p.keys("snapshots/")[0]
	if err := p.be.Remove(p.ctx, snap); err != nil {
		t.Fatal(err)
	}
	got := repairedKeys(repair(t, p, dst, false))
	if k := got[pack]; k != verify.KindBadBlob && k != verify.KindHashMismatch {
		t.Errorf("pack repaired as %q", k)
	}
	if k := got[snap]; k != mirror.KindMissing {
		t.Errorf("snapshot repaired as %q, want %q", k, mirror.KindMissing)
	}
}

// TestRepairUnrepairable: damage the mirror shares, or an object the mirror
// lacks, is listed, and the rest is still repaired.
func TestRepairUnrepairable(t *testing.T) {
	p, dst := mirrored(t)
	packs := p.keys("data/")
	var a, b string
	for _, k := range packs {
		if bytes.Contains([]byte(k), []byte("not-an-object")) {
			continue
		}
		if a == "" {
			a = k
		} else if b == "" {
			b = k
		}
	}
	corrupt(t, p.be, a)
	corrupt(t, dst, a) // damaged on both sides
	if err := p.be.Remove(p.ctx, b); err != nil {
		t.Fatal(err)
	}
	seg := p.segs[1]
	if err := p.be.Remove(p.ctx, seg); err != nil {
		t.Fatal(err)
	}
	if err := dst.Remove(p.ctx, seg); err != nil { // lost on both sides
		t.Fatal(err)
	}

	res := repair(t, p, dst, false)
	if res.OK || res.CheckOK {
		t.Fatalf("repair of shared damage reported ok=%v check_ok=%v", res.OK, res.CheckOK)
	}
	if got := repairedKeys(res); len(got) != 1 || got[b] == "" {
		t.Errorf("repaired %v, want only %s", got, b)
	}
	listed := map[string]string{}
	for _, u := range res.Unrepairable {
		if _, ok := listed[u.Object]; !ok {
			listed[u.Object] = u.Detail
		}
	}
	if d := listed[a]; d == "" || !bytes.Contains([]byte(d), []byte("damaged too")) {
		t.Errorf("%s: detail %q, want the mirror's copy damaged too (unrepairable: %+v)", a, d, res.Unrepairable)
	}
	gen := filepath.Dir(seg) // "oplog/0000000001": check reports the gap there
	if _, ok := listed[gen]; !ok {
		t.Errorf("the log gap is not listed as unrepairable: %+v", res.Unrepairable)
	}
	if ok, err := p.be.Stat(p.ctx, b); err != nil {
		t.Errorf("the missing pack was not copied back: %v %v", ok, err)
	}
}

// TestRepairKeepsDeletions: what a deletion record removed on purpose is
// not copied back, although the mirror (within its delay) still holds it.
func TestRepairKeepsDeletions(t *testing.T) {
	p, dst := mirrored(t)
	snap := p.keys("snapshots/")[0]
	p.remove(repo.DeletionForget, time.Now(), snap)
	res := repair(t, p, dst, false)
	if !res.OK || len(res.Repaired) != 0 {
		t.Fatalf("repair after a forget: %+v", res)
	}
	if _, err := p.be.Stat(p.ctx, snap); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("the forgotten snapshot came back: %v", err)
	}
}

// TestRepairRefuses: only a replica of this repository is a source.
func TestRepairRefuses(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	other := repotest.New(t)
	_, err := mirror.Repair(p.ctx, p.r, other.Backend(), mirror.RepairOptions{})
	if !errors.Is(err, repo.ErrOtherRepository) {
		t.Errorf("another repository: %v, want ErrOtherRepository", err)
	}
	_, err = mirror.Repair(p.ctx, p.r, backend.OpenMem(), mirror.RepairOptions{})
	if !errors.Is(err, mirror.ErrNotReplica) {
		t.Errorf("an empty store: %v, want ErrNotReplica", err)
	}
}
