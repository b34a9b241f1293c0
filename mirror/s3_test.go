package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/backend/s3test"
	"github.com/strata-backup/strata/mirror"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
)

// s3Client returns an SDK client for srv (through a scratch bucket).
func s3Client(t *testing.T, srv *s3test.Server) *s3.Client {
	t.Helper()
	b, err := blob.OpenBucket(context.Background(), srv.URL(srv.FreshBucket("scratch"), ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var c *s3.Client
	if !b.As(&c) {
		t.Fatal("no S3 client")
	}
	return c
}

// TestMirrorS3 mirrors a local repository to S3, loses the primary, and
// restores from the bucket alone; an interrupted mirror resumes.
func TestMirrorS3(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	be, err := backend.Create(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := newPrimary(t, be)
	loc := srv.URL(srv.FreshBucket("mirror"), "graph")
	s3be, err := backend.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer s3be.Close()
	dst := &savingBackend{Backend: s3be, limit: 7}
	if _, err := mirror.New(p.r, dst, mirror.Options{}).Run(ctx); err == nil {
		t.Fatal("the interrupted run succeeded")
	}
	dst.limit = -1
	res := run(t, p, dst, mirror.Options{})
	// Up to 7 saves got through before the store "went away" (one in
	// flight may have been cancelled).
	if res.PresentObjects == 0 || res.PresentObjects > 7 || res.PresentObjects+res.CopiedObjects != len(contents(t, p.be)) || len(res.Failed) != 0 {
		t.Errorf("resumed: %+v", res)
	}
	assertReplica(t, p.be, s3be)
	m := repotest.Open(t, s3be)
	mustCheck(t, m)
	restoreAll(t, m, p.src)
}

// TestMirrorObjectLock: versitygw implements Object Lock for buckets created
// with it; mirror writes carry the retention, and the mirror's deletions of
// locked objects wait (warned, pending) instead of failing the run.
func TestMirrorObjectLock(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	c := s3Client(t, srv)
	name := fmt.Sprintf("locked-%d", time.Now().UnixNano()%1e6)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("create a bucket with Object Lock: %v", err)
	}
	loc := srv.URL(name, "graph")
	s3be, err := backend.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer s3be.Close()
	if _, err := mirror.WithObjectLock(ctx, loc, s3be, mirror.ObjectLock{Days: 2, Mode: "sideways"}); err == nil {
		t.Error("an unknown mode was accepted")
	}
	dst, err := mirror.WithObjectLock(ctx, loc, s3be, mirror.ObjectLock{Days: 2, Mode: mirror.LockGovernance})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()

	p := newPrimary(t, backend.OpenMem())
	start := time.Now()
	run(t, p, dst, mirror.Options{DeleteDelay: -1})
	assertReplica(t, p.be, s3be)
	for _, key := range []string{"config", p.keys("data/")[0], p.segs[0]} {
		out, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(name), Key: aws.String("graph/" + key)})
		if err != nil {
			t.Fatalf("retention of %s: %v", key, err)
		}
		until := *out.Retention.RetainUntilDate
		if string(out.Retention.Mode) != "GOVERNANCE" || until.Before(start.Add(47*time.Hour)) || until.After(time.Now().Add(49*time.Hour)) {
			t.Errorf("retention of %s: %s until %s", key, out.Retention.Mode, until)
		}
	}
	restoreAll(t, repotest.Open(t, s3be), p.src)

	// A due removal of a locked object: refused by the store, kept
	// pending, warned about; the run itself succeeds.
	gone := p.keys("snapshots/")[0]
	p.remove(repo.DeletionForget, time.Time{}, gone)
	w := &warnings{}
	res, err := mirror.New(p.r, dst, mirror.Options{DeleteDelay: -1, Progress: w}).Run(ctx)
	if err != nil || res.DeletedObjects != 0 || res.PendingDeletions != 1 {
		t.Fatalf("removal of a locked object: %+v, %v", res, err)
	}
	if _, err := s3be.Stat(ctx, gone); err != nil {
		t.Errorf("the locked snapshot is gone: %v", err)
	}
	if len(w.keys) != 1 || w.keys[0] != gone {
		t.Errorf("warnings for %v, want %s", w.keys, gone)
	}

	// A bucket without Object Lock is refused up front.
	plain := srv.URL(srv.FreshBucket("plain"), "graph")
	pbe, err := backend.Open(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	defer pbe.Close()
	if _, err := mirror.WithObjectLock(ctx, plain, pbe, mirror.ObjectLock{Days: 1}); err == nil || !strings.Contains(err.Error(), "Object Lock") {
		t.Errorf("object lock on a bucket without it: %v", err)
	}
	if _, err := mirror.WithObjectLock(ctx, t.TempDir(), pbe, mirror.ObjectLock{Days: 1}); err == nil {
		t.Error("object lock on a local directory was accepted")
	}
}

type warnings struct {
	mirror.NoProgress
	mu   sync.Mutex
	keys []string
}

func (w *warnings) Warn(key string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !errors.Is(err, context.Canceled) {
		w.keys = append(w.keys, key)
	}
}
