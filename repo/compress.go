package repo

import (
	"fmt"
	"runtime"

	"github.com/klauspost/compress/zstd"
)

// The encoders and the decoder are safe for concurrent EncodeAll/DecodeAll
// calls and keep their own pools of state, so one of each serves the process.
var (
	zstdFastest = mustEncoder(zstd.SpeedFastest)
	zstdBetter  = mustEncoder(zstd.SpeedBetterCompression)
	zstdDec     = mustDecoder()
)

func mustEncoder(level zstd.EncoderLevel) *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithEncoderCRC(false),
		// Blobs average about 1 MiB: a larger window finds no more matches
		// (measured on graph exports: the same ratio to 0.1%) and costs each
		// encoder 8 MiB more history.
		zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(err)
	}
	return e
}

func mustDecoder() *zstd.Decoder {
	// Blobs are at most a few MiB; a 64 MiB window cap refuses hostile
	// frames that ask for gigabytes.
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithDecoderMaxWindow(64<<20), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		panic(err)
	}
	return d
}

// zstdEncode appends the compressed form of src to dst.
func zstdEncode(dst, src []byte, mode string) []byte {
	if mode == CompressionMax {
		return zstdBetter.EncodeAll(src, dst)
	}
	return zstdFastest.EncodeAll(src, dst)
}

// zstdDecode appends the decompression of src to dst. want, when non-zero, is
// the expected plaintext length; a different length is corruption.
func zstdDecode(dst, src []byte, want int) ([]byte, error) {
	out, err := zstdDec.DecodeAll(src, dst)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	if want > 0 && len(out)-len(dst) != want {
		return nil, fmt.Errorf("decompress: got %d bytes, want %d", len(out)-len(dst), want)
	}
	return out, nil
}
