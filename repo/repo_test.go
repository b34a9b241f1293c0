package repo_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
)

func randomBlob(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

// saveBlobs stores blobs in one writer run and returns their ids.
func saveBlobs(t *testing.T, r *repo.Repository, opts repo.WriterOptions, blobs ...[]byte) ([]chunk.ID, repo.WriteStats) {
	t.Helper()
	ids := make([]chunk.ID, len(blobs))
	st, err := r.WithWriter(context.Background(), opts, func(ctx context.Context, w *repo.Writer) error {
		for i, b := range blobs {
			ids[i] = r.BlobID(b)
			if _, err := w.SaveBlob(ctx, index.DataBlob, ids[i], bytes.Clone(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("write blobs: %v", err)
	}
	return ids, st
}

// onBackends runs fn on a repository in memory (packs built in memory) and
// on a local directory (packs spooled to a temporary file and streamed).
func onBackends(t *testing.T, fn func(t *testing.T, r *repo.Repository)) {
	t.Run("mem", func(t *testing.T) { fn(t, repotest.New(t)) })
	t.Run("local", func(t *testing.T) {
		spool := t.TempDir()
		t.Setenv("TMPDIR", spool)
		be, err := backend.Create(context.Background(), filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := be.(backend.Streamer); !ok {
			t.Fatal("the local backend does not stream: packs would be built in memory, untested here")
		}
		fn(t, repotest.NewOn(t, be))
		// Spool files are unlinked when made: none may be left.
		if left, _ := os.ReadDir(spool); len(left) > 0 {
			t.Errorf("%d files left in the spool directory", len(left))
		}
	})
}

func TestBlobRoundTripAndDedup(t *testing.T) { onBackends(t, testBlobRoundTripAndDedup) }

func testBlobRoundTripAndDedup(t *testing.T, r *repo.Repository) {
	ctx := context.Background()
	compressible := bytes.Repeat([]byte("graph node "), 50000)
	// More than a 1 MiB pack's worth, so packs fill and rotate.
	blobs := [][]byte{randomBlob(1, 300000), compressible, {}, randomBlob(2, 700000), randomBlob(1, 300000),
		randomBlob(3, 900000), randomBlob(6, 1500000)}
	ids, st := saveBlobs(t, r, repo.WriterOptions{}, blobs...)
	if st.BlobsNew != 6 || st.BlobsKnown != 1 || st.Packs < 2 {
		t.Errorf("first run: new=%d known=%d in %d packs, want 6 new and 1 known (a duplicate within the run) in at least 2", st.BlobsNew, st.BlobsKnown, st.Packs)
	}
	// What the writer says it stored is what the store holds: every pack,
	// header and trailer included, and the index.
	var held int64
	for _, prefix := range []string{"data/", "index/"} {
		if err := r.Backend().List(ctx, prefix, func(oi backend.ObjectInfo) error { held += oi.Size; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if st.BytesStored != held {
		t.Errorf("writer reports %d bytes stored, the store holds %d in packs and index objects", st.BytesStored, held)
	}
	// Each pack's own header (its trailer, read from the store) agrees
	// with the index.
	for i, id := range ids {
		locs, err := r.LookupBlob(ctx, id)
		if err != nil || len(locs) != 1 {
			t.Fatalf("lookup blob %d: %v %v", i, locs, err)
		}
		hdr, _, err := r.LoadPackHeader(ctx, locs[0].Pack)
		if err != nil {
			t.Fatalf("blob %d: pack header: %v", i, err)
		}
		if !slices.Contains(hdr, locs[0].Blob) {
			t.Errorf("blob %d: pack header %+v lacks the indexed %+v", i, hdr, locs[0].Blob)
		}
	}
	var raw int64
	for _, b := range blobs {
		raw += int64(len(b))
	}
	raw -= int64(len(blobs[4])) // the duplicate
	if st.BytesStored >= raw-int64(len(compressible))/2 {
		t.Errorf("stored %d bytes: compressible blob was not compressed", st.BytesStored)
	}
	// A second process sees everything through its own cache.
	r2 := repotest.Reopen(t, r)
	for i, id := range ids {
		got, err := r2.LoadBlob(ctx, id, nil)
		if err != nil {
			t.Fatalf("load blob %d: %v", i, err)
		}
		if !bytes.Equal(got, blobs[i]) {
			t.Fatalf("blob %d: content differs", i)
		}
	}
	_, st2 := saveBlobs(t, r2, repo.WriterOptions{}, blobs...)
	if st2.BlobsNew != 0 || st2.BytesAdded != 0 {
		t.Errorf("second run stored %d blobs (%d bytes); everything was known", st2.BlobsNew, st2.BytesAdded)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	if _, err := repo.Open(ctx, r.Backend(), "wrong", repo.Options{NoCache: true}); !errors.Is(err, repo.ErrWrongPassword) {
		t.Errorf("wrong password: got %v, want ErrWrongPassword", err)
	}
	if _, err := repo.Open(ctx, backend.OpenMem(), "x", repo.Options{NoCache: true}); !errors.Is(err, repo.ErrNoRepository) {
		t.Errorf("empty store: got %v, want ErrNoRepository", err)
	}
	if _, err := repo.Init(ctx, r.Backend(), "x", repo.InitOptions{}, repo.Options{}); !errors.Is(err, repo.ErrAlreadyInitialized) {
		t.Errorf("second init: got %v, want ErrAlreadyInitialized", err)
	}
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	id2, err := r.AddKey(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := repo.Open(ctx, r.Backend(), "second", repo.Options{NoCache: true})
	if err != nil {
		t.Fatalf("open with added key: %v", err)
	}
	if r2.KeyID() != id2 {
		t.Errorf("opened with key %s, want %s", r2.KeyID().Short(), id2.Short())
	}
	if err := r2.RemoveKey(ctx, id2); err == nil {
		t.Error("removing the key in use succeeded")
	}
	if err := r2.RemoveKey(ctx, r.KeyID()); err != nil {
		t.Fatalf("remove first key: %v", err)
	}
	if _, err := repo.Open(ctx, r.Backend(), repotest.Password, repo.Options{NoCache: true}); !errors.Is(err, repo.ErrWrongPassword) {
		t.Errorf("removed key still opens: %v", err)
	}
	keys, err := r2.Keys(ctx)
	if err != nil || len(keys) != 1 || !keys[0].Current {
		t.Errorf("keys after removal: %+v, %v", keys, err)
	}
	var n int
	_ = r2.List(ctx, repo.PrefixDeletions, func(chunk.ID, int64) error { n++; return nil })
	if n != 1 {
		t.Errorf("key removal left %d deletion records, want 1", n)
	}
	if _, err := r2.ChangePassword(ctx, "third"); err != nil {
		t.Fatalf("change password: %v", err)
	}
	if _, err := repo.Open(ctx, r.Backend(), "second", repo.Options{NoCache: true}); !errors.Is(err, repo.ErrWrongPassword) {
		t.Errorf("old password still opens after passwd: %v", err)
	}
	if _, err := repo.Open(ctx, r.Backend(), "third", repo.Options{NoCache: true}); err != nil {
		t.Errorf("new password does not open: %v", err)
	}
}

func TestCorruptPackIsNamed(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	ids, _ := saveBlobs(t, r, repo.WriterOptions{}, randomBlob(3, 200000))
	var packKey string
	_ = r.Backend().List(ctx, "data/", func(fi backend.ObjectInfo) error { packKey = fi.Key; return nil })
	data, _ := backend.LoadAll(ctx, r.Backend(), packKey)
	data[100] ^= 0xff
	_ = r.Backend().Remove(ctx, packKey)
	if err := r.Backend().Save(ctx, packKey, data); err != nil {
		t.Fatal(err)
	}
	_, err := r.LoadBlob(ctx, ids[0], nil)
	if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), packKey) {
		t.Errorf("load from damaged pack: got %v, want ErrCorrupt naming %s", err, packKey)
	}
	if _, _, err := r.LoadPackHeader(ctx, chunk.ObjectID(nil)); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("header of missing pack: %v", err)
	}
}

func TestPackHeaderAgreesWithIndex(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	ids, _ := saveBlobs(t, r, repo.WriterOptions{Workers: 1}, randomBlob(4, 100000), randomBlob(5, 50000))
	locs, err := r.LookupBlob(ctx, ids[1])
	if err != nil || len(locs) != 1 {
		t.Fatalf("lookup: %v %v", locs, err)
	}
	blobs, _, err := r.LoadPackHeader(ctx, locs[0].Pack)
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 2 || blobs[1].ID != ids[1] || blobs[1] != locs[0].Blob {
		t.Errorf("header %+v does not agree with index %+v", blobs, locs[0])
	}
}

// TestMarkedPackNotReused covers SPEC section 8 for writers: a blob whose
// pack is marked is stored again, both when the mark predates the run and
// when it appears during the run (the re-check before commit).
func TestMarkedPackNotReused(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	blob := randomBlob(6, 100000)
	first, _ := saveBlobs(t, r, repo.WriterOptions{}, blob)
	locs, _ := r.LookupBlob(ctx, first[0])
	oldPack := repo.ObjectKey(repo.PrefixData, locs[0].Pack)

	// Marked during the run: the writer reuses the blob, then finds the
	// mark before commit and copies the blob into a new pack.
	_, st := saveBlobs(t, r, repo.WriterOptions{BeforeCommit: func(ctx context.Context) error {
		_, err := r.SaveDeletion(ctx, repo.Deletion{Kind: repo.DeletionPruneMark, Reason: "test", Marked: []string{oldPack}})
		return err
	}}, blob)
	if st.Restored != 1 {
		t.Fatalf("blob of a pack marked mid-run: restored %d, want 1", st.Restored)
	}
	locs, _ = r.LookupBlob(ctx, first[0])
	if len(locs) != 2 {
		t.Fatalf("after re-store the blob has %d copies, want 2", len(locs))
	}
	// Deleting the marked pack (what prune's phase two will do) loses nothing.
	if err := r.Backend().Remove(ctx, oldPack); err != nil {
		t.Fatal(err)
	}
	got, err := repotest.Reopen(t, r).LoadBlob(ctx, first[0], nil)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("blob after its marked pack was deleted: %v", err)
	}

	// Marked before the run: not reused at all.
	r3 := repotest.Reopen(t, r)
	locs, _ = r3.LookupBlob(ctx, first[0])
	var live string
	for _, l := range locs {
		if k := repo.ObjectKey(repo.PrefixData, l.Pack); k != oldPack {
			live = k
		}
	}
	if _, err := r3.SaveDeletion(ctx, repo.Deletion{Kind: repo.DeletionPruneMark, Reason: "test", Marked: []string{live}}); err != nil {
		t.Fatal(err)
	}
	_, st = saveBlobs(t, r3, repo.WriterOptions{}, blob)
	if st.BlobsNew != 1 {
		t.Errorf("blob in a pack marked before the run: new=%d, want 1 (stored again)", st.BlobsNew)
	}
}

func TestLeases(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	a, err := r.AcquireLease(ctx, repo.LeasePrune, "", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AcquireLease(ctx, repo.LeasePrune, "", true, 0); !errors.Is(err, repo.ErrLocked) {
		t.Errorf("second exclusive lease: %v, want ErrLocked", err)
	}
	b, err := r.AcquireLease(ctx, repo.LeaseBackup, "", false, 0)
	if err != nil {
		t.Errorf("shared lease beside a prune lease: %v", err)
	} else {
		b.Release(ctx)
	}
	a.Release(ctx)
	c, err := r.AcquireLease(ctx, repo.LeasePrune, "", true, 0)
	if err != nil {
		t.Errorf("exclusive lease after release: %v", err)
	} else {
		c.Release(ctx)
	}
	leases, _ := r.Leases(ctx)
	if len(leases) != 0 {
		t.Errorf("%d leases left after release", len(leases))
	}
}
