package strata_test

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/strata-backup/strata"

// layers lists strata's packages from the bottom up. A package may import
// only packages of strictly lower layers: cmd → use cases → repo → index →
// chunk, with backend under repo. A new package must be placed here.
var layers = [][]string{
	{"chunk", "backend", "graphgen"},
	{"index", "backend/backendtest", "backend/s3test", "backend/fault"},
	{"repo"},
	{"repo/repotest"},
	{"graph"},
	{"oplog"},
	{"oplog/oplogtest"},
	{"snapshot"},
	{"prune", "verify"},
	{"mirror"},
	{"drill"},
	{"cmd/strata", "tools/gengraph", "tools/genoplog", "e2e/ladybug", "e2e/readme"},
}

func TestLayering(t *testing.T) {
	rank := map[string]int{}
	for i, l := range layers {
		for _, p := range l {
			rank[p] = i
		}
	}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin" || strings.HasPrefix(p, "strata-demo") || strings.HasPrefix(p, "bench/work")) {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(p, 0)
		if err != nil {
			return nil // no buildable non-test Go files here
		}
		name := filepath.ToSlash(p)
		r, ok := rank[name]
		if !ok {
			if name == "." || name == "bench" {
				return nil
			}
			t.Errorf("package %s is not placed in a layer (layers_test.go)", name)
			return nil
		}
		for _, imp := range pkg.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			dr, ok := rank[dep]
			if !ok {
				t.Errorf("%s imports %s, which is not placed in a layer", name, dep)
			} else if dr >= r {
				t.Errorf("%s (layer %d) imports %s (layer %d): dependencies must point down", name, r, dep, dr)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
