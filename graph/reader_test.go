package graph

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// canonicalCases are property values and their canonical form, as
// graphref.py (str(int), str(Decimal), json.dumps(ensure_ascii=False))
// writes them. TestGraphrefCanonical feeds them to graphref as well.
var canonicalCases = []struct {
	name, in, want string
}{
	{"2^53+1", `9007199254740993`, `9007199254740993`},
	{"huge int", `-123456789012345678901234567890`, `-123456789012345678901234567890`},
	{"minus zero int", `-0`, `0`},
	{"minus zero float", `-0.0`, `-0.0`},
	{"1.0 stays", `1.0`, `1.0`},
	{"1 stays", `1`, `1`},
	{"trailing zeros", `1.50`, `1.50`},
	{"1e400", `1e400`, `1E+400`},
	{"exponent sign", `1E+400`, `1E+400`},
	{"negative exp", `-1e5`, `-1E+5`},
	{"exp zero", `5e0`, `5`},
	{"exp to plain", `123.456e2`, `12345.6`},
	{"exp to fraction", `100e-2`, `1.00`},
	{"small plain", `0.000001`, `0.000001`},
	{"smaller goes sci", `0.0000001`, `1E-7`},
	{"zero fraction", `0.00000`, `0.00000`},
	{"zero sci", `0.0000000`, `0E-7`},
	{"zero exp", `0e5`, `0E+5`},
	{"long mantissa exp", `1.0e-10`, `1.0E-10`},
	{"exp leading zeros", `1e-0005`, `0.00001`},
	{"big mantissa", `12345678901234567890123456789.5e-3`, `12345678901234567890123456.7895`},
	{"float literal", `528.8074222668004`, `528.8074222668004`},
	{"max exponent", `123e999999999999999997`, `1.23E+999999999999999999`},
	{"min exponent", `1.5e-1999999999999999996`, `1.5E-1999999999999999996`},
	{"true", `true`, `true`},
	{"null", `null`, `null`},
	{"unicode kept", `"Zoë 李娜 Олег"`, `"Zoë 李娜 Олег"`},
	{"escape decoded", `"\u00e9"`, `"é"`},
	{"surrogate pair", `"\ud83d\ude00"`, `"😀"`},
	{"astral raw", `"😀"`, `"😀"`},
	{"upper hex", `"\u00E9\uD83D\uDE00"`, `"é😀"`},
	{"solidus", `"a\/b"`, `"a/b"`},
	{"controls", `"\b\f\n\r\t\u0001\u001f"`, `"\b\f\n\r\t\u0001\u001f"`},
	{"quote backslash", `"\"\\"`, `"\"\\"`},
	{"del raw", `"\u007f"`, "\"\x7f\""},
	{"line separator raw", `"\u2028"`, "\"\u2028\""},
	{"lone surrogate", `"\ud800"`, `"\ud800"`},
	{"lone surrogate escapes all", `"aé\ud800😀\n"`, `"a\u00e9\ud800\ud83d\ude00\n"`},
	{"lone high before pair", `"\ud83d\ud83d\ude00"`, `"\ud83d\ud83d\ude00"`},
	{"low then high", `"\udc00\ud800"`, `"\udc00\ud800"`},
	{"high then escape", `"\ud83d\u0041"`, `"\ud83dA"`},
	{"nested", `{"b":[1,{"d":null,"c":[]}],"a":{}}`, `{"a":{},"b":[1,{"c":[],"d":null}]}`},
	{"key order code point", `{"é":1,"z":2,"\ue000":3,"😀":4,"\ud800":5,"A":6}`, "{\"A\":6,\"z\":2,\"é\":1,\"\\ud800\":5,\"\ue000\":3,\"😀\":4}"},
	{"whitespace", " [ 1 ,\t2 , { \"a\" : 1 } ] ", `[1,2,{"a":1}]`},
	{"escaped key sorts decoded", `{"b":1,"\u0061":2}`, `{"a":2,"b":1}`},
}

func TestCanonicalValues(t *testing.T) {
	for _, tc := range canonicalCases {
		t.Run(tc.name, func(t *testing.T) {
			line := `{"type":"node","id":"n1","properties":{"v":` + tc.in + `}}`
			want := `{"id":"n1","properties":{"v":` + tc.want + `},"type":"node"}`
			rec, err := NewReader(strings.NewReader(line), "t").Next()
			if err != nil {
				t.Fatal(err)
			}
			if got := string(rec.Canonical); got != want {
				t.Errorf("canonical\n got %s\nwant %s", got, want)
			}
			// Canonical output is a fixed point.
			again, err := NewReader(strings.NewReader(string(rec.Canonical)), "t").Next()
			if err != nil {
				t.Fatal(err)
			}
			if string(again.Canonical) != string(rec.Canonical) {
				t.Errorf("not a fixed point: %s -> %s", rec.Canonical, again.Canonical)
			}
		})
	}
}

func TestRecordFields(t *testing.T) {
	in := `{"type":"node","id":"Person:\u00e9","labels":["Person","Employee"],"properties":{"x":1}}

  ` + "\t\f" + `
{"type":"relationship","id":"KNOWS:1","label":"KNOWS","start":{"id":"a","labels":["X"]},"end":{"labels":["Y","Z"],"x":1,"id":"b\ud800"}}
{"labels":[],"id":"n","type":"node"}
`
	r := NewReader(strings.NewReader(in), "warm")
	n, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if n.Kind != KindNode || n.ID != "Person:é" || strings.Join(n.Labels, ",") != "Person,Employee" || n.Line != 1 {
		t.Errorf("node = %+v", n)
	}
	rel, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if rel.Kind != KindRelationship || rel.ID != "KNOWS:1" || rel.Type != "KNOWS" || rel.StartID != "a" ||
		rel.EndID != "b\xed\xa0\x80" || rel.Line != 4 || r.Line() != 4 ||
		strings.Join(rel.StartLabels, ",") != "X" || strings.Join(rel.EndLabels, ",") != "Y,Z" {
		t.Errorf("relationship = %+v", rel)
	}
	if want := `{"end":{"id":"b\ud800","labels":["Y","Z"],"x":1},"id":"KNOWS:1","label":"KNOWS","start":{"id":"a","labels":["X"]},"type":"relationship"}`; string(rel.Canonical) != want {
		t.Errorf("canonical %s", rel.Canonical)
	}
	e, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	// An empty label list stays (graphref keeps what it read).
	if string(e.Canonical) != `{"id":"n","labels":[],"type":"node"}` || e.Labels == nil || len(e.Labels) != 0 {
		t.Errorf("empty labels: %+v %s", e, e.Canonical)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("want EOF, got %v", err)
	}
}

func TestMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, line, reason string
	}{
		{"invalid JSON", `{"type":"node",`, "invalid JSON"},
		{"truncated", `{"type":"node","id":"n1","prop`, "invalid JSON"},
		{"extra data", `{"type":"node","id":"n1"} x`, "invalid JSON (extra data"},
		{"two values", `{"type":"node","id":"n1"}{}`, "invalid JSON (extra data"},
		{"trailing comma", `{"type":"node","id":"n1",}`, "invalid JSON"},
		{"array trailing comma", `{"type":"node","id":"n1","labels":["a",]}`, "invalid JSON"},
		{"single quotes", `{'type':'node'}`, "invalid JSON"},
		{"duplicate key", `{"type":"node","id":"n1","id":"n2"}`, `invalid JSON (duplicate key "id")`},
		{"duplicate nested", `{"type":"node","id":"n1","properties":{"a":{"x":1,"y":2,"x":3}}}`, `invalid JSON (duplicate key "x")`},
		{"duplicate by escape", `{"type":"node","id":"n1","properties":{"a":1,"\u0061":2}}`, `invalid JSON (duplicate key "a")`},
		{"NaN", `{"type":"node","id":"n1","properties":{"a":NaN}}`, "invalid JSON (NaN is not a JSON number"},
		{"Infinity", `{"type":"node","id":"n1","properties":{"a":Infinity}}`, "invalid JSON (Infinity is not a JSON number"},
		{"-Infinity", `{"type":"node","id":"n1","properties":{"a":-Infinity}}`, "invalid JSON (-Infinity is not a JSON number"},
		{"leading zero", `{"type":"node","id":"n1","properties":{"a":01}}`, "invalid JSON"},
		{"bare dot", `{"type":"node","id":"n1","properties":{"a":1.}}`, "invalid JSON"},
		{"bare exponent", `{"type":"node","id":"n1","properties":{"a":1e}}`, "invalid JSON"},
		{"plus sign", `{"type":"node","id":"n1","properties":{"a":+1}}`, "invalid JSON"},
		{"hex", `{"type":"node","id":"n1","properties":{"a":0x10}}`, "invalid JSON"},
		{"too many int digits", `{"type":"node","id":"n1","properties":{"a":` + strings.Repeat("1", 4301) + `}}`, "invalid JSON (integer of more than 4300 digits"},
		{"exponent too large", `{"type":"node","id":"n1","properties":{"a":123e999999999999999998}}`, "invalid JSON (number out of range"},
		{"exponent too small", `{"type":"node","id":"n1","properties":{"a":1.5e-1999999999999999997}}`, "invalid JSON (number out of range"},
		{"raw control char", "{\"type\":\"node\",\"id\":\"n\x01\"}", "invalid JSON (invalid control character"},
		{"bad escape", `{"type":"node","id":"n\x"}`, "invalid JSON (invalid \\escape"},
		{"bad unicode escape", `{"type":"node","id":"n\u12G4"}`, `invalid JSON (invalid \uXXXX escape`},
		{"bad low surrogate escape", `{"type":"node","id":"\ud800\uZZZZ"}`, `invalid JSON (invalid \uXXXX escape`},
		{"unterminated string", `{"type":"node","id":"n1`, "invalid JSON (unterminated string"},
		{"not UTF-8", "{\"type\":\"node\",\"id\":\"n\xff\"}", "not UTF-8"},
		{"UTF-8 surrogate", "{\"type\":\"node\",\"id\":\"n\xed\xa0\x80\"}", "not UTF-8"},
		{"BOM", "\ufeff{\"type\":\"node\",\"id\":\"n1\"}", "invalid JSON"},
		{"not an object", `["node"]`, "not a JSON object"},
		{"string", `"node"`, "not a JSON object"},
		{"unknown type", `{"type":"edge","id":"n1"}`, `field "type" must be "node" or "relationship"`},
		{"missing type", `{"id":"n1"}`, `field "type" must be "node" or "relationship"`},
		{"missing id", `{"type":"node"}`, `field "id" must be a non-empty string`},
		{"empty id", `{"type":"node","id":""}`, `field "id" must be a non-empty string`},
		{"numeric id", `{"type":"node","id":42}`, `field "id" must be a non-empty string`},
		{"properties list", `{"type":"node","id":"n1","properties":[]}`, `field "properties" must be an object`},
		{"properties null", `{"type":"node","id":"n1","properties":null}`, `field "properties" must be an object`},
		{"labels string", `{"type":"node","id":"n1","labels":"Person"}`, `field "labels" must be a list of strings`},
		{"labels numbers", `{"type":"node","id":"n1","labels":["a",1]}`, `field "labels" must be a list of strings`},
		{"labels null", `{"type":"node","id":"n1","labels":null}`, `field "labels" must be a list of strings`},
		{"type before id", `{"type":"x","id":""}`, `field "type" must be "node" or "relationship"`},
		{"rel no label", `{"type":"relationship","id":"r","start":{"id":"a"},"end":{"id":"b"}}`, `relationship field "label" must be a non-empty string`},
		{"rel empty label", `{"type":"relationship","id":"r","label":"","start":{"id":"a"},"end":{"id":"b"}}`, `relationship field "label" must be a non-empty string`},
		{"rel no start", `{"type":"relationship","id":"r","label":"K","end":{"id":"b"}}`, `relationship field "start" must be an object with a non-empty string "id"`},
		{"rel start string", `{"type":"relationship","id":"r","label":"K","start":"a","end":{"id":"b"}}`, `relationship field "start" must be an object with a non-empty string "id"`},
		{"rel start empty id", `{"type":"relationship","id":"r","label":"K","start":{"id":""},"end":{"id":"b"}}`, `relationship field "start" must be an object with a non-empty string "id"`},
		{"rel start id number", `{"type":"relationship","id":"r","label":"K","start":{"id":1},"end":{"id":"b"}}`, `relationship field "start" must be an object with a non-empty string "id"`},
		{"rel start id after other key", `{"type":"relationship","id":"r","label":"K","start":{"a":1,"id":""},"end":{"id":"b"}}`, `relationship field "start" must be an object with a non-empty string "id"`},
		{"rel start labels", `{"type":"relationship","id":"r","label":"K","start":{"id":"a","labels":[1]},"end":{"id":"b"}}`, `field "start.labels" must be a list of strings`},
		{"rel no end", `{"type":"relationship","id":"r","label":"K","start":{"id":"a"}}`, `relationship field "end" must be an object with a non-empty string "id"`},
		{"rel end labels", `{"type":"relationship","id":"r","label":"K","start":{"id":"a"},"end":{"id":"b","labels":{}}}`, `field "end.labels" must be a list of strings`},
		{"rel properties", `{"type":"relationship","id":"r","label":"K","start":{"id":"a"},"end":{"id":"b"},"properties":1}`, `field "properties" must be an object`},
		{"deep nesting", `{"type":"node","id":"n","properties":{"a":` + strings.Repeat("[", 1001) + strings.Repeat("]", 1001) + `}}`, "invalid JSON (nesting deeper than 1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The bad line is line 3, after a good line and a blank one.
			in := `{"type":"node","id":"ok"}` + "\n\n" + tc.line + "\n" + `{"type":"node","id":"ok2"}` + "\n"
			r := NewReader(strings.NewReader(in), "warm")
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
			_, err := r.Next()
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("want a SyntaxError, got %v", err)
			}
			if se.Tier != "warm" || se.Line != 3 || !strings.HasPrefix(se.Reason, tc.reason) {
				t.Errorf("got %+v, want line 3 reason %q", se, tc.reason)
			}
			if !strings.HasPrefix(err.Error(), "tier warm: line 3: "+tc.reason) {
				t.Errorf("Error() = %q", err)
			}
			// The reader goes on after a malformed line.
			rec, err := r.Next()
			if err != nil || rec.ID != "ok2" || rec.Line != 4 {
				t.Errorf("after the bad line: %+v, %v", rec, err)
			}
		})
	}
}

func TestBlankLines(t *testing.T) {
	// Python's str.strip() whitespace: all of these lines are blank.
	in := "\n \n\t\r\n\v\f\x1c\x1d\x1e\x1f\n\u00a0\u2003\u3000\u2028\u0085\n\r\r\n" +
		`{"type":"node","id":"n1"}` + "\r\n" + `{"type":"node","id":"n2"}`
	r := NewReader(strings.NewReader(in), "t")
	rec, err := r.Next()
	if err != nil || rec.ID != "n1" || rec.Line != 7 {
		t.Fatalf("got %+v %v", rec, err)
	}
	rec, err = r.Next()
	if err != nil || rec.ID != "n2" || rec.Line != 8 {
		t.Fatalf("last line without newline: %+v %v", rec, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
	// Not blank: a zero-width space is not whitespace, an invalid byte is
	// not UTF-8.
	for _, line := range []string{"\u200b", " \xff "} {
		if _, err := NewReader(strings.NewReader(line), "t").Next(); err == nil || err == io.EOF {
			t.Errorf("%q: want a syntax error, got %v", line, err)
		}
	}
}

func TestLongLine(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	in := `{"type":"node","id":"n1","properties":{"s":"` + big + `"}}` + "\n" + `{"type":"node","id":"n2"}`
	r := NewReader(strings.NewReader(in), "t")
	rec, err := r.Next()
	if err != nil || len(rec.Canonical) != len(big)+47 {
		t.Fatalf("long line: %v len %d", err, len(rec.Canonical))
	}
	if rec, err = r.Next(); err != nil || rec.ID != "n2" {
		t.Fatalf("after long line: %+v %v", rec, err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestReadError(t *testing.T) {
	r := NewReader(failingReader{}, "cold")
	_, err := r.Next()
	if err == nil || err.Error() != "read tier cold: disk on fire" {
		t.Fatalf("got %v", err)
	}
	if _, err2 := r.Next(); err2 != err {
		t.Fatalf("error not sticky: %v", err2)
	}
}
