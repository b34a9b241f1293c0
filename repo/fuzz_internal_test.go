package repo

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
)

func fuzzRepo() *Repository {
	var mk masterKey
	copy(mk[:], bytes.Repeat([]byte{7}, 32))
	return newRepository(nil, Config{Compression: CompressionAuto}, mk, Options{})
}

// FuzzPackHeader: a pack header that authenticates (the fuzzer writes its
// plaintext) must still be parsed defensively: no panic, and every accepted
// entry lies inside the pack.
func FuzzPackHeader(f *testing.F) {
	good := appendHeaderEntry(nil, index.Blob{ID: chunk.ID{1}, Length: 100, RawLength: 80})
	f.Add(good, int64(100))
	f.Add(good[:40], int64(100))
	f.Add(append(good, good...), int64(150))
	r := fuzzRepo()
	f.Fuzz(func(t *testing.T, hdr []byte, blobBytes int64) {
		if blobBytes < 0 || blobBytes > 1<<20 {
			return
		}
		sealed := r.crypt.seal(nil, hdr, packHeaderAD)
		pack := append(make([]byte, blobBytes), sealed...)
		pack = binary.LittleEndian.AppendUint32(pack, uint32(len(sealed)))
		blobs, err := r.parsePackHeader(pack, int64(len(pack)))
		if err != nil {
			return
		}
		var end int64
		for _, b := range blobs {
			if int64(b.Offset) != end || b.Type > index.TreeBlob {
				t.Fatalf("bad entry accepted: %+v", b)
			}
			end += int64(b.Length)
		}
		if end != blobBytes {
			t.Fatalf("entries cover %d bytes of %d", end, blobBytes)
		}
	})
}

// FuzzOpenObject: damaged or hostile stored objects fail cleanly.
func FuzzOpenObject(f *testing.F) {
	r := fuzzRepo()
	f.Add(r.sealObject([]byte(`{"a":1}`), "snapshots"))
	f.Add(r.sealObject(bytes.Repeat([]byte("x"), 1000), "index"))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, stored []byte) {
		_, _ = r.openObject(stored, "snapshots")
		_, _ = r.openObject(stored, "index")
	})
}

// FuzzKeyFile: key files are plaintext JSON anyone with bucket access can
// write; parsing must never panic or accept absurd KDF costs.
func FuzzKeyFile(f *testing.F) {
	stored, err := newKeyFile(masterKey{1}, "pw")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(stored)
	f.Add([]byte(`{"kdf":"argon2id","time":1,"memory_kib":8,"threads":1,"salt":"","data":""}`))
	f.Add([]byte(`{"kdf":"argon2id","time":1,"memory_kib":99999999,"threads":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		t.Setenv(TestKDFEnv, "1")
		_, kf, err := openKeyFile(b, "pw")
		if err == nil && kf.MemoryKiB > 4<<20 {
			t.Fatal("accepted a KDF memory cost over 4 GiB")
		}
	})
}

// FuzzBlob: a sealed blob whose payload the fuzzer chose decodes or fails,
// never panics, and never returns plaintext that does not hash to its id.
func FuzzBlob(f *testing.F) {
	r := fuzzRepo()
	f.Add([]byte("hello"), true, uint32(5))
	f.Add(zstdEncode(nil, bytes.Repeat([]byte("ab"), 500), CompressionAuto), true, uint32(1000))
	f.Fuzz(func(t *testing.T, payload []byte, compressed bool, raw uint32) {
		if raw > 1<<22 {
			return
		}
		sealed := r.crypt.seal(nil, payload, blobAD)
		b := index.Blob{ID: r.hasher.Sum(payload), Compressed: compressed, RawLength: raw, Length: uint32(len(sealed))}
		plain, err := r.openBlob(nil, b, sealed)
		if err == nil && r.hasher.Sum(plain) != b.ID {
			t.Fatal("returned plaintext that does not hash to the blob id")
		}
	})
}
