package graph

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func addTier(t *testing.T, c *Checker, tier, text string) {
	t.Helper()
	for _, r := range readAll(t, text, tier) {
		if err := c.Add(tier, r.Line, r); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckerCrossTier: relationships reach across tiers (fine), one edge
// dangles, one node id is defined in two tiers.
func TestCheckerCrossTier(t *testing.T) {
	cold := `{"type":"node","id":"Tag:1","labels":["Tag"]}
{"type":"node","id":"Place:1","labels":["Place","City"]}
{"type":"relationship","id":"IS_PART_OF:1","label":"IS_PART_OF","start":{"id":"Place:1","labels":["City","Place"]},"end":{"id":"Place:1","labels":["Place","City"]}}
`
	warm := `{"type":"node","id":"Person:1","labels":["Person"]}
{"type":"node","id":"Person:2","labels":["Person"]}
{"type":"relationship","id":"HAS_INTEREST:1","label":"HAS_INTEREST","start":{"id":"Person:1","labels":["Person"]},"end":{"id":"Tag:1","labels":["Tag"]}}
{"type":"relationship","id":"KNOWS:1","label":"KNOWS","start":{"id":"Person:1","labels":["Person"]},"end":{"id":"Person:3","labels":["Person"]}}
`
	fast := `{"type":"node","id":"Person:3x","labels":["Person"]}
{"type":"node","id":"Person:2","labels":["Person"],"properties":{"again":true}}
{"type":"relationship","id":"KNOWS:2","label":"KNOWS","start":{"id":"Person:3x","labels":["Post"]},"end":{"id":"Person:2","labels":["Person"]}}
`
	c := NewChecker(1<<10, t.TempDir())
	addTier(t, c, "cold", cold)
	addTier(t, c, "warm", warm)
	addTier(t, c, "fast", fast)
	rep, err := c.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.ProblemCount != 2 {
		t.Fatalf("report: %+v", rep)
	}
	want := []Problem{
		{Tier: "fast", Line: 2, ID: "Person:2", Kind: "duplicate", Detail: "node Person:2 defined at warm:2 and fast:2"},
		{Tier: "warm", Line: 4, ID: "KNOWS:1", Kind: "dangling", Detail: "relationship KNOWS:1 (KNOWS) at warm:4: end node Person:3 does not exist"},
	}
	if !reflect.DeepEqual(rep.Problems, want) {
		t.Errorf("problems:\n got %+v\nwant %+v", rep.Problems, want)
	}
	// Label lists compare as sorted lists: only KNOWS:2's start differs.
	wantWarn := []string{`relationship KNOWS:2 at fast:3: start labels ["Post"] differ from node Person:3x's ["Person"]`}
	if !slices.Equal(rep.Warnings, wantWarn) || rep.WarningCount != 1 {
		t.Errorf("warnings: %q", rep.Warnings)
	}
	st := rep.Stats
	if st.Total.Nodes != 5 || st.Total.Relationships != 4 || st.Tiers["warm"].Nodes != 2 ||
		st.Tiers["warm"].Relationships != 2 || st.Total.Labels["Person"] != 4 || st.Total.Labels["City"] != 1 ||
		st.Total.Types["KNOWS"] != 2 || st.Tiers["cold"].Types["IS_PART_OF"] != 1 {
		t.Errorf("stats: %+v", st)
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"ok":false`, `"problem_count":2`, `"kind":"dangling"`, `"stats":{"tiers":{`, `"relationships":4`, `"labels":{`, `"types":{`} {
		if !strings.Contains(string(js), key) {
			t.Errorf("JSON lacks %s: %s", key, js)
		}
	}
}

func TestCheckerDuplicateRelationshipAndCaps(t *testing.T) {
	c := NewChecker(1<<20, t.TempDir())
	c.MaxProblems = 2
	addTier(t, c, "a", `{"type":"node","id":"n"}
{"type":"relationship","id":"r","label":"K","start":{"id":"n"},"end":{"id":"n"}}
{"type":"relationship","id":"r","label":"K","start":{"id":"n"},"end":{"id":"n"}}
{"type":"relationship","id":"s","label":"K","start":{"id":"x"},"end":{"id":"y"}}
{"type":"node","id":"r"}
`)
	c.Malformed("a", 9, "invalid JSON (extra data at column 3)")
	rep, err := c.Finish()
	if err != nil {
		t.Fatal(err)
	}
	// malformed, dangling x, dangling y, duplicate r: a node "r" is no
	// duplicate of relationship "r".
	if rep.ProblemCount != 4 || len(rep.Problems) != 2 || rep.OK {
		t.Fatalf("report: %+v", rep)
	}
	if rep.Problems[0].Kind != "malformed" || rep.Problems[0].Line != 9 {
		t.Errorf("first problem: %+v", rep.Problems[0])
	}
	if _, err := c.Finish(); err == nil {
		t.Error("second Finish succeeded")
	}
}

// TestCheckerRandom compares the bounded-memory checker (tiny memory, many
// runs) with a direct in-memory implementation of graphref's check rules.
func TestCheckerRandom(t *testing.T) {
	g := newRandGen(3)
	tiers := map[string][]*Record{}
	names := []string{"fast", "warm", "cold"}
	for _, tier := range names {
		tiers[tier] = g.records(t, 700, 500, 400, tier)
	}
	dir := t.TempDir()
	c := NewChecker(4<<10, dir)
	c.MaxProblems = 1 << 20
	c.MaxWarnings = 1 << 20
	rep := checkTiers(t, c, names, tiers)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("temporary files left: %d", len(ents))
	}

	// The reference, in graphref's words and order of definition.
	var want []string
	defined := map[string]string{}
	nodeLabels := map[string][]string{}
	var rels []*Record
	var relWhere []string
	warnings := 0
	for _, tier := range []string{"fast", "warm", "cold"} {
		for _, r := range tiers[tier] {
			where := fmt.Sprintf("%s:%d", tier, r.Line)
			key := r.Kind.String() + " " + r.ID
			if first, ok := defined[key]; ok {
				want = append(want, fmt.Sprintf("duplicate %s %s defined at %s and %s", r.Kind, r.ID, first, where))
			} else {
				defined[key] = where
			}
			if r.Kind == KindNode {
				if _, ok := nodeLabels[r.ID]; !ok {
					nodeLabels[r.ID] = slices.Sorted(slices.Values(r.Labels))
				}
			} else {
				rels = append(rels, r)
				relWhere = append(relWhere, where)
			}
		}
	}
	for i, r := range rels {
		for end, id := range []string{r.StartID, r.EndID} {
			labels := r.StartLabels
			if end == 1 {
				labels = r.EndLabels
			}
			nl, ok := nodeLabels[id]
			if !ok {
				want = append(want, fmt.Sprintf("dangling relationship %s (%s) at %s: %s node %s does not exist",
					r.ID, r.Type, relWhere[i], endName(byte(end)), id))
			} else if !slices.Equal(slices.Sorted(slices.Values(labels)), nl) {
				warnings++
			}
		}
	}
	var got []string
	for _, p := range rep.Problems {
		got = append(got, p.Kind+" "+p.Detail)
	}
	slices.Sort(got)
	slices.Sort(want)
	if len(want) < 50 {
		t.Fatalf("test graph too clean: %d problems", len(want))
	}
	if !slices.Equal(got, want) || rep.ProblemCount != int64(len(want)) {
		t.Errorf("got %d problems, want %d", len(got), len(want))
		for i := 0; i < len(got) && i < len(want); i++ {
			if got[i] != want[i] {
				t.Fatalf("first difference:\n got %s\nwant %s", got[i], want[i])
			}
		}
	}
	if rep.WarningCount != int64(warnings) {
		t.Errorf("warnings: got %d, want %d", rep.WarningCount, warnings)
	}
}
