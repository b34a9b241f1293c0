package graph

import (
	"bytes"
	"io"
)

// A stored stream (a tier's base or delta layer in the repository) is
// canonical lines that WriteLines wrote and the repository authenticated
// blob by blob. Reading it back for a merge (restore, Apply, Diff, a log
// replay) needs each record's key and its line, not its parsed labels and
// properties: the line goes out as it came in. Parsing every line in full
// was a third of the CPU of a graph restore.
//
// So NewStoredLineIterator takes a line's key from its canonical shape,
// which the canonical member order fixes:
//
//	{"id":"42",...,"type":"node"}                   a node ("labels", "properties" follow the id)
//	{"end":{"id":"43"[,"labels":[...]]},"id":"7","label":...,"start":{"id":"42"[,"labels":[...]]},"type":"relationship"}
//	{"id":"42","tombstone":true,"type":"node"}      a tombstone (or "relationship")
//	{"id":"42","type":"detach"}                     a detach line
//
// It reads the id and the endpoint ids as written when they hold no
// escape (their text is then their value) and checks the shape around
// them exactly; a line of any other shape (an escaped id, an endpoint
// object with more members) goes to the full strict parse, which decides.
// It does not re-check what lies between the keys (labels, properties):
// the stream is what strata wrote. Records of live nodes and relationships
// are partial (Record.Partial): a consumer that needs their other fields
// (the Checker, WriteNeo4jCSV) completes them with LineParser.Full.

// NewStoredLineIterator reads a stored canonical stream (see above):
// records carry Kind, ID, Tombstone, StartID, EndID, Line and Canonical.
// Closing the iterator does not close r.
func NewStoredLineIterator(r io.Reader, tier string) Iterator {
	rd := NewReader(r, tier)
	rd.tombstones, rd.strict, rd.keysOnly = true, true, true
	return lineIter{rd}
}

// NewBorrowedLineIterator is NewStoredLineIterator for consumers that
// hold no record past their next Next call (Apply, Diff, WriteLines): a
// record is valid only until then, for its Canonical is the reader's
// buffer and the record itself is reused. Copying every line and
// allocating every record was most of the cost of reading a stored stream
// for a merge.
func NewBorrowedLineIterator(r io.Reader, tier string) Iterator {
	rd := NewReader(r, tier)
	rd.tombstones, rd.strict, rd.keysOnly, rd.borrow = true, true, true, true
	return lineIter{rd}
}

const (
	sfxNode   = `,"type":"node"}`
	sfxRel    = `,"type":"relationship"}`
	sfxDetach = `,"type":"detach"}`
	tombMark  = `,"tombstone":true`
)

// parseKeys returns the partial record of a canonical line, or false to
// leave the line to the full parse.
func (r *Reader) parseKeys(line []byte) (*Record, bool) {
	if len(line) > maxLine {
		return nil, false
	}
	var kind Kind
	var body []byte // the line without its "type" member and closing brace
	switch {
	case bytes.HasSuffix(line, []byte(sfxNode)):
		kind, body = KindNode, line[:len(line)-len(sfxNode)]
	case bytes.HasSuffix(line, []byte(sfxRel)):
		kind, body = KindRelationship, line[:len(line)-len(sfxRel)]
	case bytes.HasSuffix(line, []byte(sfxDetach)):
		kind, body = KindDetach, line[:len(line)-len(sfxDetach)]
	default:
		return nil, false
	}
	x := &r.ext
	if bytes.HasPrefix(body, []byte(`{"id":"`)) {
		j, ok := plainString(body, len(`{"id":"`))
		if !ok {
			return nil, false
		}
		id, rest := body[len(`{"id":"`):j], body[j+1:]
		tomb := string(rest) == tombMark
		switch {
		case kind == KindDetach && len(rest) == 0, kind != KindDetach && tomb:
		case kind == KindNode && (len(rest) == 0 || bytes.HasPrefix(rest, []byte(`,"labels":[`)) ||
			bytes.HasPrefix(rest, []byte(`,"properties":{`))):
		default:
			return nil, false
		}
		rec := r.newKeyRecord(line)
		rec.Kind, rec.ID, rec.Tombstone = kind, x.mem.string(id), tomb || kind == KindDetach
		rec.partial = !rec.Tombstone
		return rec, true
	}
	if kind != KindRelationship || !bytes.HasPrefix(body, []byte(`{"end":{"id":"`)) {
		return nil, false
	}
	i := len(`{"end":{"id":"`)
	j, ok := plainString(body, i)
	if !ok {
		return nil, false
	}
	endID := body[i:j]
	if i, ok = endpointTail(body, j+1); !ok || !bytes.HasPrefix(body[i:], []byte(`,"id":"`)) {
		return nil, false
	}
	i += len(`,"id":"`)
	if j, ok = plainString(body, i); !ok {
		return nil, false
	}
	id := body[i:j]
	if !bytes.HasPrefix(body[j+1:], []byte(`,"label":"`)) {
		return nil, false // a relationship has a type
	}
	// The top-level "start" is the last member before "type": its opening
	// is the last `,"start":{"id":"` of the line unless the start object
	// itself holds another, which the exact end check below refuses.
	s := len(body)
	for {
		// Back from the end, comma by comma: the start object is short,
		// and bytes.LastIndex would hash its way over the whole line.
		if s = bytes.LastIndexByte(body[:s], ','); s <= j {
			return nil, false
		}
		if bytes.HasPrefix(body[s:], []byte(`,"start":{"id":"`)) {
			break
		}
	}
	i = s + len(`,"start":{"id":"`)
	if j, ok = plainString(body, i); !ok {
		return nil, false
	}
	startID := body[i:j]
	if i, ok = endpointTail(body, j+1); !ok || i != len(body) {
		return nil, false
	}
	rec := r.newKeyRecord(line)
	all := x.mem.string(id, startID, endID)
	n1, n2 := len(id), len(id)+len(startID)
	rec.Kind, rec.partial = KindRelationship, true
	rec.ID, rec.StartID, rec.EndID = all[:n1], all[n1:n2], all[n2:]
	return rec, true
}

// newKeyRecord returns the record for a line parsed by its keys, with
// Canonical set: the reused one and the line itself when borrowing, else
// a copy from the arena.
func (r *Reader) newKeyRecord(line []byte) *Record {
	if r.borrow {
		r.cur = Record{Canonical: line}
		return &r.cur
	}
	rec := r.ext.mem.record()
	rec.Canonical = append(r.ext.mem.bytes(len(line)), line...)
	return rec
}

// plainString finds the closing quote of a string whose text starts at
// b[i]: false if the string is empty, holds an escape or a control
// character, or does not end.
func plainString(b []byte, i int) (int, bool) {
	j := scanPlain(b, i)
	return j, j > i && j < len(b) && b[j] == '"'
}

// endpointTail reads the rest of an endpoint object after its id, `}` or
// `,"labels":[strings]}`, and returns the offset after it.
func endpointTail(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	if !bytes.HasPrefix(b[i:], []byte(`,"labels":[`)) {
		return 0, false
	}
	i += len(`,"labels":[`)
	if i < len(b) && b[i] == ']' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			var ok bool
			if i, ok = endString(b, i+1); !ok || i >= len(b) {
				return 0, false
			}
			if b[i] == ']' {
				i++
				break
			}
			if b[i] != ',' {
				return 0, false
			}
			i++
		}
	}
	if i >= len(b) || b[i] != '}' {
		return 0, false
	}
	return i + 1, true
}

// endString returns the offset after the closing quote of a string whose
// text starts at b[i], escapes included.
func endString(b []byte, i int) (int, bool) {
	for {
		j := scanPlain(b, i)
		switch {
		case j >= len(b):
			return 0, false
		case b[j] == '"':
			return j + 1, true
		case b[j] == '\\':
			i = j + 2
		default: // a control character, which JSON allows only escaped
			return 0, false
		}
	}
}

// Partial reports whether rec carries only its key and line (a live
// record read by NewStoredLineIterator): Labels, Type and the endpoint
// labels are then unset, and LineParser.Full gives the whole record.
func (r *Record) Partial() bool { return r.partial }
