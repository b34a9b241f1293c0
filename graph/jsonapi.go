package graph

// The JSON string rules of the canonical form, for packages whose lines are
// not graph records (the oplog) but must encode and decode strings exactly
// as records do: UTF-8 kept, lone surrogates held as WTF-8.

// AppendJSONString appends s as a canonical JSON string literal.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, []byte(s)) }

// DecodeJSONString decodes raw, which must be exactly one JSON string
// literal (quotes included), keeping a lone surrogate as WTF-8 where
// encoding/json would replace it.
func DecodeJSONString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	var c canonicalizer
	c.in = raw
	dec, ok := c.decodeString(1, 1)
	if !ok || c.pos != len(raw) {
		return "", false
	}
	return string(dec), true
}

// ValidTierName reports whether s is a tier name: [A-Za-z0-9][A-Za-z0-9._-]*
// (tier names become file names on restore).
func ValidTierName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}
