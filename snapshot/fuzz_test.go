package snapshot_test

import (
	"encoding/json"
	"testing"

	"github.com/strata-backup/strata/snapshot"
)

// FuzzDecodeTree: no input may panic, and an accepted tree has only names
// that are safe to join to a restore target and re-encodes to a tree that
// decodes the same.
func FuzzDecodeTree(f *testing.F) {
	f.Add([]byte(`{"nodes":[{"name":"a","type":"file","mode":420,"mtime":"2026-01-01T00:00:00Z","size":3,"content":["` +
		"0000000000000000000000000000000000000000000000000000000000000000" + `"]},{"name":"b","type":"dir"}]}`))
	f.Add([]byte(`{"nodes":[{"name":"..","type":"dir"}]}`))
	f.Add([]byte(`{"nodes":[{"name":"b","type":"file"},{"name":"a","type":"file"}]}`))
	f.Add([]byte(`{"nodes":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := snapshot.DecodeTree(b)
		if err != nil {
			return
		}
		for _, n := range tr.Nodes {
			if n.Name == ".." || n.Name == "." || n.Name == "" {
				t.Fatalf("unsafe name %q accepted", n.Name)
			}
			for _, c := range n.Name {
				if c == '/' || c == 0 {
					t.Fatalf("unsafe name %q accepted", n.Name)
				}
			}
		}
		again, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := snapshot.DecodeTree(again); err != nil {
			t.Fatalf("re-encoded tree rejected: %v", err)
		}
	})
}

func FuzzPatterns(f *testing.F) {
	f.Add("*.csv", "/a/b.csv")
	f.Add("/a/**/b", "/a/x/y/b")
	f.Add("[", "/x")
	f.Fuzz(func(t *testing.T, pat, p string) {
		ps := snapshot.Patterns{pat}
		if ps.Validate() != nil {
			return
		}
		_ = ps.Match(p)
		_ = ps.MatchOrParent(p)
	})
}
