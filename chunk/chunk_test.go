package chunk_test

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/strata-backup/strata/chunk"
)

func TestChunkerReassembles(t *testing.T) {
	data := randomBytes(1, 5<<20)
	p := chunk.DefaultParams(0x3DA3358B4DC173)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	c := chunk.NewChunker(bytes.NewReader(data), p)
	var out []byte
	n := 0
	for {
		ch, err := c.Next(make([]byte, 0, p.MaxSize))
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if uint(len(ch)) > p.MaxSize {
			t.Fatalf("chunk of %d bytes exceeds max %d", len(ch), p.MaxSize)
		}
		out = append(out, ch...)
		n++
	}
	if !bytes.Equal(out, data) || n < 2 {
		t.Fatalf("%d chunks do not reassemble the input", n)
	}
}

func TestKeyedIDs(t *testing.T) {
	a, b := chunk.NewHasher([32]byte{1}), chunk.NewHasher([32]byte{2})
	if a.Sum([]byte("x")) == b.Sum([]byte("x")) {
		t.Error("different keys give the same blob id")
	}
	if a.Sum([]byte("x")) != a.Sum([]byte("x")) {
		t.Error("blob id is not deterministic")
	}
	if a.Sum([]byte("x")) == chunk.ObjectID([]byte("x")) {
		t.Error("keyed id equals the unkeyed object id")
	}
}

func TestParamsJSON(t *testing.T) {
	p := chunk.DefaultParams(0x3DA3358B4DC173)
	b, _ := json.Marshal(p)
	if !bytes.Contains(b, []byte(`"polynomial":"3da3358b4dc173"`)) {
		t.Errorf("polynomial not hex in %s", b)
	}
	var q chunk.Params
	if err := json.Unmarshal(b, &q); err != nil || q != p {
		t.Errorf("round trip: %+v %v", q, err)
	}
}

func TestParamsValidate(t *testing.T) {
	const pol = 0x3DA3358B4DC173
	for _, c := range []struct {
		p    chunk.Params
		want string // in the error; "" for valid
	}{
		{chunk.DefaultParams(pol), ""},
		{chunk.Params{Polynomial: pol, MinSize: 64, MaxSize: 64, AverageBits: 10}, ""},
		{chunk.Params{Polynomial: 12345, MinSize: 1 << 10, MaxSize: 2 << 10, AverageBits: 20}, "not an irreducible polynomial"},
		// restic/chunker's fingerprint needs MinSize >= its 64-byte window.
		{chunk.Params{Polynomial: pol, MinSize: 63, MaxSize: 1 << 10, AverageBits: 10}, "min (63)"},
		{chunk.Params{Polynomial: pol, MinSize: 0, MaxSize: 1 << 10, AverageBits: 10}, "min (0)"},
		{chunk.Params{Polynomial: pol, MinSize: 2 << 10, MaxSize: 1 << 10, AverageBits: 10}, "max (1024)"},
		{chunk.Params{Polynomial: pol, MinSize: 1 << 10, MaxSize: 2 << 10, AverageBits: 9}, "average bits 9"},
	} {
		err := c.p.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.p, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: got %v, want an error naming %q", c.p, err, c.want)
		}
	}
}

func FuzzParseID(f *testing.F) {
	f.Add("ab00000000000000000000000000000000000000000000000000000000000000")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := chunk.ParseID(s)
		if err == nil && id.String() != s && id.String() != bytesLower(s) {
			t.Fatalf("ParseID(%q) = %s", s, id)
		}
	})
}

func bytesLower(s string) string { return string(bytes.ToLower([]byte(s))) }
