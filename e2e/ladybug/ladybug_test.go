// Package ladybug_test proves that a real graph database survives a backup
// and restore through strata: a LadybugDB database (an embedded graph
// database, a fork of Kùzu, installed from npm at the version pinned in
// package.json) is loaded, exported with EXPORT DATABASE and dumped as APOC
// JSON Lines; strata backs the export up as a files tier and the dump as a
// graph tier; after a restore the export is imported into a fresh database
// with IMPORT DATABASE, and its per-table counts and content digests must
// equal the original's, the restored graph tier must equal the dump record
// for record.
//
// It needs node and npm on PATH (it skips, saying so, when either is
// missing) and, the first time, the npm registry: `npm install` installs
// what package-lock.json pins into node_modules next to this file, and later
// runs reuse it.
package ladybug_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	npmTimeout  = 5 * time.Minute
	stepTimeout = 2 * time.Minute
	ladybugPkg  = "@ladybugdb/core"
)

func TestLadybugBackupRestore(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not on PATH: skipping the LadybugDB end-to-end test (it needs Node.js and npm to install %s)", tool, ladybugPkg)
		}
	}
	pkgDir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(pkgDir, "graphdb.mjs")

	start := time.Now()
	ensureNodeModules(t, pkgDir)
	t.Logf("npm dependencies ready in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()

	tmp := t.TempDir()
	strata := buildStrata(t, tmp)

	gdb := func(args ...string) string {
		t.Helper()
		return run(t, pkgDir, nil, "node", append([]string{script}, args...)...)
	}
	origDB := filepath.Join(tmp, "db-orig")
	exportDir := filepath.Join(tmp, "export")
	graphFile := filepath.Join(tmp, "graph.jsonl")

	gdb("load", origDB)
	want := parseDigest(t, gdb("digest", origDB))
	gdb("export", origDB, exportDir)
	gdb("jsonl", origDB, graphFile)
	var wantNodes, wantRels int64
	for name, tab := range want.Tables {
		t.Logf("original %-8s %-4s %5d rows  sha256 %s", name, tab.Type, tab.Count, tab.SHA256[:16])
		switch tab.Type {
		case "NODE":
			wantNodes += tab.Count
		case "REL":
			wantRels += tab.Count
		}
	}
	if wantNodes == 0 || wantRels == 0 {
		t.Fatalf("the loaded graph has %d nodes and %d relationships; want both > 0", wantNodes, wantRels)
	}
	t.Logf("LadybugDB load, digest, export, jsonl: %v", time.Since(start).Round(time.Millisecond))

	// strata: init, back up the export (files tier) and the dump (graph tier), restore.
	env := strataEnv(tmp)
	st := func(args ...string) string {
		t.Helper()
		return run(t, tmp, env, strata, args...)
	}
	st("init")
	snapID := backupSummary(t, st("--json", "backup", "--tier", "db="+exportDir, "--tier", "graph="+graphFile))
	checkTiers(t, st("--json", "snapshots"), snapID, treeSize(t, exportDir), fileSize(t, graphFile), wantNodes, wantRels)

	restored := filepath.Join(tmp, "restore")
	st("restore", "latest", "--target", restored)

	// The files tier comes back byte for byte under <target>/db/.
	compareTrees(t, exportDir, filepath.Join(restored, "db"))

	// The graph tier comes back as <target>/graph.jsonl, semantically equal.
	compareJSONL(t, graphFile, filepath.Join(restored, "graph.jsonl"))

	// --target - streams the graph tier to stdout, the same records.
	streamed := filepath.Join(tmp, "graph-streamed.jsonl")
	if err := os.WriteFile(streamed, []byte(st("restore", "latest", "--tier", "graph", "--target", "-")), 0o644); err != nil {
		t.Fatal(err)
	}
	compareJSONL(t, graphFile, streamed)

	// IMPORT DATABASE from the restored export into a fresh database.
	newDB := filepath.Join(tmp, "db-restored")
	gdb("import", newDB, filepath.Join(restored, "db"))
	got := parseDigest(t, gdb("digest", newDB))
	compareDigests(t, want, got)

	// The imported database dumps to the same graph as the original (ids
	// depend only on content), a cross-check of both paths.
	reGraph := filepath.Join(tmp, "graph-restored-db.jsonl")
	gdb("jsonl", newDB, reGraph)
	compareJSONL(t, graphFile, reGraph)

	t.Logf("after npm: %v", time.Since(start).Round(time.Millisecond))
}

// ensureNodeModules installs the pinned LadybugDB into node_modules next to
// this file unless that version is already there and loads.
func ensureNodeModules(t *testing.T, dir string) {
	t.Helper()
	var manifest struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	readJSON(t, filepath.Join(dir, "package.json"), &manifest)
	pinned := manifest.Dependencies[ladybugPkg]
	if pinned == "" {
		t.Fatalf("package.json does not pin %s", ladybugPkg)
	}
	if installedVersion(dir) == pinned {
		ctx, cancel := context.WithTimeout(t.Context(), stepTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "node", filepath.Join(dir, "graphdb.mjs"), "version").Output()
		if err == nil && strings.TrimSpace(string(out)) == pinned {
			return
		}
		t.Logf("node_modules holds %s %s but it does not load (%v); reinstalling", ladybugPkg, pinned, err)
	}
	// Not `npm ci`: @ladybugdb/core 0.19.1 lists optional per-platform
	// packages of which only linux-x64 is published, so the lock npm writes
	// lacks the others and `npm ci` refuses it as out of sync ("Missing:
	// @ladybugdb/core-darwin-arm64@ from lock file"). `npm install` installs
	// what the lock pins (versions and integrity); --no-save keeps it from
	// rewriting package.json or the lock, checked below.
	lockPath := filepath.Join(dir, "package-lock.json")
	lockBefore, _ := os.ReadFile(lockPath)
	args := []string{"install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error"}
	ctx, cancel := context.WithTimeout(t.Context(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	t.Logf("npm %s in %s", strings.Join(args, " "), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if lockAfter, _ := os.ReadFile(lockPath); !bytes.Equal(lockBefore, lockAfter) {
		t.Errorf("npm %s changed package-lock.json", strings.Join(args, " "))
	}
	if v := installedVersion(dir); v != pinned {
		t.Fatalf("after npm install, node_modules holds %s %q; want %q", ladybugPkg, v, pinned)
	}
}

func installedVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", filepath.FromSlash(ladybugPkg), "package.json"))
	if err != nil {
		return ""
	}
	var p struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &p) != nil {
		return ""
	}
	return p.Version
}

func buildStrata(t *testing.T, dir string) string {
	t.Helper()
	goBin := "go"
	if _, err := exec.LookPath(goBin); err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "strata")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	run(t, ".", nil, goBin, "build", "-o", bin, "github.com/strata-backup/strata/cmd/strata")
	return bin
}

// strataEnv is the environment without any inherited STRATA_ variable, with
// a repository, password, cache and the fast test KDF in dir.
func strataEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"STRATA_INSECURE_TEST_KDF=1",
		"STRATA_PASSWORD=ladybug-e2e-password",
		"STRATA_REPOSITORY="+filepath.Join(dir, "repo"),
		"STRATA_CACHE_DIR="+filepath.Join(dir, "cache"),
	)
}

// run runs name with args in dir and returns its stdout; a failure is fatal
// and shows the command, exit status, stdout and stderr.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), stepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	line := filepath.Base(name) + " " + strings.Join(args, " ")
	if err != nil {
		t.Fatalf("%s: %v (after %v)\nstdout:\n%s\nstderr:\n%s", line, err, time.Since(began).Round(time.Millisecond), stdout.Bytes(), stderr.Bytes())
	}
	t.Logf("%s (%v)", line, time.Since(began).Round(time.Millisecond))
	return stdout.String()
}

// ---------------------------------------------------------------- digests

type digest struct {
	Tables map[string]struct {
		Type        string   `json:"type"`
		Columns     []string `json:"columns"`
		Connections []string `json:"connections"`
		Count       int64    `json:"count"`
		SHA256      string   `json:"sha256"`
	} `json:"tables"`
}

func parseDigest(t *testing.T, out string) digest {
	t.Helper()
	var d digest
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("digest output is not JSON: %v\n%s", err, out)
	}
	if len(d.Tables) == 0 {
		t.Fatalf("digest lists no tables:\n%s", out)
	}
	return d
}

func compareDigests(t *testing.T, want, got digest) {
	t.Helper()
	for name, w := range want.Tables {
		g, ok := got.Tables[name]
		switch {
		case !ok:
			t.Errorf("table %s is missing after the restore and import", name)
		case g.Count != w.Count:
			t.Errorf("table %s: %d rows after the restore and import, %d before", name, g.Count, w.Count)
		case g.SHA256 != w.SHA256:
			t.Errorf("table %s: content digest %s after the restore and import, %s before", name, g.SHA256, w.SHA256)
		case fmt.Sprint(g.Columns, g.Connections) != fmt.Sprint(w.Columns, w.Connections):
			t.Errorf("table %s: schema %v %v after the restore and import, %v %v before", name, g.Columns, g.Connections, w.Columns, w.Connections)
		default:
			t.Logf("table %-8s %5d rows, digest equal", name, g.Count)
		}
	}
	for name := range got.Tables {
		if _, ok := want.Tables[name]; !ok {
			t.Errorf("table %s appeared after the restore and import", name)
		}
	}
}

// ---------------------------------------------------------------- strata output

// backupSummary returns the snapshot id from backup --json's last line, the
// summary.
func backupSummary(t *testing.T, out string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var sum struct {
		MessageType string `json:"message_type"`
		SnapshotID  string `json:"snapshot_id"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.MessageType != "summary" || sum.SnapshotID == "" {
		t.Fatalf("backup --json: the last line is not a summary with a snapshot_id (%v):\n%s", err, out)
	}
	return sum.SnapshotID
}

// checkTiers checks the snapshot's tiers in snapshots --json: one of each
// format, with the sizes of their sources and the graph's node and
// relationship counts.
func checkTiers(t *testing.T, out, snapID string, dbBytes, graphBytes, nodes, rels int64) {
	t.Helper()
	var snaps []struct {
		ID    string `json:"id"`
		Tiers []struct {
			Name          string `json:"name"`
			Format        string `json:"format"`
			Bytes         int64  `json:"bytes"`
			Nodes         int64  `json:"nodes"`
			Relationships int64  `json:"relationships"`
		} `json:"tiers"`
	}
	if err := json.Unmarshal([]byte(out), &snaps); err != nil {
		t.Fatalf("snapshots --json: %v\n%s", err, out)
	}
	if len(snaps) != 1 || snaps[0].ID != snapID {
		t.Fatalf("snapshots --json: want exactly snapshot %s:\n%s", snapID, out)
	}
	type want struct {
		format      string
		bytes       int64
		nodes, rels int64
	}
	wants := map[string]want{"db": {"files", dbBytes, 0, 0}, "graph": {"graph", graphBytes, nodes, rels}}
	seen := map[string]bool{}
	for _, tier := range snaps[0].Tiers {
		w, ok := wants[tier.Name]
		if !ok {
			t.Errorf("snapshot %.8s has an unexpected tier %q", snapID, tier.Name)
			continue
		}
		seen[tier.Name] = true
		if tier.Format != w.format {
			t.Errorf("tier %s has format %q; want %q", tier.Name, tier.Format, w.format)
		}
		if tier.Bytes != w.bytes {
			t.Errorf("tier %s: bytes %d; want %d, the size of its source", tier.Name, tier.Bytes, w.bytes)
		}
		if w.format == "graph" && (tier.Nodes != w.nodes || tier.Relationships != w.rels) {
			t.Errorf("tier %s: %d nodes, %d relationships; want %d, %d", tier.Name, tier.Nodes, tier.Relationships, w.nodes, w.rels)
		}
	}
	for name := range wants {
		if !seen[name] {
			t.Errorf("snapshot %.8s lacks tier %s:\n%s", snapID, name, out)
		}
	}
	t.Logf("snapshot %.8s: tiers db (files, %d bytes) and graph (%d nodes, %d relationships)", snapID, dbBytes, nodes, rels)
}

// ---------------------------------------------------------------- files

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// treeSize sums the sizes of the regular files below root.
func treeSize(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// compareTrees requires got to hold exactly want's files with the same bytes.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	list := func(root string) map[string]string {
		files := map[string]string{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if !d.Type().IsRegular() {
				files[rel] = "not a regular file"
				return nil
			}
			b, err := os.ReadFile(p)
			files[rel] = string(b)
			return err
		})
		if err != nil {
			t.Fatalf("reading %s: %v", root, err)
		}
		return files
	}
	w, g := list(want), list(got)
	for name, wb := range w {
		gb, ok := g[name]
		switch {
		case !ok:
			t.Errorf("restored files tier lacks %s", name)
		case gb != wb:
			t.Errorf("restored %s differs from the export (%d bytes, want %d)", name, len(gb), len(wb))
		}
	}
	for name := range g {
		if _, ok := w[name]; !ok {
			t.Errorf("restored files tier has an extra file %s", name)
		}
	}
	t.Logf("files tier: %d files restored byte for byte", len(w))
}

// ---------------------------------------------------------------- JSON Lines

type recordKey struct{ typ, id string }

// readJSONL parses a graph JSON Lines file into records keyed by (type, id),
// numbers kept as their literals.
func readJSONL(t *testing.T, path string) map[recordKey]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs := map[recordKey]any{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s:%d: %v", path, line, err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			t.Fatalf("%s:%d: extra text after the record", path, line)
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s:%d: not an object", path, line)
		}
		typ, _ := m["type"].(string)
		id, _ := m["id"].(string)
		if typ == "" || id == "" {
			t.Fatalf("%s:%d: record without a string type and id", path, line)
		}
		k := recordKey{typ, id}
		if _, dup := recs[k]; dup {
			t.Fatalf("%s:%d: %s %s defined twice", path, line, typ, id)
		}
		recs[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return recs
}

// compareJSONL requires the two files to hold the same records, compared by
// (type, id) as JSON values: key order, whitespace, record order and a
// number's spelling (1e-7 or 1E-7) may differ, its value and whether it is
// an integer literal may not.
func compareJSONL(t *testing.T, wantPath, gotPath string) {
	t.Helper()
	want, got := readJSONL(t, wantPath), readJSONL(t, gotPath)
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s %s is missing", k.typ, k.id))
			continue
		}
		if where := jsonDiff(w, g, ""); where != "" {
			wj, _ := json.Marshal(w)
			gj, _ := json.Marshal(g)
			diffs = append(diffs, fmt.Sprintf("%s %s differs at %s:\n  want %s\n  got  %s", k.typ, k.id, where, wj, gj))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s %s is extra", k.typ, k.id))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		if len(diffs) > 10 {
			diffs = append(diffs[:10], fmt.Sprintf("... and %d more", len(diffs)-10))
		}
		t.Errorf("%s differs from %s in %d records:\n%s", gotPath, wantPath, len(diffs), strings.Join(diffs, "\n"))
		return
	}
	t.Logf("%s: %d records, semantically equal to %s", filepath.Base(gotPath), len(want), filepath.Base(wantPath))
}

// jsonDiff returns "" when a and b are the same JSON value, else the path of
// the first difference.
func jsonDiff(a, b any, at string) string {
	if at == "" {
		at = "$"
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return at
		}
		keys := make([]string, 0, len(av))
		for k := range av {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			bk, ok := bv[k]
			if !ok {
				return at + "." + k
			}
			if d := jsonDiff(av[k], bk, at+"."+k); d != "" {
				return d
			}
		}
		return ""
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return at
		}
		for i := range av {
			if d := jsonDiff(av[i], bv[i], fmt.Sprintf("%s[%d]", at, i)); d != "" {
				return d
			}
		}
		return ""
	case json.Number:
		bv, ok := b.(json.Number)
		if !ok || !sameNumber(string(av), string(bv)) {
			return at
		}
		return ""
	default: // string, bool, nil
		if a != b {
			return at
		}
		return ""
	}
}

func sameNumber(a, b string) bool {
	isInt := func(s string) bool { return !strings.ContainsAny(s, ".eE") }
	if isInt(a) != isInt(b) {
		return false
	}
	ra, ok1 := new(big.Rat).SetString(a)
	rb, ok2 := new(big.Rat).SetString(b)
	return ok1 && ok2 && ra.Cmp(rb) == 0
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
