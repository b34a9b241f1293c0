package graph

import "testing"

// BenchmarkReaderSmall is BenchmarkReader on a tenth of the data: small
// enough to count its instructions with valgrind --tool=cachegrind where
// timing is too noisy to compare two versions of the parser. Run it with
// -benchtime 1x and 3x: the difference is three operations (1x runs one;
// 3x runs one, then three).
func BenchmarkReaderSmall(b *testing.B) {
	data, err := smallBenchGraph()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		readAllLines(b, data)
	}
}
