package graphgen_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"

	"github.com/strata-backup/strata/graphgen"
)

func TestDeterministicValidJSONLines(t *testing.T) {
	o := graphgen.Options{Nodes: 500, Seed: 3}
	var a, b bytes.Buffer
	if err := graphgen.Write(&a, 1, o); err != nil {
		t.Fatal(err)
	}
	if err := graphgen.Write(&b, 1, o); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two runs with the same options differ")
	}
	sc := bufio.NewScanner(&a)
	nodes, rels := 0, 0
	for sc.Scan() {
		var rec struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.ID == "" {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		switch rec.Type {
		case "node":
			nodes++
		case "relationship":
			rels++
		default:
			t.Fatalf("unknown record type %q", rec.Type)
		}
	}
	if nodes != 200 || rels != 600 {
		t.Errorf("warm tier: %d nodes, %d relationships; want 200 and 600", nodes, rels)
	}
	var c bytes.Buffer
	o.Change, o.ChangeSeed = 0.5, 9
	_ = graphgen.Write(&c, 1, o)
	if bytes.Equal(c.Bytes(), b.Bytes()) {
		t.Error("Change 0.5 changed nothing")
	}
}
