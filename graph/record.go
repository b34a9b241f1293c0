// Package graph reads, canonicalises, sorts, checks and diffs graph tiers in
// the Neo4j APOC JSON Lines format, one record a line:
//
//	{"type":"node","id":"42","labels":["Person"],"properties":{"name":"Ada"}}
//	{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42","labels":["Person"]},"end":{"id":"43","labels":["Person"]}}
//
// The reference semantics are ../shared/tools/graphref.py: a record's
// canonical line is byte for byte what graphref writes for it, records are
// ordered nodes first, then by the UTF-8 bytes of the id, and the malformed
// line rules and reasons are graphref's. (Delta layers add tombstone and
// detach lines, which graphref does not know; see layer.go.)
//
// Everything here streams: the Reader holds one line, the Sorter and the
// Checker spill to temporary files beyond a memory limit, Diff and Apply merge
// sorted streams. Nothing holds a map of all ids.
//
// Strings decoded from JSON (ids, labels, types) are UTF-8, except that a lone
// surrogate, which JSON can spell as "\ud800" but UTF-8 cannot hold, is kept
// as its three-byte WTF-8 form (ED A0 80); byte order is then still code-point
// order, the order graphref sorts by.
package graph

import (
	"bytes"
	"strconv"
)

// Kind is the type of a record. Canonical order (Compare) is detach lines,
// then nodes, then relationships.
type Kind uint8

const (
	KindNode         Kind = 0
	KindRelationship Kind = 1
	// KindDetach is a detach line, which only a delta layer holds (see
	// NewDetach). Its value is 2 so that the zero Kind stays a node; its
	// place in the canonical order (first) is kindOrder's.
	KindDetach Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindNode:
		return "node"
	case KindRelationship:
		return "relationship"
	case KindDetach:
		return "detach"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// kindOrder is the kind's place in the canonical order: detach lines sort
// before nodes, so that Apply has read every layer's detach lines before the
// first relationship leaves the merge. (The Sorter orders by the Kind byte
// and its decoder takes only nodes and relationships: detach lines do not go
// through a Sorter; oplog.Replay writes them from memory.)
func kindOrder(k Kind) int {
	if k == KindDetach {
		return -1
	}
	return int(k)
}

// Record is one graph record. A Record returned by this package is owned by
// the caller, except for the string slices (Labels, StartLabels, EndLabels),
// which may be shared between records and must not be modified.
type Record struct {
	Kind Kind
	// ID is the record's id, decoded (see the package doc about surrogates).
	ID string
	// Labels are a node's labels in the order given (missing: nil).
	Labels []string
	// Type is a relationship's "label".
	Type string
	// StartID and EndID are a relationship's endpoints; StartLabels and
	// EndLabels the labels the relationship gives them (missing: nil).
	StartID, EndID         string
	StartLabels, EndLabels []string
	// Tombstone marks a deletion in a delta layer: Canonical is then
	// {"id":"X","tombstone":true,"type":"node"} and only Kind and ID are set.
	// A detach line (Kind KindDetach, see NewDetach) has Tombstone set too:
	// it is a layer-only record, and every reader of a state that refuses
	// tombstones (or skips them) so refuses (or skips) it as well, rather
	// than taking it for a node or a relationship.
	Tombstone bool
	// Line is the line number the record was read from (0 if unknown).
	Line int
	// Canonical is the record's canonical JSON line, without the newline.
	Canonical []byte
	// partial: only the key fields and Canonical are set (see Partial).
	partial bool
}

// Compare orders records canonically: detach lines (in a layer) before
// nodes before relationships, then by the bytes of the id. It returns -1, 0
// or +1.
func Compare(a, b *Record) int { return compareKey(a.Kind, a.ID, b.Kind, b.ID) }

func compareKey(ak Kind, aid string, bk Kind, bid string) int {
	if ak != bk {
		if kindOrder(ak) < kindOrder(bk) {
			return -1
		}
		return 1
	}
	switch {
	case aid < bid:
		return -1
	case aid > bid:
		return 1
	}
	return 0
}

// Key is a record's place in canonical order. A merge keeps the key of a
// record it has passed, not the record: that may be reused (see
// NewBorrowedLineIterator). The ID is a string, which the reader never
// changes once handed out.
type Key struct {
	Kind Kind
	ID   string
}

// KeyOf returns rec's key.
func KeyOf(rec *Record) Key { return Key{rec.Kind, rec.ID} }

// Compare compares k with rec's key, as Compare does two records.
func (k Key) Compare(rec *Record) int { return compareKey(k.Kind, k.ID, rec.Kind, rec.ID) }

// NewTombstone returns the tombstone record that deletes (kind, id). For
// KindDetach it is NewDetach(id).
func NewTombstone(kind Kind, id string) *Record {
	if kind == KindDetach {
		return NewDetach(id)
	}
	b := append([]byte(`{"id":`), appendString(nil, []byte(id))...)
	b = append(b, `,"tombstone":true,"type":"`...)
	b = append(b, kind.String()...)
	b = append(b, `"}`...)
	return &Record{Kind: kind, ID: id, Tombstone: true, Canonical: b}
}

// NewDetach returns the detach line of node id: {"id":"42","type":"detach"}.
// It says that the node was deleted, with detach semantics, during the
// interval the delta layer covers: Apply drops every relationship of an
// older input (the base or an older layer) that starts or ends at it, in
// any tier. A detach line is not a deletion of the node itself (the layer
// of the node's tier holds its tombstone, or its new record if it was
// created again) and is never part of a state.
func NewDetach(id string) *Record {
	b := append([]byte(`{"id":`), appendString(nil, []byte(id))...)
	b = append(b, `,"type":"detach"}`...)
	return &Record{Kind: KindDetach, ID: id, Tombstone: true, Canonical: b}
}

// SyntaxError is a malformed line: the tier and line it is in and the reason,
// worded as graphref.py words it.
type SyntaxError struct {
	Tier   string
	Line   int
	Reason string
}

func (e *SyntaxError) Error() string {
	if e.Tier == "" {
		return "line " + strconv.Itoa(e.Line) + ": " + e.Reason
	}
	return "tier " + e.Tier + ": line " + strconv.Itoa(e.Line) + ": " + e.Reason
}

// The reasons graphref.py's record_problem gives.
const (
	reasonNotObject  = "not a JSON object"
	reasonType       = `field "type" must be "node" or "relationship"`
	reasonID         = `field "id" must be a non-empty string`
	reasonProperties = `field "properties" must be an object`
	reasonLabels     = `field "labels" must be a list of strings`
	reasonRelLabel   = `relationship field "label" must be a non-empty string`
	// A layer's detach line (not a graphref reason: graphref has no layers).
	reasonDetach = `a detach line has exactly the fields "id" and "type"`
)

func reasonEndpoint(end string) string {
	return `relationship field "` + end + `" must be an object with a non-empty string "id"`
}

func reasonEndLabels(end string) string {
	return `field "` + end + `.labels" must be a list of strings`
}

// extractor turns a canonical line into a Record. It interns label lists and
// relationship types: graphs have few distinct ones, so sharing them saves an
// allocation or two per record. A small direct-mapped cache in front of the
// maps saves most of the hashing.
type extractor struct {
	// interned maps the canonical text of a label list ('[...]') or of a
	// type string ('"..."') to its decoded form.
	interned map[string]internEntry
	recent   [64]internEntry
	strs     []byte // scratch for the record's string fields
	scratch  []byte
	mem      arena // where records and their strings are allocated
}

type internEntry struct {
	text   string // the canonical text (the map key)
	labels []string
	typ    string
}

func (x *extractor) recentSlot(v []byte) *internEntry {
	n := len(v)
	h := uint(n)*131 + uint(v[n/2])*31 + uint(v[n-2])
	return &x.recent[h%uint(len(x.recent))]
}

// internLimit bounds the intern tables, should a graph have unboundedly many
// distinct labels.
const internLimit = 4096

// record checks the object c just canonicalised against graphref's record
// rules (record_problem, in its order) and builds the Record, or returns the
// reason it is malformed. With tombstones set (a delta layer), a line of
// exactly the tombstone form ({"id","tombstone":true,"type"}) yields a
// tombstone and a line {"id","type":"detach"} a detach line; without, type
// "detach" is malformed as any other unknown type is.
func (x *extractor) record(c *canonicalizer, tombstones bool) (*Record, string) {
	canon, ms := c.out, c.spans
	if len(canon) == 0 || canon[0] != '{' {
		return nil, reasonNotObject
	}
	var typ, id, props, labels, label, start, end, tomb []byte
	var hasProps, hasLabels bool
	for i := range ms {
		m := &ms[i]
		v := canon[m.val:m.end]
		// A key of up to 8 bytes is identified by its prefix and length;
		// longer ones need the rest compared.
		switch {
		case m.keyLen > 8:
			switch string(c.key(m)) {
			case "properties":
				props, hasProps = v, true
			case "tombstone":
				tomb = v
			}
		case m.prefix == pfxType && m.keyLen == 4:
			typ = v
		case m.prefix == pfxID && m.keyLen == 2:
			id = v
		case m.prefix == pfxLabels && m.keyLen == 6:
			labels, hasLabels = v, true
		case m.prefix == pfxLabel && m.keyLen == 5:
			label = v
		case m.prefix == pfxStart && m.keyLen == 5:
			start = v
		case m.prefix == pfxEnd && m.keyLen == 3:
			end = v
		}
	}
	var kind Kind
	switch string(typ) {
	case `"node"`:
		kind = KindNode
	case `"relationship"`:
		kind = KindRelationship
	case `"detach"`:
		if !tombstones {
			return nil, reasonType
		}
		kind = KindDetach
	default:
		return nil, reasonType
	}
	if len(id) < 3 || id[0] != '"' {
		return nil, reasonID
	}
	if kind == KindDetach {
		if len(ms) != 2 {
			return nil, reasonDetach
		}
		rec := x.mem.record()
		rec.Kind, rec.Tombstone, rec.ID = kind, true, x.mem.string(x.decode(id))
		return rec, ""
	}
	if tombstones && len(ms) == 3 && string(tomb) == "true" {
		rec := x.mem.record()
		rec.Kind, rec.Tombstone, rec.ID = kind, true, x.mem.string(x.decode(id))
		return rec, ""
	}
	if hasProps && props[0] != '{' {
		return nil, reasonProperties
	}
	if kind == KindNode {
		var l []string
		if hasLabels {
			var ok bool
			if l, ok = x.stringList(labels); !ok {
				return nil, reasonLabels
			}
		}
		rec := x.mem.record()
		rec.Kind, rec.Labels, rec.ID = kind, l, x.mem.string(x.decode(id))
		return rec, ""
	}
	if len(label) < 3 || label[0] != '"' {
		return nil, reasonRelLabel
	}
	startID, startLabels, reason := x.endpoint(start, "start")
	if reason != "" {
		return nil, reason
	}
	endID, endLabels, reason := x.endpoint(end, "end")
	if reason != "" {
		return nil, reason
	}
	rec := x.mem.record()
	rec.Kind = kind
	rec.StartLabels, rec.EndLabels = startLabels, endLabels
	rec.Type = x.internType(label)
	// One string for the three ids (decode reuses its scratch buffer, so
	// they are gathered in x.strs first).
	s := append(x.strs[:0], x.decode(id)...)
	n1 := len(s)
	s = append(s, x.decode(startID)...)
	n2 := len(s)
	s = append(s, x.decode(endID)...)
	x.strs = s
	all := x.mem.string(s)
	rec.ID, rec.StartID, rec.EndID = all[:n1], all[n1:n2], all[n2:]
	return rec, ""
}

var (
	pfxType   = keyPrefix([]byte("type"))
	pfxID     = keyPrefix([]byte("id"))
	pfxLabels = keyPrefix([]byte("labels"))
	pfxLabel  = keyPrefix([]byte("label"))
	pfxStart  = keyPrefix([]byte("start"))
	pfxEnd    = keyPrefix([]byte("end"))
)

// endpoint checks a relationship's "start" or "end" object and returns the
// canonical id string and the labels.
func (x *extractor) endpoint(v []byte, which string) ([]byte, []string, string) {
	if len(v) == 0 || v[0] != '{' {
		return nil, nil, reasonEndpoint(which)
	}
	// Fast path for APOC's {"id":...,"labels":[...]}, already in key order.
	if bytes.HasPrefix(v, []byte(`{"id":"`)) {
		j := skipString(v, 6)
		id := v[6:j]
		if len(id) < 3 {
			return nil, nil, reasonEndpoint(which)
		}
		if v[j] == '}' {
			return id, nil, ""
		}
		if bytes.HasPrefix(v[j:], []byte(`,"labels":`)) {
			labels, ok := x.stringList(v[j+10 : skipValue(v, j+10)])
			if !ok {
				return nil, nil, reasonEndLabels(which)
			}
			return id, labels, ""
		}
	}
	id, _ := objectField(v, `"id"`)
	if len(id) < 3 || id[0] != '"' {
		return nil, nil, reasonEndpoint(which)
	}
	lv, ok := objectField(v, `"labels"`)
	if !ok {
		return id, nil, ""
	}
	labels, ok := x.stringList(lv)
	if !ok {
		return nil, nil, reasonEndLabels(which)
	}
	return id, labels, ""
}

// decode returns the content of the canonical string literal v (quotes
// included), decoded; the result aliases v or x.scratch.
func (x *extractor) decode(v []byte) []byte {
	body := v[1 : len(v)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return body
	}
	var c canonicalizer
	c.in, c.dec = v, x.scratch[:0]
	dec, _ := c.decodeString(1, 1) // canonical text is valid
	x.scratch = dec
	return dec
}

func (x *extractor) internType(v []byte) string {
	e := x.recentSlot(v)
	if e.text != string(v) {
		if *e = x.interned[string(v)]; e.text == "" {
			*e = internEntry{text: string(v), typ: string(x.decode(v))}
			x.intern(e)
		}
	}
	return e.typ
}

func (x *extractor) intern(e *internEntry) {
	if x.interned == nil {
		x.interned = make(map[string]internEntry)
	}
	if len(x.interned) < internLimit {
		x.interned[e.text] = *e
	}
}

// stringList decodes a canonical JSON value that should be an array of
// strings; ok is false if it is not.
func (x *extractor) stringList(v []byte) ([]string, bool) {
	if v[0] != '[' {
		return nil, false
	}
	e := x.recentSlot(v)
	if e.text == string(v) {
		return e.labels, true
	}
	if *e = x.interned[string(v)]; e.text != "" {
		return e.labels, true
	}
	l := []string{}
	for i := 1; v[i] != ']'; {
		if v[i] != '"' {
			*e = internEntry{}
			return nil, false
		}
		j := skipString(v, i)
		l = append(l, string(x.decode(v[i:j])))
		i = j
		if v[i] == ',' {
			i++
		}
	}
	*e = internEntry{text: string(v), labels: l}
	x.intern(e)
	return l, true
}

// objectField returns the value of the member with the canonical key text
// key (quotes included) in the canonical object obj.
func objectField(obj []byte, key string) ([]byte, bool) {
	for i := 1; obj[i] != '}'; {
		k := skipString(obj, i)
		v := k + 1 // after ':'
		e := skipValue(obj, v)
		if string(obj[i:k]) == key {
			return obj[v:e], true
		}
		i = e
		if obj[i] == ',' {
			i++
		}
	}
	return nil, false
}

// skipString returns the offset after the (valid) string literal starting at
// b[i]: the first quote not escaped by an odd run of backslashes.
func skipString(b []byte, i int) int {
	for i++; ; {
		j := i + bytes.IndexByte(b[i:], '"')
		k := j
		for b[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j + 1
		}
		i = j + 1
	}
}

// skipValue returns the offset after the canonical (valid, compact) JSON
// value starting at b[i].
func skipValue(b []byte, i int) int {
	depth := 0
	for {
		switch b[i] {
		case '"':
			i = skipString(b, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
		if i == len(b) {
			return i
		}
	}
}
