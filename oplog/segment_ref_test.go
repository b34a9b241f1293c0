package oplog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// decodeSegmentRef is DecodeSegment as it was before the segment decoder
// and the fast parser, kept as the reference they must match.
func decodeSegmentRef(plain []byte) (Header, []*Record, error) {
	var h Header
	nl := bytes.IndexByte(plain, '\n')
	if nl < 0 || len(plain) == 0 || plain[len(plain)-1] != '\n' {
		return h, nil, errors.New("oplog segment: lines must end with \\n")
	}
	dec := json.NewDecoder(bytes.NewReader(plain[:nl]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, nil, fmt.Errorf("oplog segment header: %w", err)
	}
	body := plain[nl+1:]
	br := bufio.NewReaderSize(bytes.NewReader(body), min(len(body), 256<<10))
	v := NewValidator()
	line := 0
	next := func() (*Record, error) {
		for {
			b, err := br.ReadBytes('\n')
			if len(b) == 0 && err != nil {
				return nil, err
			}
			line++
			b = []byte(strings.TrimRight(string(b), "\r\n"))
			if isBlank(b) {
				continue
			}
			rec, reason := parseRecordRef(b)
			if reason != "" {
				return nil, &Error{Line: line, Reason: reason}
			}
			rec.Line = line
			if err := v.Check(rec); err != nil {
				return nil, err
			}
			return rec, nil
		}
	}
	var recs []*Record
	for {
		r, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				e.Line++ // the header is line 1
			}
			return h, nil, fmt.Errorf("oplog segment: %w", err)
		}
		if r.Time.Compare(r.Eff) != 0 {
			return h, nil, fmt.Errorf("oplog segment: line %d: ts %s goes back in time", r.Line+1, r.TS)
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 || h.Records != len(recs) || h.FirstLSN != recs[0].LSN || h.LastLSN != recs[len(recs)-1].LSN {
		return h, nil, fmt.Errorf("oplog segment: header says %d records, lsn %d..%d; the segment holds %d", h.Records, h.FirstLSN, h.LastLSN, len(recs))
	}
	return h, recs, nil
}

// checkDecodeSame fails unless DecodeSegment and the reference agree on
// plain, and, where it decodes, its summary agrees with the records.
func checkDecodeSame(t *testing.T, plain []byte) {
	t.Helper()
	h, recs, err := DecodeSegment(plain)
	wh, wrecs, werr := decodeSegmentRef(plain)
	if fmt.Sprint(err) != fmt.Sprint(werr) {
		t.Fatalf("%q:\nerror %v\nwant  %v", plain, err, werr)
	}
	if !reflect.DeepEqual(h, wh) || !reflect.DeepEqual(recs, wrecs) {
		t.Fatalf("%q: decodes differently", plain)
	}
	if err != nil {
		return
	}
	sum, err := summarize(plain)
	if err != nil {
		t.Fatalf("%q: summary: %v", plain, err)
	}
	if !reflect.DeepEqual(sum.h, h) || !reflect.DeepEqual(sum.first, recs[0]) || !reflect.DeepEqual(sum.last, recs[len(recs)-1]) {
		t.Fatalf("%q: summary %+v %+v, records %+v %+v", plain, sum.first, sum.last, recs[0], recs[len(recs)-1])
	}
}

func segmentCorpus() []string {
	const rec1 = `{"lsn":1,"ts":"2026-03-01T00:00:01Z","tier":"warm","op":"delete","kind":"node","id":"a"}`
	const rec2 = `{"lsn":2,"ts":"2026-03-01T00:00:02Z","tier":"warm","op":"upsert","record":{"type":"node","id":"b","labels":["P"],"properties":{"v":1.5}}}`
	const rec9 = `{"lsn":9,"prev_lsn":2,"ts":"2026-03-01T00:00:03Z","tx":"t","tx_end":true,"tier":"warm","op":"delete","kind":"node","id":"c"}`
	hdr := `{"generation":1,"level":0,"first_lsn":1,"last_lsn":9,"first_ts":"2026-03-01T00:00:01Z","last_ts":"2026-03-01T00:00:03Z","records":3,"prev":"","sealed_at":"2026-03-01T00:01:00Z"}`
	return []string{
		hdr + "\n" + rec1 + "\n" + rec2 + "\n" + rec9 + "\n",
		hdr + "\n" + rec1 + "\r\n\n \n" + rec2 + "\r\r\n\t\n" + rec9 + "\n\n",
		hdr + "\n" + rec1 + "\n" + rec2 + "\n" + strings.Replace(rec9, "00:00:03", "00:00:00", 1) + "\n",
		hdr + "\n" + rec1 + "\n" + rec9 + "\n",
		hdr + "\n" + rec1 + "\n" + rec2 + "\n" + rec9,
		hdr + "\n" + rec1 + "\n" + rec2 + "\n{\n",
		hdr + " trailing\n" + rec1 + "\n" + rec2 + "\n" + rec9 + "\n",
		`{"generation":2,"level":1,"first_lsn":2,"last_lsn":2,"records":1,"prev":"","tail":"x","parent":{"generation":1,"lsn":1}}` + "\n" + rec2 + "\n",
		`{"generation":2,"level":1,"first_lsn":2,"last_lsn":2,"records":1,"prev":"","tail":"x","bogus":1}` + "\n" + rec2 + "\n",
		hdr + "\n" + rec2 + "\n" + rec1 + "\n",
		hdr + "\n",
		"\n",
		"",
	}
}

func TestDecodeSegmentMatchesReference(t *testing.T) {
	corpus := segmentCorpus()
	// Segments as strata writes them.
	f := newSegFixture(t, 1)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var recs []*Record
	for i := range 50 {
		extra := ""
		switch i % 4 {
		case 1:
			extra = `"tx":"t` + fmt.Sprint(i/4) + `",`
		case 2:
			extra = `"tx":` + fmt.Sprint(i/4) + `,"tx_end":true,`
		}
		recs = append(recs, f.rec(uint64(i+1), start.Add(time.Duration(i)*time.Second), extra))
	}
	for _, n := range []int{1, 2, 50} {
		plain, err := EncodeSegment(Header{Generation: 1, Prev: "p", SealedAt: "2026-03-01T00:00:00Z"}, recs[:n])
		if err != nil {
			t.Fatal(err)
		}
		corpus = append(corpus, string(plain))
	}
	for _, c := range corpus {
		checkDecodeSame(t, []byte(c))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"\n", "\r", " ", "{", "}", `"`, ",", "0", "1", "9", "-", "Z", "x", `\u00e9`, "\xff"}
	for i := range 5000 {
		b := []byte(corpus[rng.IntN(len(corpus))])
		for range 1 + rng.IntN(3) {
			pos := rng.IntN(len(b) + 1)
			switch rng.IntN(3) {
			case 0:
				b = append(b[:pos:pos], append([]byte(alphabet[rng.IntN(len(alphabet))]), b[pos:]...)...)
			case 1:
				if pos < len(b) {
					b = append(b[:pos:pos], b[pos+1:]...)
				}
			case 2:
				if pos < len(b) {
					b = append(b[:pos:pos], append([]byte(alphabet[rng.IntN(len(alphabet))]), b[pos+1:]...)...)
				}
			}
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkDecodeSame(t, b) })
	}
}

func FuzzDecodeSegmentMatchesReference(f *testing.F) {
	for _, c := range segmentCorpus() {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, plain []byte) { checkDecodeSame(t, plain) })
}
