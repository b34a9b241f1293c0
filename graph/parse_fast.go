package graph

// The fast path for the lines APOC writes (and for canonical lines):
//
//	{"type":"node","id":"42","labels":["Person"],"properties":{...}}
//	{"type":"relationship","id":"7","label":"KNOWS","start":{"id":"42","labels":["Person"]},"end":{"id":"43","labels":["Person"]},"properties":{...}}
//
// in any member order. It checks the top level itself, hands only the
// "properties" value to the canonicalizer, and writes the canonical line
// straight into the record's buffer in key order, so that the extractor
// need not find the members in the canonical text again.
//
// It accepts only what it can vouch for: compact text (no whitespace outside
// "properties"), the keys above once each, ids, labels and types as strings
// without escapes (whose raw text is then their canonical text and their
// decoded value), a "start"/"end" object exactly as {"id":"..."} or
// {"id":"...","labels":[...]}, and a record that satisfies every record
// rule. Anything else (an error included) returns false, and the general
// path parses the line from the start and decides, with graphref's reason.

// Members the fast path knows, as bits of fastLine.seen.
const (
	fastType = 1 << iota
	fastID
	fastLabels
	fastLabel
	fastStart
	fastEnd
	fastProps
)

// fastLine holds the parts of a line that the fast path found. Strings are
// spans of the line without their quotes; labels, start and end are the
// spans of their whole value text. The canonicalizer holds "properties".
type fastLine struct {
	seen               int
	typ, id, label     [2]int
	labels, start, end [2]int
	startID, endID     [2]int
	startLabs, endLabs [2]int // spans of the endpoints' label lists, [0,0] if none
	line               []byte
}

// parseFast returns the record of line, or false to leave the line to the
// general path. The line is valid UTF-8 and at most maxLine long.
func (r *Reader) parseFast(line []byte) (*Record, bool) {
	var f fastLine
	f.line = line
	c := &r.canon
	if len(line) < 2 || line[0] != '{' {
		return nil, false
	}
	i := 1
	for {
		// A key: one of the known ones, spelt without escapes. The byte
		// after the quote tells which it must be.
		if i+1 >= len(line) || line[i] != '"' {
			return nil, false
		}
		var key string
		var bit int
		switch line[i+1] {
		case 't':
			key, bit = `"type":`, fastType
		case 'i':
			key, bit = `"id":`, fastID
		case 'l':
			key, bit = `"label":`, fastLabel
			if i+6 < len(line) && line[i+6] == 's' {
				key, bit = `"labels":`, fastLabels
			}
		case 's':
			key, bit = `"start":`, fastStart
		case 'e':
			key, bit = `"end":`, fastEnd
		case 'p':
			key, bit = `"properties":`, fastProps
		default:
			return nil, false
		}
		if len(line)-i < len(key) || string(line[i:i+len(key)]) != key {
			return nil, false
		}
		i += len(key)
		var ok bool
		switch bit {
		case fastType:
			i, ok = fastString(line, i, &f.typ)
		case fastID:
			i, ok = fastString(line, i, &f.id)
		case fastLabel:
			i, ok = fastString(line, i, &f.label)
		case fastLabels:
			i, ok = fastStringList(line, i, &f.labels)
		case fastStart:
			i, ok = fastEndpoint(line, i, &f.start, &f.startID, &f.startLabs)
		case fastEnd:
			i, ok = fastEndpoint(line, i, &f.end, &f.endID, &f.endLabs)
		case fastProps:
			i, ok = r.fastProperties(line, i)
		}
		if !ok || f.seen&bit != 0 || i >= len(line) {
			return nil, false
		}
		f.seen |= bit
		if line[i] == ',' {
			i++
			continue
		}
		if line[i] != '}' || i+1 != len(line) {
			return nil, false
		}
		break
	}
	// The record rules, for the shapes the fast path builds; an empty id,
	// label or endpoint id is malformed and left to the general path.
	if f.seen&fastProps != 0 && c.out[0] != '{' {
		return nil, false
	}
	if f.id[1] == f.id[0] {
		return nil, false
	}
	switch string(line[f.typ[0]:f.typ[1]]) {
	case "node":
		if f.seen&^(fastLabels|fastProps) != fastType|fastID {
			return nil, false
		}
		return r.fastNode(&f), true
	case "relationship":
		if f.seen&^fastProps != fastType|fastID|fastLabel|fastStart|fastEnd ||
			f.label[1] == f.label[0] || f.startID[1] == f.startID[0] || f.endID[1] == f.endID[0] {
			return nil, false
		}
		return r.fastRelationship(&f), true
	}
	return nil, false
}

// fastString scans a string value without escapes at line[i]; span gets its
// content.
func fastString(line []byte, i int, span *[2]int) (int, bool) {
	if i >= len(line) || line[i] != '"' {
		return i, false
	}
	j := scanPlain(line, i+1)
	if j >= len(line) || line[j] != '"' {
		return i, false
	}
	*span = [2]int{i + 1, j}
	return j + 1, true
}

// fastStringList scans a compact array of strings without escapes at
// line[i]; span gets the array's text.
func fastStringList(line []byte, i int, span *[2]int) (int, bool) {
	start := i
	if i >= len(line) || line[i] != '[' {
		return i, false
	}
	i++
	if i < len(line) && line[i] == ']' {
		*span = [2]int{start, i + 1}
		return i + 1, true
	}
	for {
		var s [2]int
		var ok bool
		if i, ok = fastString(line, i, &s); !ok || i >= len(line) {
			return i, false
		}
		switch line[i] {
		case ',':
			i++
		case ']':
			*span = [2]int{start, i + 1}
			return i + 1, true
		default:
			return i, false
		}
	}
}

// fastEndpoint scans {"id":"..."} or {"id":"...","labels":[...]} at line[i],
// which is then canonical text as it stands.
func fastEndpoint(line []byte, i int, span, id, labels *[2]int) (int, bool) {
	const idKey, labelsKey = `{"id":`, `,"labels":`
	start := i
	if len(line)-i < len(idKey) || string(line[i:i+len(idKey)]) != idKey {
		return i, false
	}
	i, ok := fastString(line, i+len(idKey), id)
	if !ok {
		return i, false
	}
	if len(line)-i >= len(labelsKey) && string(line[i:i+len(labelsKey)]) == labelsKey {
		if i, ok = fastStringList(line, i+len(labelsKey), labels); !ok {
			return i, false
		}
	}
	if i >= len(line) || line[i] != '}' {
		return i, false
	}
	*span = [2]int{start, i + 1}
	return i + 1, true
}

// fastProperties parses the value at line[i] with the canonicalizer, which
// then holds it (the only value the fast path gives it) for appendTo.
func (r *Reader) fastProperties(line []byte, i int) (int, bool) {
	c := &r.canon
	c.in, c.pos = line, i
	c.out, c.spans, c.keys = c.out[:0], c.spans[:0], c.keys[:0]
	// The value is nested in the record object: depth 1, as the general
	// path counts it. Its members are still kept in c.spans, as the
	// outermost object's are (outer), so that appendTo writes them in
	// order straight into the record rather than object reordering them
	// in c.out first.
	c.depth, c.outer, c.reason, c.topSorted = 1, 1, "", true
	if !c.value() {
		return i, false
	}
	return c.pos, true
}

// fastAppend appends a member's canonical text: its key (with the comma
// before it, if any) and its value.
func fastAppend(dst []byte, key string, v []byte) []byte {
	dst = append(dst, key...)
	return append(dst, v...)
}

// fastNode builds a node record: {"id":..,"labels":..,"properties":..,"type":"node"}.
func (r *Reader) fastNode(f *fastLine) *Record {
	x, line := &r.ext, f.line
	id := line[f.id[0]-1 : f.id[1]+1] // with its quotes
	c := &r.canon
	var labels []byte
	if f.seen&fastLabels != 0 {
		labels = line[f.labels[0]:f.labels[1]]
	}
	n := len(`{"id":`) + len(id) + len(`,"type":"node"}`)
	if labels != nil {
		n += len(`,"labels":`) + len(labels)
	}
	if f.seen&fastProps != 0 {
		n += len(`,"properties":`) + len(c.out)
	}
	b := fastAppend(x.mem.bytes(n), `{"id":`, id)
	if labels != nil {
		b = fastAppend(b, `,"labels":`, labels)
	}
	if f.seen&fastProps != 0 {
		b = c.appendTo(append(b, `,"properties":`...))
	}
	b = append(b, `,"type":"node"}`...)
	rec := x.mem.record()
	rec.Kind, rec.Canonical = KindNode, b
	rec.ID = x.mem.string(id[1 : len(id)-1])
	if labels != nil {
		rec.Labels, _ = x.stringList(labels) // a list of strings, checked
	}
	return rec
}

// fastRelationship builds a relationship record:
// {"end":..,"id":..,"label":..,"properties":..,"start":..,"type":"relationship"}.
func (r *Reader) fastRelationship(f *fastLine) *Record {
	x, line := &r.ext, f.line
	id := line[f.id[0]-1 : f.id[1]+1]
	label := line[f.label[0]-1 : f.label[1]+1]
	start, end := line[f.start[0]:f.start[1]], line[f.end[0]:f.end[1]]
	c := &r.canon
	n := len(`{"end":`) + len(end) + len(`,"id":`) + len(id) + len(`,"label":`) + len(label) +
		len(`,"start":`) + len(start) + len(`,"type":"relationship"}`)
	if f.seen&fastProps != 0 {
		n += len(`,"properties":`) + len(c.out)
	}
	b := fastAppend(x.mem.bytes(n), `{"end":`, end)
	b = fastAppend(b, `,"id":`, id)
	b = fastAppend(b, `,"label":`, label)
	if f.seen&fastProps != 0 {
		b = c.appendTo(append(b, `,"properties":`...))
	}
	b = fastAppend(b, `,"start":`, start)
	b = append(b, `,"type":"relationship"}`...)
	rec := x.mem.record()
	rec.Kind, rec.Canonical = KindRelationship, b
	rec.Type = x.internType(label)
	if f.startLabs != [2]int{} {
		rec.StartLabels, _ = x.stringList(line[f.startLabs[0]:f.startLabs[1]])
	}
	if f.endLabs != [2]int{} {
		rec.EndLabels, _ = x.stringList(line[f.endLabs[0]:f.endLabs[1]])
	}
	// One string for the three ids.
	all := x.mem.string(id[1:len(id)-1], line[f.startID[0]:f.startID[1]], line[f.endID[0]:f.endID[1]])
	n1 := len(id) - 2
	n2 := n1 + f.startID[1] - f.startID[0]
	rec.ID, rec.StartID, rec.EndID = all[:n1], all[n1:n2], all[n2:]
	return rec
}
