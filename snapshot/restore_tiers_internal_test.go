package snapshot

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/strata-backup/strata/graph"
)

// writerToState is a tier state that can only be written out whole.
type writerToState struct{}

func (writerToState) Next() (*graph.Record, error) {
	return nil, errors.New("read record by record")
}
func (writerToState) Close() error { return nil }
func (writerToState) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, "{\"id\":\"a\",\"type\":\"node\"}\n")
	return int64(n), err
}

// TestWriteStateWritesWhole: a restore writes a state that can be written
// out whole (a tier stored whole, storedTier) that way, not record by
// record; TestStoredTierWritesAsStored checks that such a tier is one.
func TestWriteStateWritesWhole(t *testing.T) {
	var b bytes.Buffer
	n, err := writeState(&b, writerToState{})
	if err != nil || n != int64(b.Len()) || b.String() != "{\"id\":\"a\",\"type\":\"node\"}\n" {
		t.Fatalf("writeState: %d bytes %q, %v", n, b.String(), err)
	}
}
