package oplog_test

import (
	"testing"

	"github.com/strata-backup/strata/oplog"
)

// FuzzDecodeSegment: a segment's plaintext comes from storage (authentic,
// but written by any strata version, or by a bug). No input may panic; an
// accepted segment's header agrees with its records, the records are in
// continuity, and it re-encodes to a segment that decodes to the same.
func FuzzDecodeSegment(f *testing.F) {
	const rec1 = `{"lsn":1,"ts":"2026-03-01T00:00:01Z","tier":"warm","op":"delete","kind":"node","id":"a"}`
	const rec2 = `{"lsn":2,"ts":"2026-03-01T00:00:02Z","tier":"warm","op":"upsert","record":{"type":"node","id":"b","labels":["P"],"properties":{"v":1.5}}}`
	const rec9 = `{"lsn":9,"prev_lsn":2,"ts":"2026-03-01T00:00:03Z","tx":"t","tx_end":true,"tier":"warm","op":"delete","kind":"node","id":"c"}`
	hdr := `{"generation":1,"level":0,"first_lsn":1,"last_lsn":9,"first_ts":"2026-03-01T00:00:01Z","last_ts":"2026-03-01T00:00:03Z","records":3,"prev":"","sealed_at":"2026-03-01T00:01:00Z"}`
	f.Add([]byte(hdr + "\n" + rec1 + "\n" + rec2 + "\n" + rec9 + "\n"))
	f.Add([]byte(`{"generation":2,"level":1,"first_lsn":2,"last_lsn":2,"records":1,"prev":"","tail":"x","parent":{"generation":1,"lsn":1}}` + "\n" + rec2 + "\n"))
	f.Add([]byte(hdr + "\n" + rec2 + "\n" + rec1 + "\n"))
	f.Add([]byte(hdr + "\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, plain []byte) {
		h, recs, err := oplog.DecodeSegment(plain)
		if err != nil {
			return
		}
		if len(recs) == 0 || h.Records != len(recs) || h.FirstLSN != recs[0].LSN || h.LastLSN != recs[len(recs)-1].LSN {
			t.Fatalf("header %+v does not describe its %d records", h, len(recs))
		}
		for i := 1; i < len(recs); i++ {
			r, p := recs[i], recs[i-1]
			if r.LSN <= p.LSN || (r.HasPrev && r.PrevLSN != p.LSN) || (!r.HasPrev && r.LSN != p.LSN+1) {
				t.Fatalf("lsn %d accepted after lsn %d", r.LSN, p.LSN)
			}
		}
		enc, err := oplog.EncodeSegment(h, recs)
		if err != nil {
			t.Fatal(err)
		}
		h2, recs2, err := oplog.DecodeSegment(enc)
		if err != nil {
			t.Fatalf("re-encoded segment rejected: %v\n%s", err, enc)
		}
		if h2.FirstLSN != h.FirstLSN || h2.LastLSN != h.LastLSN || len(recs2) != len(recs) {
			t.Fatalf("round trip changed the header: %+v, then %+v", h, h2)
		}
		for i := range recs {
			if !oplog.Same(recs[i], recs2[i]) {
				t.Fatalf("round trip changed lsn %d", recs[i].LSN)
			}
		}
	})
}
