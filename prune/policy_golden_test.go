package prune

// The retention policy against restic itself. testdata/policy/*.json hold
// restic 0.14.0's `forget --dry-run --json` decisions for several policies
// over three snapshot timelines (random ones over years and across DST
// changes, and a hand-made one of edge cases); TestPolicyGolden checks that
// Apply decides exactly as restic did: the same groups, the same snapshots
// kept and removed in the same order, the same matches and counters.
//
// The files are made by restic: `go test ./prune -run TestPolicyGolden
// -update-restic` creates a scratch restic repository per timeline, backs up a
// tiny file once per snapshot with --time, --host and --tag (so every
// snapshot is a real restic snapshot) and records restic's forget output.
// TestPolicyResticLive does the same for the edge timeline on every run
// (skipped with -short or without restic on PATH) and compares live.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/poly1305"
	"golang.org/x/crypto/scrypt"

	"github.com/strata-backup/strata/snapshot"
)

var updateGolden = flag.Bool("update-restic", false, "regenerate testdata/policy/*.json by running restic (slow)")

// goldenFile is one timeline with restic's decisions for several policies.
type goldenFile struct {
	Restic    string       `json:"restic"`
	Timeline  string       `json:"timeline"`
	Snapshots []goldenSnap `json:"snapshots"`
	Cases     []goldenCase `json:"cases"`
}

// goldenSnap is a snapshot as restic recorded it (its time with the
// offset of the zone it was made in); paths are relative to the scratch
// directory ("/a").
type goldenSnap struct {
	Time  string   `json:"time"`
	Host  string   `json:"host"`
	Tags  []string `json:"tags,omitempty"`
	Paths []string `json:"paths"`
}

// goldenCase is restic's answer to one forget command line; snapshots are
// positions in the timeline.
type goldenCase struct {
	Args   []string      `json:"args"`
	Groups []goldenGroup `json:"groups"`
}

type goldenGroup struct {
	Host    string         `json:"host"`
	Tags    []string       `json:"tags"`
	Paths   []string       `json:"paths"`
	Keep    []int          `json:"keep"`
	Remove  []int          `json:"remove"`
	Reasons []goldenReason `json:"reasons"`
}

type goldenReason struct {
	Snapshot int      `json:"snapshot"`
	Matches  []string `json:"matches"`
	Counters Counters `json:"counters"`
}

// specSnap is a snapshot to make: wall-clock time in zone (restic's
// --time takes local time), host, tags, and which of the files a, b.
type specSnap struct {
	wall, zone string
	host       string
	tags       []string
	paths      []string
}

type timelineSpec struct {
	name  string
	snaps func() []specSnap
	cases [][]string
}

var bigCases = [][]string{
	{"--keep-last", "5"},
	{"--keep-hourly", "10", "--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12", "--keep-yearly", "3"},
	{"--keep-within", "1y2m3d4h"},
	{"--keep-within-hourly", "2d", "--keep-within-daily", "30d", "--keep-within-weekly", "3m", "--keep-within-monthly", "1y", "--keep-within-yearly", "10y"},
	{"--keep-tag", "nightly", "--keep-tag", "manual,weekly", "--keep-last", "2"},
	{"--group-by", "tags", "--keep-daily", "3", "--keep-weekly", "2"},
	{"--group-by", "", "--keep-monthly", "6", "--keep-weekly", "8"},
	{"--group-by", "host,tags", "--keep-last", "3", "--keep-yearly", "2", "--keep-within", "10d"},
	{"--host", "h1", "--keep-weekly", "52"},
	{"--tag", "nightly", "--keep-daily", "14", "--keep-monthly", "4"},
	{"--path", "/b", "--keep-daily", "5"},
	{"--group-by", "host", "--keep-weekly", "60", "--keep-hourly", "24"},
	{"--group-by", "paths", "--keep-hourly", "50", "--keep-within-hourly", "5d", "--keep-within-weekly", "1y"},
}

var timelines = []timelineSpec{
	{name: "utc3y", cases: bigCases, snaps: func() []specSnap {
		return randomTimeline(1, 400, "UTC", time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC), 3*365*24*time.Hour, nil)
	}},
	{name: "berlin", cases: bigCases, snaps: func() []specSnap {
		// Dense around the DST changes and the new years.
		hot := []time.Time{
			time.Date(2019, 10, 27, 2, 0, 0, 0, time.UTC), time.Date(2019, 12, 31, 22, 0, 0, 0, time.UTC),
			time.Date(2020, 3, 29, 1, 0, 0, 0, time.UTC), time.Date(2020, 10, 25, 1, 0, 0, 0, time.UTC),
			time.Date(2020, 12, 31, 22, 0, 0, 0, time.UTC), time.Date(2021, 3, 28, 1, 0, 0, 0, time.UTC),
		}
		return randomTimeline(2, 250, "Europe/Berlin", time.Date(2019, 9, 1, 0, 0, 0, 0, time.UTC), 600*24*time.Hour, hot)
	}},
	{name: "edge", snaps: edgeTimeline, cases: [][]string{
		{"--group-by", "", "--keep-within", "1m"},
		{"--group-by", "", "--keep-within", "1d"},
		{"--group-by", "", "--keep-within", "24h"},
		{"--group-by", "", "--keep-within", "1y1m1d1h"},
		{"--group-by", "", "--keep-weekly", "10"},
		{"--group-by", "", "--keep-yearly", "5", "--keep-monthly", "5"},
		{"--group-by", "", "--keep-daily", "8", "--keep-hourly", "3"},
		{"--group-by", "", "--keep-within-weekly", "1y", "--keep-within-daily", "30d", "--keep-within-monthly", "1y2m", "--keep-within-yearly", "2y"},
		{"--keep-last", "2", "--keep-tag", "manual"},
		{"--group-by", "tags", "--keep-daily", "2"},
		{"--group-by", "host,paths,tags", "--keep-weekly", "3", "--keep-tag", "a,b"},
	}},
}

// randomTimeline makes n snapshots with distinct times from start over
// span: half alone at uniform random times, half in bursts of 2-8 a few
// minutes to hours apart (near a hot time when given), on hosts h1-h3 with
// random tags and paths.
func randomTimeline(seed uint64, n int, zone string, start time.Time, span time.Duration, hot []time.Time) []specSnap {
	rng := mrand.New(mrand.NewPCG(seed, seed*0x9e3779b97f4a7c15))
	loc, err := time.LoadLocation(zone)
	if err != nil {
		panic(err)
	}
	seen := map[int64]bool{}
	var out []specSnap
	add := func(t time.Time) {
		wall := t.In(loc).Format("2006-01-02 15:04:05")
		back, _ := time.ParseInLocation("2006-01-02 15:04:05", wall, loc) // as restic parses --time
		if seen[back.Unix()] || len(out) >= n {
			return
		}
		seen[back.Unix()] = true
		s := specSnap{wall: wall, zone: zone}
		switch x := rng.IntN(10); {
		case x < 6:
			s.host = "h1"
		case x < 9:
			s.host = "h2"
		default:
			s.host = "h3"
		}
		for _, tg := range []struct {
			name string
			p    float64
		}{{"nightly", 0.3}, {"weekly", 0.15}, {"manual", 0.1}} {
			if rng.Float64() < tg.p {
				s.tags = append(s.tags, tg.name)
			}
		}
		switch x := rng.IntN(10); {
		case x < 6:
			s.paths = []string{"a"}
		case x < 8:
			s.paths = []string{"b"}
		default:
			s.paths = []string{"a", "b"}
		}
		out = append(out, s)
	}
	for len(out) < n {
		if rng.IntN(2) == 0 {
			add(start.Add(time.Duration(rng.Int64N(int64(span/time.Second))) * time.Second))
			continue
		}
		base := start.Add(time.Duration(rng.Int64N(int64(span/time.Second))) * time.Second)
		if len(hot) > 0 && rng.IntN(2) == 0 {
			base = hot[rng.IntN(len(hot))].Add(time.Duration(rng.IntN(4*3600)-2*3600) * time.Second)
		}
		for range 2 + rng.IntN(7) {
			base = base.Add(time.Duration(60+rng.IntN(90*60)) * time.Second)
			add(base)
		}
	}
	return out
}

// edgeTimeline: leap day, ISO week 53 of 2020, new year in three zones,
// and exact --keep-within boundaries before the newest snapshot
// (2021-03-31 12:00 UTC): 1m back is 2021-03-03 12:00, 1d back
// 2021-03-30 12:00.
func edgeTimeline() []specSnap {
	u := func(wall string, tags ...string) specSnap {
		return specSnap{wall: wall, zone: "UTC", host: "h1", tags: tags, paths: []string{"a"}}
	}
	z := func(zone, wall string, tags ...string) specSnap {
		return specSnap{wall: wall, zone: zone, host: "h1", tags: tags, paths: []string{"a"}}
	}
	return []specSnap{
		u("2019-06-30 10:00:00"),
		u("2020-02-28 23:00:00"), u("2020-02-29 12:00:00", "manual"), u("2020-03-01 00:30:00"),
		u("2020-12-27 12:00:00"), u("2020-12-28 08:00:00"), u("2020-12-31 21:00:00", "a"),
		z("America/New_York", "2020-12-31 20:00:00"), // 2021-01-01 01:00 UTC, still 2020 in New York
		z("Europe/Berlin", "2021-01-01 00:30:00"),    // 2020-12-31 23:30 UTC, already 2021 in Berlin
		u("2021-01-01 00:00:00", "a", "b"), u("2021-01-03 23:00:00"), u("2021-01-04 00:00:01", "b"),
		u("2021-01-10 12:00:00"), u("2021-01-11 12:00:00", "manual"),
		u("2021-02-28 12:00:00"), u("2021-03-02 12:00:00"), u("2021-03-03 12:00:00"), u("2021-03-03 12:00:01"),
		u("2021-03-28 01:30:00"), z("Europe/Berlin", "2021-03-28 03:40:00"),
		u("2021-03-30 11:00:00"), u("2021-03-30 12:00:00"), u("2021-03-30 12:00:01", "a", "b"),
		u("2021-03-31 09:00:00"), u("2021-03-31 09:30:00"), u("2021-03-31 11:00:00"), u("2021-03-31 12:00:00"),
		{wall: "2021-03-31 08:00:00", zone: "UTC", host: "h2", tags: []string{"manual"}, paths: []string{"a", "b"}},
		{wall: "2020-12-31 08:00:00", zone: "UTC", host: "h2", paths: []string{"b"}},
	}
}

func TestPolicyGolden(t *testing.T) {
	if *updateGolden {
		if _, err := exec.LookPath("restic"); err != nil {
			t.Fatalf("-update-restic needs restic on PATH: %v", err)
		}
		for _, tl := range timelines {
			g := runRestic(t, tl, tl.cases)
			writeGolden(t, filepath.Join("testdata", "policy", tl.name+".json"), g)
		}
	}
	for _, tl := range timelines {
		t.Run(tl.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "policy", tl.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var g goldenFile
			if err := json.Unmarshal(b, &g); err != nil {
				t.Fatal(err)
			}
			if len(g.Cases) != len(tl.cases) {
				t.Fatalf("%d cases in the golden file, %d here: regenerate with -update-restic", len(g.Cases), len(tl.cases))
			}
			compareWithRestic(t, &g)
		})
	}
}

// TestPolicyResticLive runs restic on the edge timeline now and compares.
func TestPolicyResticLive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs restic (a few seconds)")
	}
	if _, err := exec.LookPath("restic"); err != nil {
		t.Skip("restic is not installed")
	}
	tl := timelines[2]
	g := runRestic(t, tl, tl.cases)
	compareWithRestic(t, g)
}

// compareWithRestic applies every case of g with Apply and compares.
func compareWithRestic(t *testing.T, g *goldenFile) {
	t.Helper()
	var snaps []snap
	for _, s := range g.Snapshots {
		snaps = append(snaps, snap{time: s.Time, host: s.Host, tags: s.Tags, paths: s.Paths})
	}
	all := entries(t, snaps)
	for _, c := range g.Cases {
		got := applyArgs(t, all, c.Args)
		want := normalizeGroups(c.Groups)
		if reflect.DeepEqual(got, want) {
			continue
		}
		t.Errorf("%s %q: strata and restic differ", g.Timeline, c.Args)
		if len(got) != len(want) {
			t.Errorf("  %d groups, restic %d", len(got), len(want))
			continue
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				gb, _ := json.Marshal(got[i])
				wb, _ := json.Marshal(want[i])
				t.Errorf("  group %d:\n  strata %s\n  restic %s", i, gb, wb)
			}
		}
	}
}

// applyArgs parses restic's forget flags, then filters, groups and applies
// the policy as strata forget does.
func applyArgs(t *testing.T, all []snapshot.Entry, args []string) []goldenGroup {
	t.Helper()
	var p Policy
	by := DefaultGroupBy
	var f snapshot.Filter
	counts := map[string]*int{"--keep-last": &p.Last, "--keep-hourly": &p.Hourly, "--keep-daily": &p.Daily,
		"--keep-weekly": &p.Weekly, "--keep-monthly": &p.Monthly, "--keep-yearly": &p.Yearly}
	durs := map[string]*Duration{"--keep-within": &p.Within, "--keep-within-hourly": &p.WithinHourly,
		"--keep-within-daily": &p.WithinDaily, "--keep-within-weekly": &p.WithinWeekly,
		"--keep-within-monthly": &p.WithinMonthly, "--keep-within-yearly": &p.WithinYearly}
	for i := 0; i+1 < len(args); i += 2 {
		flag, v := args[i], args[i+1]
		var err error
		switch {
		case counts[flag] != nil:
			*counts[flag], err = strconv.Atoi(v)
		case durs[flag] != nil:
			*durs[flag], err = ParseDuration(v)
		case flag == "--keep-tag":
			p.Tags = append(p.Tags, ParseTagList(v))
		case flag == "--group-by":
			by, err = ParseGroupBy(v)
		case flag == "--host":
			f.Hosts = append(f.Hosts, v)
		case flag == "--tag":
			f.Tags = append(f.Tags, v)
		case flag == "--path":
			f.Paths = append(f.Paths, v)
		default:
			t.Fatalf("unknown flag %s", flag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var sel []snapshot.Entry
	for _, e := range all {
		if f.Match(e.Snapshot) {
			sel = append(sel, e)
		}
	}
	var out []goldenGroup
	for _, g := range GroupSnapshots(sel, by) {
		keep, remove, reasons := Apply(slices.Clone(g.Snapshots), p, ApplyOptions{Now: time.Now()})
		gg := goldenGroup{Host: g.Key.Host, Tags: g.Key.Tags, Paths: g.Key.Paths, Keep: idxs(keep), Remove: idxs(remove)}
		for _, r := range reasons {
			gg.Reasons = append(gg.Reasons, goldenReason{Snapshot: idxOf(r.Snapshot), Matches: r.Matches, Counters: r.Counters})
		}
		out = append(out, gg)
	}
	return normalizeGroups(out)
}

// normalizeGroups sorts groups by key and turns nil slices into empty ones.
func normalizeGroups(gs []goldenGroup) []goldenGroup {
	out := []goldenGroup{}
	for _, g := range gs {
		g.Tags, g.Paths = nonNil(g.Tags), nonNil(g.Paths)
		if g.Keep == nil {
			g.Keep = []int{}
		}
		if g.Remove == nil {
			g.Remove = []int{}
		}
		if g.Reasons == nil {
			g.Reasons = []goldenReason{}
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b goldenGroup) int {
		return strings.Compare(GroupKey{a.Host, a.Tags, a.Paths}.id(), GroupKey{b.Host, b.Tags, b.Paths}.id())
	})
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// --- running restic ---

// resticRepo is a scratch restic repository with a key made cheap to
// open, and the directory holding the files a and b that snapshots back up.
type resticRepo struct {
	t    testing.TB
	repo string
	work string
	home string
}

const resticPassword = "strata-golden"

func newResticRepo(t testing.TB) *resticRepo {
	dir := t.TempDir()
	rr := &resticRepo{t: t, repo: filepath.Join(dir, "repo"), work: filepath.Join(dir, "src"), home: filepath.Join(dir, "home")}
	for _, d := range []string{rr.work, rr.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(rr.work, f), []byte(f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := rr.run("UTC", "init"); err != nil {
		t.Fatalf("restic init: %v\n%s", err, out)
	}
	cheapenResticKey(t, rr.repo)
	return rr
}

func (rr *resticRepo) run(tz string, args ...string) ([]byte, error) {
	cmd := exec.Command("restic", append([]string{"--no-cache"}, args...)...)
	cmd.Dir = rr.work
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + rr.home, "TZ=" + tz,
		"RESTIC_PASSWORD=" + resticPassword, "RESTIC_REPOSITORY=" + rr.repo}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

func (rr *resticRepo) version() string {
	out, err := rr.run("UTC", "version")
	if err != nil {
		rr.t.Fatalf("restic version: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// backupAll makes one snapshot per spec, four restic processes at a time
// (backups take shared locks).
func (rr *resticRepo) backupAll(specs []specSnap) {
	jobs := make(chan specSnap)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range jobs {
				args := []string{"backup", "-q", "--time", s.wall, "--host", s.host}
				if len(s.tags) > 0 {
					args = append(args, "--tag", strings.Join(s.tags, ","))
				}
				args = append(args, s.paths...)
				if out, err := rr.run(s.zone, args...); err != nil {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%v: %v: %s", args, err, out))
					mu.Unlock()
				}
			}
		}()
	}
	for _, s := range specs {
		jobs <- s
	}
	close(jobs)
	wg.Wait()
	if len(failed) > 0 {
		rr.t.Fatalf("restic backup failed:\n%s", strings.Join(failed, "\n"))
	}
}

type resticSnap struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Hostname string    `json:"hostname"`
	Tags     []string  `json:"tags"`
	Paths    []string  `json:"paths"`
}

type resticGroup struct {
	Host    string       `json:"host"`
	Tags    []string     `json:"tags"`
	Paths   []string     `json:"paths"`
	Keep    []resticSnap `json:"keep"`
	Remove  []resticSnap `json:"remove"`
	Reasons []struct {
		Snapshot resticSnap `json:"snapshot"`
		Matches  []string   `json:"matches"`
		Counters Counters   `json:"counters"`
	} `json:"reasons"`
}

// relPaths maps restic's absolute paths back to "/a", "/b".
func (rr *resticRepo) relPaths(ps []string) []string {
	var out []string
	for _, p := range ps {
		out = append(out, "/"+strings.TrimPrefix(strings.TrimPrefix(p, rr.work), "/"))
	}
	return out
}

// runRestic makes tl's snapshots in a scratch repository and records
// restic's forget decisions for cases.
func runRestic(t *testing.T, tl timelineSpec, cases [][]string) *goldenFile {
	t.Helper()
	rr := newResticRepo(t)
	specs := tl.snaps()
	rr.backupAll(specs)
	out, err := rr.run("UTC", "--no-lock", "snapshots", "--json")
	if err != nil {
		t.Fatalf("restic snapshots: %v\n%s", err, out)
	}
	var listed []resticSnap
	if err := json.Unmarshal(out, &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != len(specs) {
		t.Fatalf("restic lists %d snapshots, made %d", len(listed), len(specs))
	}
	slices.SortStableFunc(listed, func(a, b resticSnap) int { return a.Time.Compare(b.Time) })
	g := &goldenFile{Restic: rr.version(), Timeline: tl.name}
	pos := map[int64]int{}
	for i, s := range listed {
		if _, dup := pos[s.Time.UnixNano()]; dup {
			t.Fatalf("two snapshots at %s: restic orders them arbitrarily", s.Time)
		}
		pos[s.Time.UnixNano()] = i
		g.Snapshots = append(g.Snapshots, goldenSnap{Time: s.Time.Format(time.RFC3339Nano), Host: s.Hostname, Tags: s.Tags, Paths: rr.relPaths(s.Paths)})
	}
	at := func(s resticSnap) int {
		i, ok := pos[s.Time.UnixNano()]
		if !ok {
			t.Fatalf("restic forget names a snapshot at %s that it did not list", s.Time)
		}
		return i
	}
	// Forget runs are read-only (--dry-run, --no-lock): run them at once.
	outs := make([][]byte, len(cases))
	errs := make([]error, len(cases))
	var wg sync.WaitGroup
	for ci, args := range cases {
		rargs := []string{"--no-lock", "forget", "--dry-run", "--json"}
		for i := 0; i < len(args); i++ {
			rargs = append(rargs, args[i])
			if args[i] == "--path" && i+1 < len(args) {
				i++
				rargs = append(rargs, filepath.Join(rr.work, strings.TrimPrefix(args[i], "/")))
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[ci], errs[ci] = rr.run("UTC", rargs...)
			if errs[ci] != nil {
				errs[ci] = fmt.Errorf("restic %q: %w\n%s", rargs, errs[ci], outs[ci])
			}
		}()
	}
	wg.Wait()
	for ci, args := range cases {
		out := outs[ci]
		if errs[ci] != nil {
			t.Fatal(errs[ci])
		}
		var groups []resticGroup
		if len(bytes.TrimSpace(out)) > 0 { // restic prints nothing when no snapshot matches
			if err := json.Unmarshal(out, &groups); err != nil {
				t.Fatalf("restic forget %q: %v\n%s", args, err, out)
			}
		}
		c := goldenCase{Args: args}
		for _, rg := range groups {
			gg := goldenGroup{Host: rg.Host, Tags: rg.Tags, Paths: rr.relPaths(rg.Paths), Keep: []int{}, Remove: []int{}, Reasons: []goldenReason{}}
			for _, s := range rg.Keep {
				gg.Keep = append(gg.Keep, at(s))
			}
			for _, s := range rg.Remove {
				gg.Remove = append(gg.Remove, at(s))
			}
			for _, r := range rg.Reasons {
				gg.Reasons = append(gg.Reasons, goldenReason{Snapshot: at(r.Snapshot), Matches: r.Matches, Counters: r.Counters})
			}
			c.Groups = append(c.Groups, gg)
		}
		c.Groups = normalizeGroups(c.Groups)
		g.Cases = append(g.Cases, c)
	}
	return g
}

// writeGolden writes g with one snapshot and one case per line.
func writeGolden(t *testing.T, path string, g *goldenFile) {
	t.Helper()
	var b bytes.Buffer
	enc := func(v any) string {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(j)
	}
	fmt.Fprintf(&b, "{\"restic\":%s,\n\"timeline\":%s,\n\"snapshots\":[\n", enc(g.Restic), enc(g.Timeline))
	for i, s := range g.Snapshots {
		fmt.Fprintf(&b, "%s%s\n", enc(s), map[bool]string{true: ",", false: ""}[i < len(g.Snapshots)-1])
	}
	b.WriteString("],\n\"cases\":[\n")
	for i, c := range g.Cases {
		fmt.Fprintf(&b, "%s%s\n", enc(c), map[bool]string{true: ",", false: ""}[i < len(g.Cases)-1])
	}
	b.WriteString("]}\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// cheapenResticKey re-wraps the repository's master key under scrypt
// N=1024 (restic calibrates ~0.5 s per open, which would make hundreds of
// backups slow). restic reads the KDF parameters from the key file, so
// this is an ordinary key file to it. Format (restic's design.rst): scrypt
// gives 64 bytes, AES-256 key ‖ Poly1305-AES key (k ‖ r); data = IV ‖
// AES-256-CTR ciphertext ‖ Poly1305-AES MAC of the ciphertext.
func cheapenResticKey(t testing.TB, repoDir string) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(repoDir, "keys", "*"))
	if err != nil || len(names) != 1 {
		t.Fatalf("restic keys: %v %v", names, err)
	}
	raw, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Created  json.RawMessage `json:"created"`
		Username string          `json:"username"`
		Hostname string          `json:"hostname"`
		KDF      string          `json:"kdf"`
		N        int             `json:"N"`
		R        int             `json:"r"`
		P        int             `json:"p"`
		Salt     []byte          `json:"salt"`
		Data     []byte          `json:"data"`
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	user, err := scrypt.Key([]byte(resticPassword), k.Salt, k.N, k.R, k.P, 64)
	if err != nil {
		t.Fatal(err)
	}
	master := resticOpen(t, user, k.Data)
	k.N, k.R, k.P = 1024, 8, 1
	k.Salt = make([]byte, 64)
	rand.Read(k.Salt)
	if user, err = scrypt.Key([]byte(resticPassword), k.Salt, k.N, k.R, k.P, 64); err != nil {
		t.Fatal(err)
	}
	k.Data = resticSeal(t, user, master)
	out, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out)
	if err := os.WriteFile(filepath.Join(repoDir, "keys", hex.EncodeToString(sum[:])), out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(names[0]); err != nil {
		t.Fatal(err)
	}
}

func resticMAC(t testing.TB, key, iv, msg []byte) [16]byte {
	var pk [32]byte
	copy(pk[:16], key[48:64]) // r (clamped by Poly1305)
	blk, err := aes.NewCipher(key[32:48])
	if err != nil {
		t.Fatal(err)
	}
	blk.Encrypt(pk[16:], iv)
	var mac [16]byte
	poly1305.Sum(&mac, msg, &pk)
	return mac
}

func resticCTR(t testing.TB, key, iv, in []byte) []byte {
	blk, err := aes.NewCipher(key[:32])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(in))
	cipher.NewCTR(blk, iv).XORKeyStream(out, in)
	return out
}

func resticOpen(t testing.TB, key, data []byte) []byte {
	if len(data) < 32 {
		t.Fatal("restic key data too short")
	}
	iv, ct, mac := data[:16], data[16:len(data)-16], data[len(data)-16:]
	want := resticMAC(t, key, iv, ct)
	if subtle.ConstantTimeCompare(want[:], mac) != 1 {
		t.Fatal("restic key: MAC mismatch (wrong password or format)")
	}
	return resticCTR(t, key, iv, ct)
}

func resticSeal(t testing.TB, key, plain []byte) []byte {
	iv := make([]byte, 16)
	rand.Read(iv)
	ct := resticCTR(t, key, iv, plain)
	mac := resticMAC(t, key, iv, ct)
	return append(append(iv, ct...), mac[:]...)
}
