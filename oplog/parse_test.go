package oplog

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/strata-backup/strata/graph"
)

// checkParseSame fails unless the fast parser and the reference give the
// same record or the same reason for line.
func checkParseSame(t *testing.T, line []byte) {
	t.Helper()
	got, gotReason := parseRecord(line, false)
	want, wantReason := parseRecordRef(line)
	if gotReason != wantReason {
		t.Fatalf("%q:\nreason %q\nwant   %q", line, gotReason, wantReason)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nrecord %+v\nwant   %+v", line, got, want)
	}
}

// parseCorpus is lines of every shape the field checks and graph's JSON
// rules distinguish.
func parseCorpus() []string {
	rec := `{"type":"node","id":"n1","labels":["P"],"properties":{"b":1.50,"a":12345678901234567890}}`
	rel := `{"type":"relationship","id":"r1","label":"KNOWS","start":{"id":"a","labels":["P"]},"end":{"id":"b"},"properties":{}}`
	lines := []string{
		`{"lsn":1,"ts":"2026-01-01T00:00:00Z","tier":"warm","op":"upsert","record":` + rec + `}`,
		`{"lsn":1,"ts":"2026-01-01T00:00:00Z","tx":"t1","tier":"fast","op":"upsert","record":` + rel + `}`,
		`{"record":` + rec + `,"lsn":1,"ts":"2026-01-01T00:00:00Z","tier":"warm","op":"upsert"}`,
		`{"lsn":1,"ts":"2026-01-01T00:00:00Z","tier":"warm","record":` + rec + `,"op":"upsert"}`,
		` { "lsn" : 1 , "ts" : "2026-01-01T00:00:00Z" , "tier" : "warm" , "op" : "upsert" , "record" : ` + rec + ` } `,
		"\t{\"lsn\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"tier\":\"warm\",\"op\":\"upsert\",\"record\":" + rec + "\r}\t",
		`{"lsn":2,"prev_lsn":0,"ts":"2026-01-01T00:00:00.5+02:00","tx":5,"tx_end":true,"tier":"a.b-c_1","op":"delete","kind":"node","id":"x"}`,
		`{"lsn":2,"prev_lsn":-0,"ts":"2016-12-31T23:59:60Z","tx":"t","tx_end":false,"tier":"w","op":"delete","kind":"relationship","id":"\ud800"}`,
		`{"lsn":2,"ts":"2016-12-31T23:59:59Z","tx":-0,"tier":"w","op":"delete","kind":"relationship","id":"\ud83d\ude00 \u00e9\n\"\\\/"}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tx":"\u0074x","tier":"\u0077","op":"\u0064elete","kind":"\u006eode","id":"x"}`,
		`{"l\u0073n":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x"}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","meta":{"a":[1,2,{"b":null}],"c":"d"},"more":[true,false,null,-1.25]}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","meta":{"a":1,"a":2}}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","m":1,"m":2}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","m":1e999999999999999999999}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","m":1e5}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","m":0.0000001}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":{"type":"node","id":"x","properties":{"m":1E+400,"n":-0.0e-5}}}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":{"type":"node","id":"x","properties":{"m":NaN}}}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":{"type":"node","id":"x","id":"y"}}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":"x"}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":[1]}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":null}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":{"type":"node","id":"x"},"record":{"type":"node","id":"x"}}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":{"type":"node","id":"x"}}}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":{"type":"node","id":"x"}`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":{"type":"node","id":"x"}} x`,
		`{"lsn":3,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":{"type":"node","id":"x"},}`,
		`{"lsn":18446744073709551615,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x"}`,
		`{"lsn":18446744073709551616,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x"}`,
		`{"lsn":5,"prev_lsn":4,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x"}`,
		`{"lsn":5,"prev_lsn":18446744073709551616,"ts":"2026-01-01T00:00:00Z"}`,
		`{"lsn":5,"prev_lsn":-00}`,
		`{"lsn":05}`,
		`{"lsn":-5}`,
		`{"lsn":5.}`,
		`{"lsn":5.0}`,
		`{"lsn":5,"prev_lsn":[ 1, 2 ]}`,
		`{"lsn":5,"prev_lsn":{ "a" : 1 }}`,
		`{"lsn":5,"ts":{"a":1}}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tx":{"a":1}}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tx":null}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tx_end":null}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":null}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":null}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node"}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":5}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00z","tier":"w","op":"delete","kind":"node","id":"x"}`,
		`{"lsn":5,"ts":"2026-01-01t00:00:00.000-00:30","tier":"w","op":"delete","kind":"node","id":"x"}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00\u005a","tier":"w","op":"delete","kind":"node","id":"x"}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w\t","op":"delete","kind":"node","id":"x"}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x\u00"}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x\q"}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x` + "\x01" + `"}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"` + "\xff" + `"}`,
		"\ufeff" + `{"lsn":5}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","big":` + strings.Repeat("9", 4300) + `}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","big":` + strings.Repeat("9", 4301) + `}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","big":` + strings.Repeat("9", 5000) + `.5}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","big":-Infinity}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","big":tru}`,
		`{}`, `[]`, `[1]`, `"x"`, `5`, `null`, ``, ` `, `{`, `}`, `{"`, `{"lsn"`, `{"lsn":`, `{"lsn":1`, `{"lsn":1,`,
		`{"lsn":1}{}`, `{,}`, `{"a" "b"}`, `{"a":}`, `{1:2}`, `{"lsn":1 "ts":2}`,
	}
	for _, d := range []int{997, 998, 999, 1000, 1001} {
		deep := strings.Repeat("[", d) + strings.Repeat("]", d)
		deepObj := strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d)
		lines = append(lines,
			`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"x","m":`+deep+`}`,
			`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":{"type":"node","id":"x","properties":{"m":`+deep+`}}}`,
			`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":`+deepObj+`}`,
			`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":`+deep+`}`,
		)
	}
	return lines
}

func TestParseMatchesReference(t *testing.T) {
	for _, l := range parseCorpus() {
		checkParseSame(t, []byte(l))
	}
}

// TestParseMatchesReferenceMutated edits the corpus at random (bytes that
// matter to JSON and to the field checks) and compares every result.
func TestParseMatchesReferenceMutated(t *testing.T) {
	corpus := parseCorpus()
	alphabet := []string{"{", "}", "[", "]", `"`, ",", ":", `\`, " ", "\t", "\r", "0", "1", "9", "-", ".", "e", "E", "+",
		"t", "n", "u", "a", "Z", `\u`, `\ud800`, "\x00", "\x1f", "\xff", "é", `"lsn":1,`, `"record":{}`, `"x":[1]`, "null"}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := range n {
		line := []byte(corpus[rng.IntN(len(corpus))])
		for range 1 + rng.IntN(3) {
			pos := 0
			if len(line) > 0 {
				pos = rng.IntN(len(line) + 1)
			}
			switch rng.IntN(3) {
			case 0: // insert
				s := alphabet[rng.IntN(len(alphabet))]
				line = append(line[:pos:pos], append([]byte(s), line[pos:]...)...)
			case 1: // delete
				if pos < len(line) {
					line = append(line[:pos:pos], line[pos+1:]...)
				}
			case 2: // replace
				if pos < len(line) {
					s := alphabet[rng.IntN(len(alphabet))]
					line = append(line[:pos:pos], append([]byte(s), line[pos+1:]...)...)
				}
			}
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkParseSame(t, line) })
	}
}

// FuzzParseMatchesReference: the fast parser and the reference agree on
// any line.
func FuzzParseMatchesReference(f *testing.F) {
	for _, l := range parseCorpus() {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) { checkParseSame(t, line) })
}

var benchLines = []string{
	`{"lsn":1,"ts":"2026-11-27T00:00:00.000000Z","tx":"t1","tier":"fast","op":"upsert","record":{"type":"node","id":"n150160","labels":["Person"],"properties":{"name":"Zoë fgb","born":1951,"score":593.1624874623872,"rev":2,"bio":"snapshot log log "}}}`,
	`{"lsn":2,"ts":"2026-11-27T00:00:00.001000Z","tx":"t1","tier":"cold","op":"upsert","record":{"type":"relationship","id":"e827823","label":"HAS_TAG","start":{"id":"n234366","labels":["Person"]},"end":{"id":"n129760","labels":["Person","Employee"]}}}`,
	`{"lsn":3,"ts":"2026-11-27T00:00:00.002000Z","tx":"t1","tx_end":true,"tier":"cold","op":"delete","kind":"relationship","id":"e827823"}`,
}

func BenchmarkParseRecord(b *testing.B) {
	// A stored segment's lines are AppendJSON's: the embedded record is
	// canonical.
	var stored []string
	for _, l := range benchLines {
		r, reason := parseRecord([]byte(l), false)
		if reason != "" {
			b.Fatal(reason)
		}
		stored = append(stored, string(r.AppendJSON(nil)))
	}
	for _, impl := range []struct {
		name  string
		lines []string
		fn    func([]byte) (*Record, string)
	}{
		{"fast", benchLines, func(l []byte) (*Record, string) { return parseRecord(l, false) }},
		{"stored", stored, func(l []byte) (*Record, string) { return parseRecord(l, true) }},
		{"reference", benchLines, parseRecordRef},
	} {
		b.Run(impl.name, func(b *testing.B) {
			lines := make([][]byte, len(impl.lines))
			n := 0
			for i, l := range impl.lines {
				lines[i] = []byte(l)
				n += len(l)
			}
			b.SetBytes(int64(n / len(lines)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, reason := impl.fn(lines[i%len(lines)]); reason != "" {
					b.Fatal(reason)
				}
			}
		})
	}
}

// TestParseStored: a stored segment's line (AppendJSON of a parsed record)
// read with stored set gives the same record, its graph record partial
// where the key reader took it, and whole again through LineParser.Full.
func TestParseStored(t *testing.T) {
	partial := 0
	for _, l := range append(parseCorpus(),
		`{"lsn":4,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":{"type":"node","id":"a\"b","labels":["P"]}}`,
		`{"lsn":5,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"upsert","record":{"type":"relationship","id":"r","label":"T","start":{"id":"a","x":1},"end":{"id":"b"}}}`,
		`{"lsn":6,"prev_lsn":2,"ts":"2026-01-01T00:00:00\u005a","tx":-7,"tx_end":true,"tier":"w","op":"delete","kind":"node","id":"x"}`) {
		if checkStoredSame(t, []byte(l)) {
			partial++
		}
	}
	if partial == 0 {
		t.Fatal("no stored line was read by its key")
	}
}

// FuzzParseStored: for any line that parses, its stored form reads back
// the same with stored set; any line read as stored does not panic.
func FuzzParseStored(f *testing.F) {
	for _, l := range parseCorpus() {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		parseRecord(line, true)
		checkStoredSame(t, line)
	})
}

// checkStoredSame checks line's stored form (if line parses) and reports
// whether its graph record was read by key.
func checkStoredSame(t *testing.T, l []byte) bool {
	t.Helper()
	rec, reason := parseRecord(l, false)
	if reason != "" {
		return false
	}
	line := rec.AppendJSON(nil)
	want, reason := parseRecord(line, false)
	if reason != "" {
		t.Fatalf("%s: stored form %s does not parse: %s", l, line, reason)
	}
	got, reason := parseRecord(line, true)
	if reason != "" {
		t.Fatalf("%s: stored parse: %s", line, reason)
	}
	if want.Rec == nil {
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\nstored %+v\nwant   %+v", line, got, want)
		}
		return false
	}
	var lp graph.LineParser
	full, err := lp.Full(got.Rec)
	if err != nil {
		t.Fatalf("%s: Full: %v", line, err)
	}
	g, w := *got, *want
	g.Rec, w.Rec = nil, nil
	if !reflect.DeepEqual(full, want.Rec) || !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\nstored %+v %+v\nwant   %+v %+v", line, g, full, w, want.Rec)
	}
	return got.Rec.Partial()
}

// TestIsBlank: the first-byte shortcut agrees with the full rule (Python's
// str.isspace plus \x1c..\x1f over valid UTF-8) for every first byte.
func TestIsBlank(t *testing.T) {
	ref := func(b []byte) bool {
		return utf8.Valid(b) && strings.TrimFunc(string(b), func(r rune) bool {
			return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f
		}) == ""
	}
	for c := range 256 {
		for _, tail := range []string{"", " ", "\u00a0", "x", "\xff"} {
			b := append([]byte{byte(c)}, tail...)
			if got, want := isBlank(b), ref(b); got != want {
				t.Errorf("isBlank(%q) = %v, want %v", b, got, want)
			}
		}
	}
	for _, s := range []string{"", " \t\r\v\f", "\u0085\u00a0\u2028\u3000", "\x1c\x1d\x1e\x1f", " {", "\u3000x"} {
		if got, want := isBlank([]byte(s)), ref([]byte(s)); got != want {
			t.Errorf("isBlank(%q) = %v, want %v", s, got, want)
		}
	}
}
