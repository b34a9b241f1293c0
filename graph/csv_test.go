package graph

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-backup/strata/graphgen"
)

// csvState reads graph JSON Lines and returns an iterator over the records in
// canonical order, as a restore feeds WriteNeo4jCSV.
func csvState(t testing.TB, lines ...string) Iterator {
	t.Helper()
	s := NewSorter(1<<20, t.TempDir())
	r := NewReader(strings.NewReader(strings.Join(lines, "\n")), "test")
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if err := s.Add(rec, rec.Line); err != nil {
			t.Fatal(err)
		}
	}
	it, err := s.Sort()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { it.Close() })
	return it
}

// csvTable is a CSV file read back with encoding/csv.
type csvTable struct {
	header []string
	rows   [][]string
}

func readCSVFile(t testing.TB, path string) csvTable {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll() // also checks every row has the header's width
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(recs) == 0 {
		t.Fatalf("%s: no header", path)
	}
	return csvTable{header: recs[0], rows: recs[1:]}
}

// row returns the row whose first column (:ID, or :START_ID with idCol set to
// the strata_id column) is id, as a map from header to value.
func (c csvTable) row(t testing.TB, idCol, id string) map[string]string {
	t.Helper()
	col := slices.Index(c.header, idCol)
	if col < 0 {
		t.Fatalf("no column %q in %q", idCol, c.header)
	}
	for _, r := range c.rows {
		if r[col] == id {
			m := map[string]string{}
			for i, h := range c.header {
				m[h] = r[i]
			}
			return m
		}
	}
	t.Fatalf("no row %s=%q", idCol, id)
	return nil
}

func exportCSV(t *testing.T, memLimit int, lines ...string) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tier")
	files, err := writeNeo4jCSV(dir, csvState(t, lines...), t.TempDir(), memLimit)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if !slices.IsSorted(files) {
		t.Errorf("files not sorted: %q", files)
	}
	return dir, files
}

func baseNames(files []string) []string {
	var out []string
	for _, f := range files {
		out = append(out, filepath.Base(f))
	}
	return out
}

func TestNeo4jCSVTypes(t *testing.T) {
	dir, files := exportCSV(t, csvSpoolMemory,
		`{"type":"node","id":"u1","labels":["University","Organisation"],"properties":{"name":"MIT"}}`,
		`{"type":"node","id":"u2","labels":["Organisation","University","University"],"properties":{"name":"ETH"}}`,
		`{"type":"node","id":"p1","labels":["Person"],"properties":{`+
			`"ints":[1,2,-3],"strs":["a","b c"],"semi":["a;b","c"],"dbls":[1.5,2],"bools":[true,false],`+
			`"empty":[],"oneEmpty":[""],"twoEmpty":["",""],"mixed":[1,"a"],"withNull":[1,null],"nested":[[1]],`+
			`"map":{"z":1,"a":"x","n":null},"nothing":null,`+
			`"long":9223372036854775807,"minLong":-9223372036854775808,"big":123456789012345678901234567890,`+
			`"over":9223372036854775808,"f":3.14,"f2":1.50,"huge":1e400,"tiny":1E-400,"zero":0.0,"exp":2.5e+3,`+
			`"yes":true,"s":"Zoë 李娜 😀","es":"","q":"say \"hi\", then\nleave","lead":" x",`+
			`"conflict":1,"intdbl":1,"surr":"\ud800x","bigs":[1,99999999999999999999]}}`,
		`{"type":"node","id":"p2","labels":["Person"],"properties":{"conflict":"1","intdbl":2.5,"ints":[4],"dbls":[3.25],"strs":["z"],"nothing":"now set"}}`,
		`{"type":"node","id":"p3","labels":["Person"]}`,
		`{"type":"node","id":"x1","properties":{"k":1}}`,
		`{"type":"node","id":"z1","labels":["Zoë"],"properties":{}}`,
		`{"type":"relationship","id":"r1","label":"KNOWS","start":{"id":"p1"},"end":{"id":"p2"},"properties":{"since":1999,"strata_id":"mine","w":0.5}}`,
		`{"type":"relationship","id":"r2","label":"KNOWS","start":{"id":"p2"},"end":{"id":"p1"}}`,
		`{"type":"relationship","id":"r3","label":"WORKS_AT","start":{"id":"p1"},"end":{"id":"u1"}}`,
	)
	zoe := "nodes_Zo__" + shortHash(KindNode, string(appendStr(nil, "Zoë"))) + ".csv"
	want := []string{"nodes.csv", "nodes_Organisation_University.csv", "nodes_Person.csv", zoe,
		"relationships_KNOWS.csv", "relationships_WORKS_AT.csv"}
	slices.Sort(want)
	if got := baseNames(files); !slices.Equal(got, want) {
		t.Fatalf("files %q, want %q", got, want)
	}

	org := readCSVFile(t, filepath.Join(dir, "nodes_Organisation_University.csv"))
	if want := []string{":ID", "name:string", ":LABEL"}; !slices.Equal(org.header, want) {
		t.Errorf("org header %q, want %q", org.header, want)
	}
	if want := [][]string{{"u1", "MIT", "Organisation;University"}, {"u2", "ETH", "Organisation;University"}}; !slices.EqualFunc(org.rows, want, slices.Equal) {
		t.Errorf("org rows %q, want %q", org.rows, want)
	}

	person := readCSVFile(t, filepath.Join(dir, "nodes_Person.csv"))
	wantHeader := []string{":ID", "big:string", "bigs:string", "bools:boolean[]", "conflict:string", "dbls:string",
		"empty:string", "es:string", "exp:double", "f:double", "f2:double", "huge:string", "intdbl:string",
		"ints:long[]", "lead:string", "long:long", "map:string", "minLong:long", "mixed:string", "nested:string",
		"nothing:string", "oneEmpty:string", "over:string", "q:string", "s:string", "semi:string", "strs:string[]",
		"surr:string", "tiny:string", "twoEmpty:string[]", "withNull:string", "yes:boolean", "zero:double", ":LABEL"}
	if !slices.Equal(person.header, wantHeader) {
		t.Errorf("person header\n%q\nwant\n%q", person.header, wantHeader)
	}
	if len(person.rows) != 3 {
		t.Fatalf("person rows %d, want 3", len(person.rows))
	}
	p1 := person.row(t, ":ID", "p1")
	for col, want := range map[string]string{
		"ints:long[]": "1;2;-3", "strs:string[]": "a;b c", "semi:string": `["a;b","c"]`,
		// 1.5 and 2: a double and a long, so the list is mixed.
		"dbls:string": "[1.5,2]", "bools:boolean[]": "true;false", "empty:string": "[]",
		"oneEmpty:string": `[""]`, "twoEmpty:string[]": ";", "mixed:string": `[1,"a"]`,
		"withNull:string": "[1,null]", "nested:string": "[[1]]", "map:string": `{"a":"x","n":null,"z":1}`,
		"nothing:string": "", "long:long": "9223372036854775807", "minLong:long": "-9223372036854775808",
		"big:string": "123456789012345678901234567890", "over:string": "9223372036854775808",
		"f:double": "3.14", "f2:double": "1.50", "huge:string": "1E+400", "tiny:string": "1E-400",
		"zero:double": "0.0", "exp:double": "2.5E+3", "yes:boolean": "true", "s:string": "Zoë 李娜 😀",
		"es:string": "", "q:string": "say \"hi\", then\nleave", "lead:string": " x",
		"conflict:string": "1", "intdbl:string": "1", "surr:string": `"\ud800x"`,
		"bigs:string": "[1,99999999999999999999]", ":LABEL": "Person",
	} {
		if p1[col] != want {
			t.Errorf("p1 %s = %q, want %q", col, p1[col], want)
		}
	}
	p2 := person.row(t, ":ID", "p2")
	for col, want := range map[string]string{
		"conflict:string": `"1"`, "intdbl:string": "2.5", "ints:long[]": "4", "dbls:string": "[3.25]",
		"strs:string[]": "z", "nothing:string": "now set", "big:string": "", "es:string": "",
	} {
		if p2[col] != want {
			t.Errorf("p2 %s = %q, want %q", col, p2[col], want)
		}
	}

	// Raw text: null is an empty field, the empty string a quoted "".
	raw, err := os.ReadFile(filepath.Join(dir, "nodes_Person.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	if !strings.HasPrefix(lines[1], `p1,123456789012345678901234567890,"[1,99999999999999999999]",true;false,1,"[1.5,2]",[],"",2.5E+3,`) {
		t.Errorf("p1 line %q", lines[1])
	}
	if want := "p3" + strings.Repeat(",", len(wantHeader)-2) + ",Person"; !slices.Contains(lines, want) {
		t.Errorf("no line %q in\n%s", want, raw)
	}

	nolabel := readCSVFile(t, filepath.Join(dir, "nodes.csv"))
	if want := []string{":ID", "k:long", ":LABEL"}; !slices.Equal(nolabel.header, want) {
		t.Errorf("nodes.csv header %q", nolabel.header)
	}
	if want := [][]string{{"x1", "1", ""}}; !slices.EqualFunc(nolabel.rows, want, slices.Equal) {
		t.Errorf("nodes.csv rows %q", nolabel.rows)
	}
	z := readCSVFile(t, filepath.Join(dir, zoe))
	if want := [][]string{{"z1", "Zoë"}}; !slices.EqualFunc(z.rows, want, slices.Equal) || len(z.header) != 2 {
		t.Errorf("%s: %q %q", zoe, z.header, z.rows)
	}

	knows := readCSVFile(t, filepath.Join(dir, "relationships_KNOWS.csv"))
	if want := []string{":START_ID", ":END_ID", ":TYPE", "strata_id_2:string", "since:long", "strata_id:string", "w:double"}; !slices.Equal(knows.header, want) {
		t.Errorf("KNOWS header %q, want %q", knows.header, want)
	}
	if want := [][]string{{"p1", "p2", "KNOWS", "r1", "1999", "mine", "0.5"}, {"p2", "p1", "KNOWS", "r2", "", "", ""}}; !slices.EqualFunc(knows.rows, want, slices.Equal) {
		t.Errorf("KNOWS rows %q, want %q", knows.rows, want)
	}
	works := readCSVFile(t, filepath.Join(dir, "relationships_WORKS_AT.csv"))
	if want := []string{":START_ID", ":END_ID", ":TYPE", "strata_id:string"}; !slices.Equal(works.header, want) {
		t.Errorf("WORKS_AT header %q", works.header)
	}
	if want := [][]string{{"p1", "u1", "WORKS_AT", "r3"}}; !slices.EqualFunc(works.rows, want, slices.Equal) {
		t.Errorf("WORKS_AT rows %q", works.rows)
	}
}

func TestNeo4jCSVNames(t *testing.T) {
	dir, files := exportCSV(t, csvSpoolMemory,
		`{"type":"node","id":"a","labels":["Person"]}`,
		`{"type":"node","id":"b","labels":["PERSON"]}`,
		`{"type":"node","id":"c","labels":["A_B"]}`,
		`{"type":"node","id":"d","labels":["A","B"]}`,
		`{"type":"node","id":"e","labels":["Has Space","x/y"]}`,
		`{"type":"node","id":"f","labels":["`+strings.Repeat("L", 300)+`"]}`,
		`{"type":"node","id":"g","labels":["Tag"],"properties":{"a(b)":1,"":2,"x{y}":3,"tab\t":4,"k:v":5,"a,b":"c"}}`,
		`{"type":"relationship","id":"r","label":"HAS PART","start":{"id":"a"},"end":{"id":"b"}}`,
		`{"type":"relationship","id":"s","label":"knows","start":{"id":"a"},"end":{"id":"b"}}`,
		`{"type":"relationship","id":"t","label":"KNOWS","start":{"id":"a"},"end":{"id":"b"}}`,
	)
	nodeHash := func(labels ...string) string {
		var k []byte
		for _, l := range labels {
			k = appendStr(k, l)
		}
		return shortHash(KindNode, string(k))
	}
	want := []string{
		"nodes_Person_" + nodeHash("Person") + ".csv",
		"nodes_PERSON_" + nodeHash("PERSON") + ".csv",
		"nodes_A_B_" + nodeHash("A_B") + ".csv",
		"nodes_A_B_" + nodeHash("A", "B") + ".csv",
		"nodes_Has_Space_x_y_" + nodeHash("Has Space", "x/y") + ".csv",
		"nodes_" + strings.Repeat("L", maxStem) + "_" + nodeHash(strings.Repeat("L", 300)) + ".csv",
		"nodes_Tag.csv",
		"relationships_HAS_PART_" + shortHash(KindRelationship, "HAS PART") + ".csv",
		"relationships_knows_" + shortHash(KindRelationship, "knows") + ".csv",
		"relationships_KNOWS_" + shortHash(KindRelationship, "KNOWS") + ".csv",
	}
	slices.Sort(want)
	if got := baseNames(files); !slices.Equal(got, want) {
		t.Fatalf("files\n%q\nwant\n%q", got, want)
	}
	tag := readCSVFile(t, filepath.Join(dir, "nodes_Tag.csv"))
	wantHeader := []string{":ID", columnName("") + ":long", columnName("a(b)") + ":long", "a,b:string",
		"k:v:long", columnName("tab\t") + ":long", columnName("x{y}") + ":long", ":LABEL"}
	if !slices.Equal(tag.header, wantHeader) {
		t.Errorf("Tag header %q, want %q", tag.header, wantHeader)
	}
	for _, h := range tag.header {
		if strings.ContainsAny(h, "(){}\t") {
			t.Errorf("header %q keeps a character neo4j-admin's header syntax cuts", h)
		}
	}
	if got := columnName("a(b)"); !strings.HasPrefix(got, "a_b__") || len(got) != len("a_b__")+8 {
		t.Errorf("columnName(a(b)) = %q", got)
	}
	if got := tag.row(t, ":ID", "g"); got["a,b:string"] != "c" || got["k:v:long"] != "5" {
		t.Errorf("Tag row %q", got)
	}
}

func TestNeo4jCSVErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		it   Iterator
		want string
	}{
		{"semicolon label", csvState(t, `{"type":"node","id":"a","labels":["A;B"]}`), "array delimiter"},
		{"empty label", csvState(t, `{"type":"node","id":"a","labels":["A",""]}`), "array delimiter"},
		{"tombstone", NewSliceIterator([]*Record{NewTombstone(KindNode, "a")}), "tombstone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			tmp := t.TempDir()
			files, err := WriteNeo4jCSV(dir, tc.it, tmp)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if files != nil {
				t.Errorf("files %q on error", files)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Errorf("spool left behind: %v", ents)
			}
		})
	}
}

// TestNeo4jCSVManyGroups spools many groups through a tiny memory limit, so
// that every group is flushed to its spool file many times.
func TestNeo4jCSVManyGroups(t *testing.T) {
	const nodes, rels, labels, types = 3000, 4000, 150, 40
	var lines []string
	for i := range nodes {
		lines = append(lines, fmt.Sprintf(`{"type":"node","id":"n%05d","labels":["L%d"],"properties":{"i":%d,"s":"v,%d","odd":%v}}`,
			i, i%labels, i, i, i%2 == 1))
	}
	for i := range rels {
		lines = append(lines, fmt.Sprintf(`{"type":"relationship","id":"r%05d","label":"T%d","start":{"id":"n%05d"},"end":{"id":"n%05d"},"properties":{"w":%d.5}}`,
			i, i%types, i%nodes, (i*7)%nodes, i))
	}
	tmp := t.TempDir()
	dir := filepath.Join(t.TempDir(), "tier")
	files, err := writeNeo4jCSV(dir, csvState(t, lines...), tmp, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != labels+types {
		t.Fatalf("%d files, want %d", len(files), labels+types)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("spool left behind: %v", ents)
	}
	seenNodes, seenRels := 0, 0
	for _, f := range files {
		tab := readCSVFile(t, f)
		base := filepath.Base(f)
		if strings.HasPrefix(base, "nodes_") {
			l, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(base, "nodes_L"), ".csv"))
			if want := []string{":ID", "i:long", "odd:boolean", "s:string", ":LABEL"}; !slices.Equal(tab.header, want) {
				t.Fatalf("%s header %q", base, tab.header)
			}
			for k, r := range tab.rows {
				i := l + k*labels // rows keep the input (id) order
				want := []string{fmt.Sprintf("n%05d", i), strconv.Itoa(i), strconv.FormatBool(i%2 == 1), fmt.Sprintf("v,%d", i), fmt.Sprintf("L%d", l)}
				if !slices.Equal(r, want) {
					t.Fatalf("%s row %d: %q, want %q", base, k, r, want)
				}
			}
			seenNodes += len(tab.rows)
			continue
		}
		ty, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(base, "relationships_T"), ".csv"))
		for k, r := range tab.rows {
			i := ty + k*types
			want := []string{fmt.Sprintf("n%05d", i%nodes), fmt.Sprintf("n%05d", (i*7)%nodes), fmt.Sprintf("T%d", ty), fmt.Sprintf("r%05d", i), fmt.Sprintf("%d.5", i)}
			if !slices.Equal(r, want) {
				t.Fatalf("%s row %d: %q, want %q", base, k, r, want)
			}
		}
		seenRels += len(tab.rows)
	}
	if seenNodes != nodes || seenRels != rels {
		t.Errorf("rows: %d nodes, %d relationships; want %d, %d", seenNodes, seenRels, nodes, rels)
	}

	// The same input with all of it in memory gives the same bytes.
	dir2 := filepath.Join(t.TempDir(), "tier")
	files2, err := WriteNeo4jCSV(dir2, csvState(t, lines...), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		a, _ := os.ReadFile(files[i])
		b, _ := os.ReadFile(files2[i])
		if !bytes.Equal(a, b) || filepath.Base(files[i]) != filepath.Base(files2[i]) {
			t.Fatalf("%s differs between spooled and in-memory export", files[i])
		}
	}
}

func TestNeo4jCSVEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tier")
	files, err := WriteNeo4jCSV(dir, NewSliceIterator(nil), t.TempDir())
	if err != nil || len(files) != 0 {
		t.Fatalf("files %q, err %v", files, err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Errorf("target directory not created: %v", err)
	}
}

func TestNeo4jCSVGraphgen(t *testing.T) {
	for tier := range graphgen.Tiers {
		var buf bytes.Buffer
		if err := graphgen.Write(&buf, tier, graphgen.Options{Nodes: 3000, Seed: 3}); err != nil {
			t.Fatal(err)
		}
		s := NewSorter(1<<20, t.TempDir())
		r := NewReader(&buf, graphgen.Tiers[tier])
		var nodes, rels int
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if rec.Kind == KindNode {
				nodes++
			} else {
				rels++
			}
			if err := s.Add(rec, r.Line()); err != nil {
				t.Fatal(err)
			}
		}
		it, err := s.Sort()
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), graphgen.Tiers[tier])
		files, err := writeNeo4jCSV(dir, it, t.TempDir(), 64<<10)
		it.Close()
		if err != nil {
			t.Fatal(err)
		}
		var gotNodes, gotRels int
		for _, f := range files {
			tab := readCSVFile(t, f)
			if strings.HasPrefix(filepath.Base(f), "nodes_") {
				gotNodes += len(tab.rows)
				if tab.header[0] != ":ID" || tab.header[len(tab.header)-1] != ":LABEL" {
					t.Errorf("%s header %q", f, tab.header)
				}
			} else {
				gotRels += len(tab.rows)
				if !slices.Equal(tab.header[:4], []string{":START_ID", ":END_ID", ":TYPE", "strata_id:string"}) {
					t.Errorf("%s header %q", f, tab.header)
				}
			}
		}
		if gotNodes != nodes || gotRels != rels {
			t.Errorf("tier %s: %d node rows, %d relationship rows; want %d, %d", graphgen.Tiers[tier], gotNodes, gotRels, nodes, rels)
		}
		if tier == 1 {
			// graphgen writes score with %g, so integral scores are JSON
			// integers: a long/double conflict, hence a JSON-text string.
			person := readCSVFile(t, filepath.Join(dir, "nodes_Person.csv"))
			for _, h := range []string{"big:long", "bio:string", "born:long", "emails:string[]", "meta:string", "name:string", "score:string", ":LABEL"} {
				if !slices.Contains(person.header, h) {
					t.Errorf("Person header %q lacks %q", person.header, h)
				}
			}
			// note is always null: no property, no column.
			if slices.ContainsFunc(person.header, func(h string) bool { return strings.HasPrefix(h, "note:") }) {
				t.Errorf("Person header %q has a column for the always-null note", person.header)
			}
			emp := readCSVFile(t, filepath.Join(dir, "nodes_Employee_Person.csv"))
			if emp.rows[0][len(emp.header)-1] != "Employee;Person" {
				t.Errorf("Employee_Person :LABEL %q", emp.rows[0][len(emp.header)-1])
			}
		}
	}
}
