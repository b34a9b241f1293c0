package backend_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/backend/s3test"
)

func TestIsLocal(t *testing.T) {
	tests := []struct {
		location string
		want     bool
	}{
		{"/srv/backup", true},
		{"relative/repo", true},
		{"./s3:bucket", true},
		{`C:\backup`, true},
		{"file:///srv/backup", true},
		{"FILE:///srv/backup", true},
		{"mem://", false},
		{"s3://bucket/prefix?region=us-east-1", false},
		{"gs://bucket", false},
		{"azblob://container/prefix", false},
		{"ftp://host/x", false},
	}
	for _, tt := range tests {
		if got := backend.IsLocal(tt.location); got != tt.want {
			t.Errorf("IsLocal(%q) = %v, want %v", tt.location, got, tt.want)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	for _, location := range []string{
		"",
		"ftp://host/x",
		"http://127.0.0.1:1/x",
		"mem://bucket/../x",
		"mem://bucket/a//b",
		"mem://bucket/a/./b",
		"mem://bucket/graph?prefix=other/",
		"mem://bucket?key=config",
		"mem://bucket?bogus=1",
		"file://relative/path",
		"file:///srv/backup?x=1",
		"s3://bucket/p?region=us-east-1&endpoint=http://127.0.0.1:1&use_path_style=true&bogus=1",
	} {
		if b, err := backend.Open(t.Context(), location); err == nil {
			_ = b.Close()
			t.Errorf("Open(%q) succeeded", location)
		}
	}
}

func TestOpenPrefixNormalised(t *testing.T) {
	tests := []struct{ location, want string }{
		{"mem://", "mem://"},
		{"mem://bucket", "mem://bucket/"},
		{"mem://bucket/graph", "mem://bucket/graph/"},
		{"mem://bucket/graph/", "mem://bucket/graph/"},
		{"mem://bucket/graph/prod", "mem://bucket/graph/prod/"},
	}
	for _, tt := range tests {
		b := mustOpen(t, tt.location)
		if got := backend.Location(b); got != tt.want {
			t.Errorf("Location of %q = %q, want %q", tt.location, got, tt.want)
		}
		if got := backend.Connections(b, 0); got != 4 {
			t.Errorf("Connections of %q = %d, want 4", tt.location, got)
		}
		_ = b.Close()
	}
}

// TestS3PrefixIsolation: prefix "graph" is the directory "graph/", so it
// never sees "graph2/" in the same bucket, and both live where expected.
func TestS3PrefixIsolation(t *testing.T) {
	requireS3(t)
	bucket := s3srv.FreshBucket("isolation")
	graph := mustOpen(t, s3srv.URL(bucket, "graph"))
	graphSlash := mustOpen(t, s3srv.URL(bucket, "graph/"))
	graph2 := mustOpen(t, s3srv.URL(bucket, "graph2"))
	raw := mustOpen(t, s3srv.URL(bucket, ""))
	for _, b := range []backend.Backend{graph, graphSlash, graph2, raw} {
		t.Cleanup(func() { _ = b.Close() })
	}
	ctx := t.Context()
	if err := graph.Save(ctx, "snapshots/in-graph", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := graph2.Save(ctx, "snapshots/in-graph2", []byte("2")); err != nil {
		t.Fatal(err)
	}
	keys := func(b backend.Backend) []string {
		var ks []string
		if err := b.List(ctx, "", func(oi backend.ObjectInfo) error {
			ks = append(ks, oi.Key)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(ks)
		return ks
	}
	if got := keys(graph); !slices.Equal(got, []string{"snapshots/in-graph"}) {
		t.Errorf("graph lists %q", got)
	}
	if got := keys(graphSlash); !slices.Equal(got, []string{"snapshots/in-graph"}) {
		t.Errorf("graph/ lists %q", got)
	}
	if got := keys(raw); !slices.Equal(got, []string{"graph/snapshots/in-graph", "graph2/snapshots/in-graph2"}) {
		t.Errorf("bucket root lists %q", got)
	}
	if _, err := graph.Stat(ctx, "snapshots/in-graph2"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("graph sees graph2's object: %v", err)
	}
	if got := backend.Connections(graph, 0); got != 8 {
		t.Errorf("Connections = %d, want 8", got)
	}
}

func TestS3OpenMissingBucket(t *testing.T) {
	requireS3(t)
	_, err := backend.Open(t.Context(), s3srv.URL("no-such-bucket", "graph"))
	if !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("open of a missing bucket: got %v, want ErrNotFound", err)
	}
}

func TestS3LocationHidesSecrets(t *testing.T) {
	requireS3(t)
	bucket := s3srv.FreshBucket("secrets")
	// Credentials in the endpoint's user info must not reach messages.
	u := strings.Replace(s3srv.URL(bucket, "graph"), "127.0.0.1", "user:hunter2@127.0.0.1", 1)
	b, err := backend.Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	loc := backend.Location(b)
	if strings.Contains(loc, "hunter2") || strings.Contains(loc, "user") {
		t.Errorf("Location %q leaks credentials", loc)
	}
	if !strings.HasPrefix(loc, "s3://"+bucket+"/graph/") || !strings.Contains(loc, "127.0.0.1") {
		t.Errorf("Location %q lost the bucket, prefix or endpoint", loc)
	}
}

func requireS3(t *testing.T) {
	t.Helper()
	if s3srv == nil && s3srvErr == nil {
		t.Fatal("S3 test server not started")
	}
	s3test.Require(t, s3srvErr)
}
