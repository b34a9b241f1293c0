package main

// Chaos tests (SPEC section 7's disk-full and partition drills, at the
// library level): a store that fills up or is cut off in the middle of a
// backup, an oplog push or a mirror makes the operation fail cleanly, leaves
// a repository check passes, and the next run completes.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/backend/fault"
	"github.com/strata-backup/strata/mirror"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
	"github.com/strata-backup/strata/snapshot"
	"github.com/strata-backup/strata/verify"
)

// chaosRepo initialises a repository in a local directory and returns it
// with its (healthy) store.
func chaosRepo(t *testing.T) (*repo.Repository, backend.Backend) {
	t.Helper()
	be, err := backend.Create(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return repotest.NewOn(t, be), be
}

// chaosData writes files random bytes (incompressible, so packs fill).
func chaosData(t *testing.T, files, size int, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	rnd := rand.NewChaCha8([32]byte{byte(seed)})
	for i := range files {
		buf := make([]byte, size)
		_, _ = rnd.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), buf, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// chaosCheck runs check on a fresh view of r's healthy store.
func chaosCheck(t *testing.T, r *repo.Repository) {
	t.Helper()
	res, err := verify.Check(t.Context(), repotest.Reopen(t, r), verify.CheckOptions{ReadData: true, TmpDir: t.TempDir()})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if !res.OK || len(res.Problems) > 0 {
		t.Fatalf("check found damage: %+v", res.Problems)
	}
}

// chaosBackupRestore backs src up into r, restores it and compares.
func chaosBackupRestore(t *testing.T, r *repo.Repository, src string) {
	t.Helper()
	ctx := t.Context()
	res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}, Host: "chaos"})
	if err != nil {
		t.Fatalf("backup on the healthy store: %v", err)
	}
	target := t.TempDir()
	if _, err := snapshot.Restore(ctx, r, res.Snapshot, snapshot.RestoreOptions{Target: target}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		want, _ := os.ReadFile(filepath.Join(src, e.Name()))
		var got []byte
		_ = filepath.WalkDir(target, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() == e.Name() {
				got, _ = os.ReadFile(p)
			}
			return nil
		})
		if !bytes.Equal(got, want) {
			t.Fatalf("restored %s differs (%d bytes, want %d)", e.Name(), len(got), len(want))
		}
	}
}

func TestChaosDiskFullBackup(t *testing.T) {
	r, be := chaosRepo(t)
	src := chaosData(t, 12, 256<<10, 1) // 3 MiB, a few packs
	full := fault.Full(be, 1<<20)
	_, err := snapshot.Backup(t.Context(), repotest.Open(t, full), snapshot.BackupOptions{Paths: []string{src}, Host: "chaos"})
	if !errors.Is(err, backend.ErrNoSpace) {
		t.Fatalf("backup into a full store: %v, want ErrNoSpace", err)
	}
	if full.Used() == 0 {
		t.Error("nothing was saved before the store filled up")
	}
	if sn, err := snapshot.List(t.Context(), repotest.Reopen(t, r)); err != nil || len(sn) != 0 {
		t.Errorf("after the failed backup: %d snapshots, %v", len(sn), err)
	}
	chaosCheck(t, r)
	chaosBackupRestore(t, r, src)
	chaosCheck(t, r)
}

func chaosOplog(from, to int) string {
	var sb strings.Builder
	for lsn := from; lsn <= to; lsn++ {
		fmt.Fprintf(&sb, `{"lsn":%d,"ts":"2026-01-01T%02d:%02d:%02dZ","tier":"w","op":"delete","kind":"node","id":"node-%d-%x"}`+"\n",
			lsn, lsn/3600, lsn/60%60, lsn%60, lsn, lsn*7919)
	}
	return sb.String()
}

func TestChaosDiskFullOplogPush(t *testing.T) {
	ctx := t.Context()
	r, be := chaosRepo(t)
	full := fault.Full(be, -1)
	const n = 3000
	var sealed []oplog.SealedSegment
	opts := oplog.PushOptions{SegmentSize: 8 << 10, Heartbeat: -1, OnSealed: func(s oplog.SealedSegment) {
		sealed = append(sealed, s)
		if len(sealed) == 3 {
			full.SetLimit(full.Used() + 4<<10) // the disk fills up now
		}
	}}
	res, err := oplog.Push(ctx, repotest.Open(t, full), oplog.NewLineReader(strings.NewReader(chaosOplog(1, n))), opts)
	if !errors.Is(err, backend.ErrNoSpace) {
		t.Fatalf("push into a full store: %v (%+v), want ErrNoSpace", err, res)
	}
	if len(sealed) < 3 || res.LastLSN == 0 || res.LastLSN >= n {
		t.Fatalf("%d segments acknowledged, last lsn %d", len(sealed), res.LastLSN)
	}
	// Every acknowledged segment is there and intact.
	acked := uint64(0)
	for _, s := range sealed {
		if _, err := backend.LoadAll(ctx, be, s.Key); err != nil {
			t.Errorf("acknowledged segment %s: %v", s.Key, err)
		}
		acked = max(acked, s.LastLSN)
	}
	if res.LastLSN < acked {
		t.Errorf("push reports last lsn %d, below the acknowledged %d", res.LastLSN, acked)
	}
	chaosCheck(t, r)

	// The next push, on the healthy store, resumes from what is stored.
	sealed = nil
	opts.OnSealed = nil
	res2, err := oplog.Push(ctx, repotest.Reopen(t, r), oplog.NewLineReader(strings.NewReader(chaosOplog(1, n))), opts)
	if err != nil {
		t.Fatalf("push after the disk-full failure: %v", err)
	}
	if res2.LastLSN != n || uint64(res2.Skipped) < acked || res2.Records+res2.Skipped != n {
		t.Errorf("resumed push: %+v, want last lsn %d with at least %d skipped", res2, n, acked)
	}
	chaosCheck(t, r)
}

// cutOnSave makes a FlakyStore that cuts itself off at the nth save under
// prefix, and heals after heal (0: never).
func cutOnSave(be backend.Backend, prefix string, nth int, heal time.Duration) *fault.FlakyStore {
	var f *fault.FlakyStore
	var mu sync.Mutex
	saves := 0
	f = fault.Flaky(be, fault.FlakyOptions{OnCall: func(op fault.Op, key string) {
		if op != fault.OpSave || !strings.HasPrefix(key, prefix) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		saves++
		if saves == nth {
			f.Cut()
			if heal > 0 {
				time.AfterFunc(heal, f.Heal)
			}
		}
	}})
	return f
}

// fastRetry backs off deterministically in tens of milliseconds.
func fastRetry(be backend.Backend, attempts int) backend.Backend {
	return backend.Retry(be, backend.RetryOptions{Attempts: attempts, Base: 20 * time.Millisecond, Max: 200 * time.Millisecond,
		Jitter: func() float64 { return 0.5 }})
}

func TestChaosPartitionBackup(t *testing.T) {
	src := chaosData(t, 12, 256<<10, 2)
	t.Run("heals", func(t *testing.T) {
		r, be := chaosRepo(t)
		f := cutOnSave(be, repo.PrefixData+"/", 2, 150*time.Millisecond)
		res, err := snapshot.Backup(t.Context(), repotest.Open(t, fastRetry(f, 10)), snapshot.BackupOptions{Paths: []string{src}, Host: "chaos"})
		if err != nil {
			t.Fatalf("backup across a short partition: %v", err)
		}
		if f.Faults() == 0 {
			t.Fatal("the partition never happened")
		}
		t.Logf("%d calls failed during the partition; snapshot %s", f.Faults(), res.ID)
		chaosCheck(t, r)
	})
	t.Run("permanent", func(t *testing.T) {
		r, be := chaosRepo(t)
		f := cutOnSave(be, repo.PrefixData+"/", 2, 0)
		_, err := snapshot.Backup(t.Context(), repotest.Open(t, fastRetry(f, 3)), snapshot.BackupOptions{Paths: []string{src}, Host: "chaos"})
		if !errors.Is(err, fault.ErrInjected) {
			t.Fatalf("backup across a permanent partition: %v, want the injected failure", err)
		}
		f.Heal()
		chaosCheck(t, r)
		chaosBackupRestore(t, r, src)
	})
}

func TestChaosPartitionMirror(t *testing.T) {
	ctx := t.Context()
	r, srcBE := chaosRepo(t)
	chaosBackupRestore(t, r, chaosData(t, 8, 256<<10, 3))
	dstBE, err := backend.Create(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := cutOnSave(dstBE, repo.PrefixData+"/", 2, 0)
	if _, err := mirror.New(r, f, mirror.Options{}).Run(ctx); !errors.Is(err, fault.ErrInjected) {
		t.Fatalf("mirror across a partition: %v, want the injected failure", err)
	}
	f.Heal()
	if _, err := mirror.New(r, dstBE, mirror.Options{}).Run(ctx); err != nil {
		t.Fatalf("mirror after the partition: %v", err)
	}
	// Byte-identical: every object of the primary but leases.
	objects := func(be backend.Backend) map[string][]byte {
		m := map[string][]byte{}
		err := be.List(ctx, "", func(fi backend.ObjectInfo) error {
			if strings.HasPrefix(fi.Key, repo.PrefixLocks+"/") {
				return nil
			}
			data, err := backend.LoadAll(ctx, be, fi.Key)
			m[fi.Key] = data
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	want, got := objects(srcBE), objects(dstBE)
	if len(got) != len(want) {
		t.Errorf("mirror holds %d objects, primary %d", len(got), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Errorf("mirror's %s differs from the primary's", k)
		}
	}
	chaosCheck(t, r)
}
