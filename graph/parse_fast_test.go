package graph

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// fastCases are lines near the edges of what parseFast takes.
var fastCases = []string{
	`{"type":"node","id":"42","labels":["Person"],"properties":{"name":"Ada"}}`,
	`{"id":"42","labels":["Person"],"properties":{"name":"Ada"},"type":"node"}`,
	`{"type":"node","id":"42"}`,
	`{"type":"node","id":"42","labels":[]}`,
	`{"type":"node","id":"42","labels":[],"properties":{}}`,
	`{"type":"node","id":"42","labels":["A","B","A"],"properties":{"b":1,"a":[1,{"d":2,"c":3}],"c":{"z":1,"y":2}}}`,
	`{"type":"node","id":"","labels":["Person"]}`,
	`{"type":"node","id":42}`,
	`{"type":"node","id":"42","labels":"Person"}`,
	`{"type":"node","id":"42","labels":["Person",1]}`,
	`{"type":"node","id":"42","labels":[""]}`,
	`{"type":"node","id":"42","properties":[]}`,
	`{"type":"node","id":"42","properties":null}`,
	`{"type":"node","id":"42","properties":{"a":1,"a":2}}`,
	`{"type":"node","id":"42","properties":{"a":1e400,"b":-0,"c":0.0000001,"d":1.50}}`,
	`{"type":"node","id":"42","properties":{"a":"\u00e9\ud800","b":"x\ny"}}`,
	`{"type":"node","id":"42","properties": {"a" : 1 } }`,
	`{"type":"node","id":"42","properties":{"a":1}} `,
	` {"type":"node","id":"42"}`,
	`{"type":"node","id":"42","type":"node"}`,
	`{"type":"node","id":"4\u0032"}`,
	`{"type":"node","id":"42","label":"X"}`,
	`{"type":"node","id":"42","start":{"id":"1"}}`,
	`{"type":"node","id":"42","extra":true}`,
	`{"type":"nodes","id":"42"}`,
	`{"type":"detach","id":"42"}`,
	`{"type":"node","id":"42","tombstone":true}`,
	`{"id":"X","tombstone":true,"type":"node"}`,
	`{"type":"node","id":"42","properties":{"a":` + strings.Repeat("[", 998) + strings.Repeat("]", 998) + `}}`,
	`{"type":"node","id":"42","properties":{"a":` + strings.Repeat("[", 999) + strings.Repeat("]", 999) + `}}`,
	`{"type":"node","id":"42","properties":{"a":1}`,
	`{"type":"node","id":"42",}`,
	`{"type":"node","id":"42"}}`,
	`{"type":"node","id":"42","labels":["Person"],"properties":{"name":"Ada"},"labels":["X"]}`,
	`{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42","labels":["Person"]},"end":{"id":"43","labels":["Person"]}}`,
	`{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42","labels":["Person"]},"end":{"id":"43","labels":["Person"]},"properties":{"since":1833,"a":{}}}`,
	`{"end":{"id":"43"},"id":"7","label":"KNOWS","properties":{},"start":{"id":"42"},"type":"relationship"}`,
	`{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42","labels":[]},"end":{"id":"43"}}`,
	`{"type":"relationship","id":"7","label":"KNOWS","start":{"labels":["Person"],"id":"42"},"end":{"id":"43"}}`,
	`{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42","labels":["Person"],"x":1},"end":{"id":"43"}}`,
	`{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"","labels":["Person"]},"end":{"id":"43"}}`,
	`{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42","labels":[1]},"end":{"id":"43"}}`,
	`{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42"},"end":"43"}`,
	`{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42"}}`,
	`{"type":"relationship","id":"7","label":"","start":{"id":"42"},"end":{"id":"43"}}`,
	`{"type":"relationship","id":"7","start":{"id":"42"},"end":{"id":"43"}}`,
	`{"type":"relationship","id":"7","label":"KNOWS","labels":["X"],"start":{"id":"42"},"end":{"id":"43"}}`,
	`{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42"},"end":{"id":"43"},"properties":"x"}`,
	`{"type":"relationship","id":"7","label":"K\"S","start":{"id":"42"},"end":{"id":"43"}}`,
	`{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42"},"end":{"id":"43"},"start":{"id":"42"}}`,
	`{"type":"relationship","id":"ü","label":"李","start":{"id":"😀","labels":["é"]},"end":{"id":"\u2028"}}`,
}

// fastChecker checks that parseFast, when it takes a line, gives exactly
// what the general path gives, and that parse always does. Its readers go
// on from line to line, as a stream's do (their intern tables fill up).
type fastChecker struct {
	// fast, general and full readers, without and with tombstones
	readers [2][3]Reader
	taken   int // lines parseFast took, so that a test knows it compared some
}

// newFastChecker returns a checker whose readers allocate records from
// slabs (as a stream's Reader does) if arena is set.
func newFastChecker(arena bool) *fastChecker {
	fc := &fastChecker{}
	for i := range fc.readers {
		for j := range fc.readers[i] {
			fc.readers[i][j].tombstones, fc.readers[i][j].ext.mem.on = i == 1, arena
		}
	}
	return fc
}

func (fc *fastChecker) check(t *testing.T, line []byte) {
	t.Helper()
	line = trimEOL(line)
	if len(line) > maxLine || !utf8.Valid(line) || isBlank(line) {
		return
	}
	for i := range fc.readers {
		fast, general, full := &fc.readers[i][0], &fc.readers[i][1], &fc.readers[i][2]
		want, wantReason := general.parseGeneral(line)
		rec, ok := fast.parseFast(line)
		if ok && (wantReason != "" || !reflect.DeepEqual(rec, want)) {
			t.Fatalf("line %q (tombstones %v):\nfast    %+v\ngeneral %+v %q", line, i == 1, rec, want, wantReason)
		}
		if ok && i == 0 {
			fc.taken++
		}
		if rec, reason := full.parse(line); reason != wantReason || !reflect.DeepEqual(rec, want) {
			t.Fatalf("line %q (tombstones %v):\nparse   %+v %q\ngeneral %+v %q", line, i == 1, rec, reason, want, wantReason)
		}
	}
}

// TestParseFast compares the fast path with the general one on its edge
// cases, on random awkward lines and on a generated graph.
func TestParseFast(t *testing.T) {
	fc := newFastChecker(true)
	for _, l := range fastCases {
		fc.check(t, []byte(l))
	}
	t.Logf("parseFast took %d of %d edge cases", fc.taken, len(fastCases))
	if fc.taken < 12 {
		t.Errorf("parseFast took only %d of the edge cases", fc.taken)
	}
	g := newRandGen(11)
	for range 3000 {
		fc.check(t, []byte(g.line(50, 50)))
	}
	data, err := smallBenchGraph()
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	fc.taken = 0
	for _, l := range lines {
		fc.check(t, l)
	}
	if fc.taken != len(lines) {
		t.Errorf("parseFast took only %d of %d generated lines", fc.taken, len(lines))
	}
}

// FuzzParseFast: whatever parseFast takes, the general path parses the same.
func FuzzParseFast(f *testing.F) {
	for _, l := range fastCases {
		f.Add([]byte(l))
	}
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Without slabs: they would cost each input ~1 MiB.
		fc := newFastChecker(false)
		for _, l := range bytes.Split(data, []byte("\n")) {
			fc.check(t, l)
		}
	})
}
