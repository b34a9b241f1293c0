package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/strata-backup/strata/backend/s3test"
)

// TestMain makes the test binary double as the strata command: testscript
// puts a copy named "strata" on the scripts' PATH, and running it executes
// the real CLI (run, exit code and all) in its own process.
func TestMain(m *testing.M) {
	os.Exit(testscript.RunMain(runThenCleanUp{m}, map[string]func() int{
		"strata": func() int { return run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr) },
	}))
}

// runThenCleanUp stops the shared S3 server and runs afterTests once
// every test has run: testscript's Main exits the process itself, so
// TestMain cannot do it after m.Run.
type runThenCleanUp struct{ m *testing.M }

// afterTests run after all tests (tests append to it; not concurrently).
var afterTests []func()

func (r runThenCleanUp) Run() int {
	code := r.m.Run()
	if s3srv != nil {
		s3srv.Stop()
	}
	for _, f := range afterTests {
		f()
	}
	return code
}

// One versitygw per test binary, started by the first script that needs it.
var (
	s3once    sync.Once
	s3srv     *s3test.Server
	s3err     error
	s3buckets atomic.Int64
)

func startS3() (*s3test.Server, error) {
	s3once.Do(func() { s3srv, s3err = s3test.StartServer() })
	return s3srv, s3err
}

// scriptPassword is the repository password every script starts with.
const scriptPassword = "correct horse battery staple"

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		// Under the test's own temporary directory, which the testing
		// package removes: testscript's default leaves an empty
		// go-test-script* directory in $TMPDIR after every run.
		WorkdirRoot:        t.TempDir(),
		RequireUniqueNames: true,
		Setup:              setupScript,
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "s3": // the S3 server runs (scripts named s3* start it)
				return s3srv != nil && s3err == nil, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode":   cmdExitcode,
			"lsrepo":     cmdLsrepo,
			"jsonlines":  cmdJSONLines,
			"json":       cmdJSON,
			"jsonenv":    cmdJSONEnv,
			"randfile":   cmdRandfile,
			"appendrand": cmdAppendRand,
			"prom":       cmdProm,
		},
	})
}

func setupScript(env *testscript.Env) error {
	env.Setenv("STRATA_INSECURE_TEST_KDF", "1")
	env.Setenv("STRATA_PASSWORD", scriptPassword)
	env.Setenv("STRATA_CACHE_DIR", filepath.Join(env.WorkDir, "cache"))
	env.Setenv("HOME", env.WorkDir)
	env.Setenv("TZ", "UTC")
	// testscript starts from a clean environment (PATH, HOME, TMPDIR, ...),
	// so nothing from the developer's own STRATA_* setup leaks in.
	name := strings.TrimPrefix(filepath.Base(env.WorkDir), "script-")
	if !strings.HasPrefix(name, "s3") {
		return nil
	}
	srv, err := startS3()
	if err != nil {
		if errors.Is(err, s3test.ErrNotInstalled) && os.Getenv("STRATA_REQUIRE_S3") != "1" {
			env.T().Log("no S3 server: " + err.Error()) // the script skips with [!s3]
			return nil
		}
		return fmt.Errorf("S3 test server: %w", err)
	}
	// The AWS SDK in strata reads the credentials s3test set in this
	// process; testscript hands scripts a clean environment.
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			env.Setenv(k, v)
		}
	}
	bucket := fmt.Sprintf("strata-%s-%d", bucketSafe(name), s3buckets.Add(1))
	srv.NewBucket(bucket)
	env.Setenv("S3_URL", srv.URL(bucket, "graph"))
	env.Setenv("S3_URL_OTHER", srv.URL(bucket, "otherprefix"))
	env.Setenv("S3_URL_GRAPH2", srv.URL(bucket, "graph2"))
	env.Setenv("S3_URL_NOBUCKET", srv.URL(bucket+"-missing", "graph"))
	env.Setenv("S3_ROOT", filepath.Join(srv.Root(), bucket))
	// The URL a user would write: no checksum settings, the SDK's defaults.
	q := url.Values{"endpoint": {srv.Endpoint}, "region": {s3test.Region}, "use_path_style": {"true"}}
	env.Setenv("S3_URL_SDK", (&url.URL{Scheme: "s3", Host: bucket, Path: "/sdk", RawQuery: q.Encode()}).String())
	return nil
}

var nonBucket = regexp.MustCompile(`[^a-z0-9-]+`)

func bucketSafe(s string) string {
	s = nonBucket.ReplaceAllString(strings.ToLower(s), "-")
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Trim(s, "-")
}

// exitcode N PROGRAM [ARGS...]
//
// Runs PROGRAM (normally strata, i.e. run() in a child process) like exec
// does and requires exit code N; stdout and stderr are kept for the
// following stdout/stderr checks.
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exitcode (give the expected code instead)")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: bad code %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with code %d, want %d", strings.Join(args[1:], " "), got, want)
	}
}

// lsrepo DIR
//
// Prints every file below DIR, sorted, with its size and a hash of its
// content, so `cp stdout before` ... `cmp stdout before` proves that
// nothing in a repository changed.
func cmdLsrepo(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: lsrepo DIR")
	}
	root := ts.MkAbs(args[0])
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			lines = append(lines, rel+"/")
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s %d %x", rel, len(b), fnv64(b)))
		return nil
	})
	ts.Check(err)
	slices.Sort(lines)
	fmt.Fprintln(ts.Stdout(), strings.Join(lines, "\n"))
}

func fnv64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// jsonlines FILE
//
// Every line of FILE (or stdout/stderr) must be one JSON object, and there
// must be at least one; `! jsonlines` requires some line not to be one.
func cmdJSONLines(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: jsonlines FILE")
	}
	lines := splitLines(ts.ReadFile(args[0]))
	bad := ""
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			bad = fmt.Sprintf("line %d is not a JSON object: %v: %q", i+1, err, l)
			break
		}
	}
	if len(lines) == 0 {
		bad = "no lines"
	}
	switch {
	case bad != "" && !neg:
		ts.Fatalf("%s: %s", args[0], bad)
	case bad == "" && neg:
		ts.Fatalf("%s: every line is JSON", args[0])
	}
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// json [-lines] FILE ASSERTION...
//
// Parses FILE (or stdout) as one JSON document, or with -lines as JSON
// lines of which the last is checked (`-line=N` picks line N, from 1). Each
// assertion names a dotted path (array elements by index, "-1" the last)
// and one of:
//
//	path         the path exists
//	path=VALUE   the value, rendered as JSON with strings unquoted, equals VALUE
//	path~REGEXP  the rendered value matches REGEXP
//	path:TYPE    string, number, bool, array, object or null
//	path#=N      the array, object or string has length N
//	path<N path>N  numeric comparison
//
// `! json` inverts a single assertion.
func cmdJSON(ts *testscript.TestScript, neg bool, args []string) {
	line := 0 // 0: one document; -1: last line; n: line n
	for len(args) > 0 && strings.HasPrefix(args[0], "-line") {
		switch {
		case args[0] == "-lines":
			line = -1
		case strings.HasPrefix(args[0], "-line="):
			n, err := strconv.Atoi(strings.TrimPrefix(args[0], "-line="))
			if err != nil || n < 1 {
				ts.Fatalf("json: bad %s", args[0])
			}
			line = n
		default:
			ts.Fatalf("json: unknown flag %s", args[0])
		}
		args = args[1:]
	}
	if len(args) < 2 || (neg && len(args) != 2) {
		ts.Fatalf("usage: json [-lines|-line=N] FILE ASSERTION... (one assertion with !)")
	}
	doc := loadJSON(ts, args[0], line)
	for _, a := range args[1:] {
		err := checkJSON(doc, a)
		switch {
		case err != nil && !neg:
			ts.Fatalf("json %s: %v", a, err)
		case err == nil && neg:
			ts.Fatalf("json %s: holds, want it not to", a)
		}
	}
}

func loadJSON(ts *testscript.TestScript, file string, line int) any {
	text := ts.ReadFile(file)
	if line != 0 {
		lines := splitLines(text)
		if len(lines) == 0 {
			ts.Fatalf("json: %s is empty", file)
		}
		i := len(lines) - 1
		if line > 0 {
			if line > len(lines) {
				ts.Fatalf("json: %s has %d lines, want line %d", file, len(lines), line)
			}
			i = line - 1
		}
		text = lines[i]
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		ts.Fatalf("json: %s: %v", file, err)
	}
	if dec.More() {
		ts.Fatalf("json: %s holds more than one JSON document", file)
	}
	return v
}

var assertRE = regexp.MustCompile(`^([^=~:#<>]+)(?:(=|~|:|#=|<|>)(.*))?$`)

func checkJSON(doc any, assertion string) error {
	m := assertRE.FindStringSubmatch(assertion)
	if m == nil {
		return fmt.Errorf("bad assertion")
	}
	path, op, want := m[1], m[2], m[3]
	v, err := lookup(doc, path)
	if err != nil {
		return err
	}
	got := render(v)
	switch op {
	case "":
		return nil
	case "=":
		if got != want {
			return fmt.Errorf("got %s", got)
		}
	case "~":
		re, err := regexp.Compile(want)
		if err != nil {
			return err
		}
		if !re.MatchString(got) {
			return fmt.Errorf("got %s", got)
		}
	case ":":
		if t := typeOf(v); t != want {
			return fmt.Errorf("type %s (%s)", t, got)
		}
	case "#=":
		n := -1
		switch x := v.(type) {
		case []any:
			n = len(x)
		case map[string]any:
			n = len(x)
		case string:
			n = len(x)
		}
		if strconv.Itoa(n) != want {
			return fmt.Errorf("length %d (%s)", n, got)
		}
	case "<", ">":
		num, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("not a number: %s", got)
		}
		a, _ := num.Float64()
		b, err := strconv.ParseFloat(want, 64)
		if err != nil {
			return err
		}
		if (op == "<" && !(a < b)) || (op == ">" && !(a > b)) {
			return fmt.Errorf("got %s", got)
		}
	}
	return nil
}

func lookup(v any, path string) (any, error) {
	if path == "." {
		return v, nil
	}
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return nil, fmt.Errorf("no field %q", k)
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil {
				return nil, fmt.Errorf("index %q into an array", k)
			}
			if i < 0 {
				i += len(x)
			}
			if i < 0 || i >= len(x) {
				return nil, fmt.Errorf("index %s out of range (length %d)", k, len(x))
			}
			v = x[i]
		default:
			return nil, fmt.Errorf("%q: not an object or array", k)
		}
	}
	return v, nil
}

func render(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func typeOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// jsonenv [-lines] VAR FILE PATH
//
// Sets environment variable VAR to the value at PATH in FILE's JSON
// (with -lines: in its last line), e.g. a snapshot id for later commands.
func cmdJSONEnv(ts *testscript.TestScript, neg bool, args []string) {
	line := 0
	if len(args) > 0 && args[0] == "-lines" {
		line, args = -1, args[1:]
	}
	if neg || len(args) != 3 {
		ts.Fatalf("usage: jsonenv [-lines] VAR FILE PATH")
	}
	v, err := lookup(loadJSON(ts, args[1], line), args[2])
	if err != nil {
		ts.Fatalf("jsonenv: %s: %v", args[2], err)
	}
	ts.Setenv(args[0], render(v))
}

// randfile FILE SIZE [SEED]
//
// Writes SIZE bytes (K and M suffixes: KiB, MiB) of deterministic
// pseudo-random data, which does not compress or deduplicate.
func cmdRandfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: randfile FILE SIZE [SEED]")
	}
	n := scriptSize(ts, args[1])
	seed := uint64(1)
	if len(args) == 3 {
		s, err := strconv.ParseUint(args[2], 10, 64)
		ts.Check(err)
		seed = s
	}
	p := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(filepath.Dir(p), 0o755))
	ts.Check(os.WriteFile(p, randBytes(n, seed), 0o644))
}

// appendrand FILE SIZE SEED appends pseudo-random bytes to FILE.
func cmdAppendRand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: appendrand FILE SIZE SEED")
	}
	seed, err := strconv.ParseUint(args[2], 10, 64)
	ts.Check(err)
	f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_APPEND|os.O_WRONLY, 0)
	ts.Check(err)
	_, err = f.Write(randBytes(scriptSize(ts, args[1]), seed))
	ts.Check(errors.Join(err, f.Close()))
}

func scriptSize(ts *testscript.TestScript, s string) int {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		ts.Fatalf("bad size %q", s)
	}
	return n * mult
}

func randBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var b bytes.Buffer
	b.Grow(n + 8)
	var w [8]byte
	for b.Len() < n {
		x := rng.Uint64()
		for i := range w {
			w[i] = byte(x >> (8 * i))
		}
		b.Write(w[:])
	}
	return b.Bytes()[:n]
}

// cmdProm parses FILE as a Prometheus textfile with the Prometheus text
// parser (as node_exporter's textfile collector does) and checks each
// NAME (present) or NAME=VALUE or NAME>VALUE (the sample without labels,
// or the first sample of that name).
func cmdProm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || neg {
		ts.Fatalf("usage: prom FILE NAME[=|>VALUE]...")
	}
	f, err := os.Open(ts.MkAbs(args[0]))
	ts.Check(err)
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil {
		ts.Fatalf("prom %s: not a valid textfile: %v", args[0], err)
	}
	for _, a := range args[1:] {
		name, want, op := a, "", ""
		if i := strings.IndexAny(a, "=>"); i >= 0 {
			name, op, want = a[:i], a[i:i+1], a[i+1:]
		}
		mf := families[name]
		if mf == nil || len(mf.Metric) == 0 {
			ts.Fatalf("prom %s: no metric %s", args[0], name)
		}
		m := mf.Metric[0]
		var v float64
		switch {
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Untyped != nil:
			v = m.Untyped.GetValue()
		}
		if op == "" {
			continue
		}
		w, err := strconv.ParseFloat(want, 64)
		ts.Check(err)
		if op == "=" && v != w || op == ">" && !(v > w) {
			ts.Fatalf("prom %s: %s is %v, want %s%s", args[0], name, v, op, want)
		}
	}
}
