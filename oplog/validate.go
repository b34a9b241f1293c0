package oplog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Validator checks continuity across records and clamps timestamps, as
// graphref's read_oplog does:
//
//   - a record with prev_lsn must follow the record with that lsn
//     ("expected prev_lsn X, got K"); one without must have the previous
//     lsn + 1 ("expected lsn X, got Y"). The first record may have any lsn.
//   - a ts before the previous record's effective ts is accepted, and the
//     record's effective ts (Eff, EffTS) becomes the previous one.
type Validator struct {
	prev *Record
	// Clamped counts the records whose ts was clamped; FirstClamped is the
	// first of them (after clamping: TS is its own ts, EffTS the clamp).
	Clamped      int
	FirstClamped *Record
}

// NewValidator returns a Validator for a log that starts with the next
// record checked.
func NewValidator() *Validator { return &Validator{} }

// Resume makes the next record continue after last (the stored tail):
// its lsn and effective ts.
func (v *Validator) Resume(last *Record) { v.prev = last }

// Last returns the last record accepted (or given to Resume), nil if none.
func (v *Validator) Last() *Record { return v.prev }

// Check validates r as the next record and sets its effective ts. On error
// (an *Error naming r.Line) r is not accepted and the state is unchanged.
func (v *Validator) Check(r *Record) error {
	if p := v.prev; p != nil {
		if r.HasPrev {
			if r.PrevLSN != p.LSN {
				return &Error{Line: r.Line, Reason: fmt.Sprintf("expected prev_lsn %d, got %d", p.LSN, r.PrevLSN)}
			}
		} else if r.LSN != p.LSN+1 {
			return &Error{Line: r.Line, Reason: fmt.Sprintf("expected lsn %d, got %d", p.LSN+1, r.LSN)}
		}
		if r.Time.Compare(p.Eff) < 0 {
			r.Eff, r.EffTS = p.Eff, p.EffTS
			v.Clamped++
			if v.FirstClamped == nil {
				v.FirstClamped = r
			}
		} else {
			r.Eff, r.EffTS = r.Time, r.TS
		}
	}
	v.prev = r
	return nil
}

// ClampWarning returns graphref's warning about clamped records, "" if none.
func (v *Validator) ClampWarning() string {
	if v.Clamped == 0 {
		return ""
	}
	e := v.FirstClamped
	s := "s"
	if v.Clamped == 1 {
		s = ""
	}
	return fmt.Sprintf("warning: %d record%s with a ts before the previous record's: effective ts clamped up to it (first: line %d, lsn %d, ts %s -> %s)",
		v.Clamped, s, e.Line, e.LSN, e.TS, e.EffTS)
}

// TxTracker groups records into transactions as graphref does: consecutive
// records with the same tx form one until a record carries tx_end (a later
// record with the same tx starts a new one); a record without tx is a
// transaction alone. A transaction is complete when tx_end closes it or a
// record of another transaction follows.
type TxTracker struct {
	started bool
	key     Tx
	closed  bool
}

// Add accounts for the next record. startsNew: r begins a new transaction,
// so the one before it (if any) is complete. closes: r completes its own
// transaction.
func (t *TxTracker) Add(r *Record) (startsNew, closes bool) {
	startsNew = !(t.started && r.Tx.Set && !t.closed && t.key == r.Tx)
	closes = !r.Tx.Set || r.TxEnd
	t.started, t.key, t.closed = true, r.Tx, closes
	return startsNew, closes
}

// Open reports whether the last transaction seen is not complete (an open
// trailing transaction if no record follows).
func (t *TxTracker) Open() bool { return t.started && !t.closed }

// Resend judges a record whose lsn is already stored: skip is true if it is
// the stored record again (at-least-once shipping), and err explains a
// refusal when its content differs. A re-sent ts earlier than the stored
// effective ts counts as equal when everything else is, since push clamps
// it to the stored value.
func Resend(incoming, stored *Record) (skip bool, err error) {
	if incoming.LSN != stored.LSN {
		return false, fmt.Errorf("lsn %d is not lsn %d", incoming.LSN, stored.LSN)
	}
	c := *incoming
	c.EffTS, c.Eff = c.TS, c.Time
	if Same(&c, stored) {
		return true, nil
	}
	if c.Time.Compare(stored.Eff) < 0 {
		c.EffTS, c.Eff = stored.EffTS, stored.Eff
		if Same(&c, stored) {
			return true, nil
		}
	}
	return false, &Error{Line: incoming.Line, Reason: fmt.Sprintf("lsn %d is already stored with different content", incoming.LSN)}
}

// Iterator is a stream of mutation records in lsn order.
type Iterator interface {
	// Next returns the next record, or io.EOF after the last one.
	Next() (*Record, error)
}

// Reader reads a mutation log in JSON Lines, parsing and validating every
// record (blank lines are skipped; lines end at \n, a trailing \r is
// dropped). The first problem is an *Error and ends the stream.
type Reader struct {
	br   *bufio.Reader
	line int
	v    *Validator
	err  error
}

// NewReader returns a Reader of r with a fresh Validator.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 256<<10), v: NewValidator()}
}

// Validator returns the reader's validator (clamp counts, the last record).
func (r *Reader) Validator() *Validator { return r.v }

// Next returns the next record, io.EOF at the end.
func (r *Reader) Next() (*Record, error) {
	for r.err == nil {
		b, err := r.br.ReadBytes('\n')
		if len(b) == 0 && err != nil {
			if !errors.Is(err, io.EOF) {
				err = fmt.Errorf("read oplog: %w", err)
			}
			r.err = err
			break
		}
		r.line++
		b = []byte(strings.TrimRight(string(b), "\r\n"))
		if isBlank(b) {
			continue
		}
		rec, perr := ParseRecord(b, r.line)
		if perr == nil {
			perr = r.v.Check(rec)
		}
		if perr != nil {
			r.err = perr
			return nil, perr
		}
		return rec, nil
	}
	return nil, r.err
}

// isBlank is Python's text.strip() == "" for a UTF-8 line (invalid UTF-8 is
// not blank: the parser names it).
func isBlank(b []byte) bool {
	// A line that starts with a printable ASCII byte is not blank (as
	// invalid UTF-8 or as holding a non-space), whatever follows: the
	// usual case, decided without reading the line.
	if len(b) > 0 && b[0] > ' ' && b[0] < utf8.RuneSelf {
		return false
	}
	if !utf8.Valid(b) {
		return false
	}
	return strings.TrimFunc(string(b), func(r rune) bool {
		return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f
	}) == ""
}
