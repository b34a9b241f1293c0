package fault_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/backend/fault"
	"github.com/strata-backup/strata/backend/s3test"
)

// proxiedS3 starts a proxy to the test S3 server and opens a fresh bucket
// through it; both close with the test.
func proxiedS3(t *testing.T) (*fault.Proxy, backend.Backend) {
	t.Helper()
	s3test.Require(t, s3srvErr)
	p, err := fault.NewProxy(strings.TrimPrefix(s3srv.Endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	u, err := url.Parse(s3srv.URL(s3srv.FreshBucket("proxy"), ""))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("endpoint", "http://"+p.Addr())
	u.RawQuery = q.Encode()
	be, err := backend.Open(t.Context(), u.String())
	if err != nil {
		t.Fatalf("open through the proxy: %v", err)
	}
	t.Cleanup(func() { be.Close() })
	return p, be
}

func TestProxyS3CutHeal(t *testing.T) {
	p, be := proxiedS3(t)
	ctx := t.Context()
	if err := be.Save(ctx, "data/a", []byte("before")); err != nil {
		t.Fatalf("save through the proxy: %v", err)
	}

	// The SDK retries a reset connection itself for seconds; bound it.
	p.Cut()
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := be.Save(cctx, "data/b", []byte("during"))
	if err == nil {
		t.Fatal("save while cut succeeded")
	}
	if cctx.Err() == nil && !backend.IsTransient(err) {
		t.Errorf("save while cut: %v is not transient", err)
	}
	t.Logf("save failed after %v: %v", time.Since(start), err)
	if _, err := backend.LoadAll(cctx, be, "data/a"); err == nil {
		t.Error("load while cut succeeded")
	} else {
		t.Logf("load failed after %v: %v", time.Since(start), err)
	}
	t.Logf("cut failures took %v", time.Since(start))

	p.Heal()
	if err := be.Save(ctx, "data/b", []byte("after")); err != nil {
		t.Fatalf("save after heal: %v", err)
	}
	if got, err := backend.LoadAll(ctx, be, "data/a"); err != nil || string(got) != "before" {
		t.Fatalf("load after heal: %q, %v", got, err)
	}
}

// A stalled proxy hangs calls; Retry's attempt timeout turns the stall into
// retries, and a heal lets the call through.
func TestProxyS3StallRetry(t *testing.T) {
	p, raw := proxiedS3(t)
	ctx := t.Context()
	be := backend.Retry(raw, backend.RetryOptions{Attempts: 20, Base: 20 * time.Millisecond, Max: 100 * time.Millisecond, AttemptTimeout: 300 * time.Millisecond})
	p.Stall()
	time.AfterFunc(700*time.Millisecond, p.Heal)
	start := time.Now()
	if err := be.Save(ctx, "data/s", []byte("stalled")); err != nil {
		t.Fatalf("save across a stall: %v", err)
	}
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("save finished after %v, during the stall", d)
	}
}
