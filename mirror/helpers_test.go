package mirror_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/mirror"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/oplog/oplogtest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
	"github.com/strata-backup/strata/snapshot"
	"github.com/strata-backup/strata/verify"
)

// primary is a repository with every kind of object: packs, index objects,
// snapshots, log segments and a heartbeat, a deletion record, policy,
// verification and drill records, a held lease and a stray key.
type primary struct {
	t     *testing.T
	ctx   context.Context
	r     *repo.Repository
	be    backend.Backend
	src   string // the backed-up directory
	snaps []chunk.ID
	segs  []string
	lease *repo.Lease
}

func newPrimary(t *testing.T, be backend.Backend) *primary {
	t.Helper()
	p := &primary{t: t, ctx: context.Background(), r: repotest.NewOn(t, be), be: be, src: t.TempDir()}
	repotest.WriteFile(t, filepath.Join(p.src, "a.txt"), []byte("alpha\n"))
	repotest.WriteFile(t, filepath.Join(p.src, "d", "c.txt"), []byte("gamma\n"))
	// Incompressible and above repotest's 1 MiB packs: several packs.
	repotest.WriteFile(t, filepath.Join(p.src, "big.bin"), repotest.RandomBytes(1500<<10, 1))
	p.backup()
	repotest.WriteFile(t, filepath.Join(p.src, "a.txt"), []byte("alpha, changed\n"))
	p.backup()
	p.segs = oplogtest.Segments(t, p.r, 1, 3, 3, 1, false)
	if _, err := oplog.WriteHeartbeat(p.ctx, p.r, 1, oplog.Heartbeat{Time: time.Now(), LastLSN: 9}); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{repo.PrefixPolicy, repo.PrefixVerifications, repo.PrefixDrills} {
		if _, _, err := p.r.SaveJSON(p.ctx, prefix, map[string]string{"what": prefix}); err != nil {
			t.Fatal(err)
		}
	}
	// A record that only marks: marks are never removals.
	if _, err := p.r.SaveDeletion(p.ctx, repo.Deletion{Kind: repo.DeletionPruneMark, Reason: "test", Marked: p.keys("data/")[:1]}); err != nil {
		t.Fatal(err)
	}
	lease, err := p.r.AcquireLease(p.ctx, repo.LeaseBackup, "", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.lease = lease
	t.Cleanup(func() { p.lease.Release(context.Background()) })
	if err := be.Save(p.ctx, "data/zz/not-an-object", []byte("stray")); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *primary) backup() chunk.ID {
	p.t.Helper()
	res, err := snapshot.Backup(p.ctx, p.r, snapshot.BackupOptions{Paths: []string{p.src}, Host: "h"})
	if err != nil {
		p.t.Fatalf("backup: %v", err)
	}
	p.snaps = append(p.snaps, res.ID)
	return res.ID
}

func (p *primary) keys(prefix string) []string { return listKeys(p.t, p.be, prefix) }

func listKeys(t *testing.T, be backend.Backend, prefix string) []string {
	t.Helper()
	var out []string
	if err := be.List(context.Background(), prefix, func(fi backend.ObjectInfo) error {
		out = append(out, fi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// contents returns every object of be (leases and strays excluded) with its bytes.
func contents(t *testing.T, be backend.Backend) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, k := range listKeys(t, be, "") {
		if strings.HasPrefix(k, "locks/") || strings.Contains(k, "not-an-object") {
			continue
		}
		b, err := backend.LoadAll(context.Background(), be, k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	return out
}

// assertReplica checks that dst holds exactly src's objects, byte for byte.
func assertReplica(t *testing.T, src, dst backend.Backend) {
	t.Helper()
	a, b := contents(t, src), contents(t, dst)
	for k, v := range a {
		w, ok := b[k]
		switch {
		case !ok:
			t.Errorf("%s missing on the mirror", k)
		case !bytes.Equal(v, w):
			t.Errorf("%s differs on the mirror", k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			t.Errorf("%s only on the mirror", k)
		}
	}
}

// restoreAll restores every snapshot of r and compares the newest with dir.
func restoreAll(t *testing.T, r *repo.Repository, dir string) int {
	t.Helper()
	ctx := context.Background()
	entries, err := snapshot.List(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		target := t.TempDir()
		if _, err := snapshot.RestoreSnapshot(ctx, r, e, snapshot.SnapshotRestoreOptions{RestoreOptions: snapshot.RestoreOptions{Target: target, Verify: true}}); err != nil {
			t.Fatalf("restore snapshot %s from the mirror: %v", e.ID.Short(), err)
		}
		if i == len(entries)-1 && dir != "" {
			sameTree(t, dir, filepath.Join(target, dir))
		}
	}
	return len(entries)
}

// sameTree compares the regular files below two directories.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("restored %s differs from the original (%v)", rel, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustCheck(t *testing.T, r *repo.Repository) {
	t.Helper()
	res, err := verify.Check(context.Background(), r, verify.CheckOptions{ReadData: true, TmpDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("check of the mirror found damage: %+v", res.Problems)
	}
}

func run(t *testing.T, p *primary, dst backend.Backend, opts mirror.Options) *mirror.Result {
	t.Helper()
	res, err := mirror.New(p.r, dst, opts).Run(context.Background())
	if err != nil {
		t.Fatalf("mirror: %v", err)
	}
	return res
}
