// Package oplogtest makes mutation records for tests.
package oplogtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-backup/strata/oplog"
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
