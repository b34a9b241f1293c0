package graph_test

import (
	"testing"

	"github.com/strata-backup/strata/graph"
)

func TestJSONStrings(t *testing.T) {
	tests := []struct {
		raw  string
		want string
		ok   bool
	}{
		{`"plain"`, "plain", true},
		{`"caf\u00e9 \ud83d\ude00 \"q\" \\ \n"`, "café 😀 \"q\" \\ \n", true},
		{`"\ud800"`, "\xed\xa0\x80", true}, // lone surrogate kept as WTF-8
		{`"unterminated`, "", false},
		{`"a" `, "", false},
		{`5`, "", false},
	}
	for _, tc := range tests {
		got, ok := graph.DecodeJSONString([]byte(tc.raw))
		if ok != tc.ok || got != tc.want {
			t.Errorf("DecodeJSONString(%s) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
			continue
		}
		if ok {
			back, ok := graph.DecodeJSONString(graph.AppendJSONString(nil, got))
			if !ok || back != got {
				t.Errorf("round trip of %q gave %q", got, back)
			}
		}
	}
	for name, want := range map[string]bool{"warm": true, "t1.b_c-d": true, "": false, ".x": false, "a/b": false, "a b": false} {
		if graph.ValidTierName(name) != want {
			t.Errorf("ValidTierName(%q) != %v", name, want)
		}
	}
}
