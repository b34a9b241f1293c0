// Package oplogtest makes mutation records for tests.
package oplogtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
)

// Records returns node upserts to tier warm with lsn from..to, one second
// apart from 2026-03-01T12:00:00Z; with deletes, every third lsn deletes
// the node the lsn before it upserted instead.
func Records(t testing.TB, from, to uint64, deletes bool) []*oplog.Record {
	t.Helper()
	var recs []*oplog.Record
	for lsn := from; lsn <= to; lsn++ {
		ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(lsn) * time.Second).Format(time.RFC3339)
		line := fmt.Sprintf(`{"lsn":%d,"ts":%q,"tier":"warm","op":"upsert","record":{"type":"node","id":"n%d","labels":["P"],"properties":{"v":%d}}}`, lsn, ts, lsn, lsn)
		if deletes && lsn%3 == 0 {
			line = fmt.Sprintf(`{"lsn":%d,"ts":%q,"tier":"warm","op":"delete","kind":"node","id":"n%d"}`, lsn, ts, lsn-1)
		}
		r, err := oplog.ParseRecord([]byte(line), int(lsn))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

// Segments appends n segments of per records each (Records from lsn first
// on) to generation gen of r's log and returns their keys.
func Segments(t testing.TB, r *repo.Repository, gen uint64, n, per int, first uint64, deletes bool) []string {
	t.Helper()
	ctx := context.Background()
	l, err := oplog.Open(ctx, r, gen)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for s := range n {
		from := first + uint64(s*per)
		key, err := l.Append(ctx, Records(t, from, from+uint64(per)-1, deletes))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	return keys
}
