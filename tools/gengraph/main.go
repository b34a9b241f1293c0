// Command gengraph writes a deterministic sample graph (APOC JSON Lines) as
// <out>/fast.jsonl, warm.jsonl and cold.jsonl. Used by make demo, the tests
// and the benchmarks.
//
//	go run ./tools/gengraph -out DIR [-nodes N] [-seed S] [-change 0.01 -change-seed 2]
//	go run ./tools/gengraph -out DIR -bytes 1GiB
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strata-backup/strata/graph"
	"github.com/strata-backup/strata/graphgen"
)

func main() {
	out := flag.String("out", "", "output directory (required)")
	nodes := flag.Int("nodes", 2000, "number of nodes")
	size := flag.String("bytes", "", "approximate total size instead of -nodes, e.g. 1GiB, 200MiB")
	seed := flag.Uint64("seed", 1, "graph seed")
	change := flag.Float64("change", 0, "fraction of records to change (0..1)")
	changeSeed := flag.Uint64("change-seed", 1, "which records change")
	canon := flag.Bool("canonical", false, "write each tier in strata's canonical form (keys sorted, records by type then id): what a restore gives back")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "gengraph: -out DIR is required")
		os.Exit(2)
	}
	n := *nodes
	if *size != "" {
		b, err := parseSize(*size)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gengraph: -bytes %q: %v\n", *size, err)
			os.Exit(2)
		}
		n = int(b / 760) // ~760 bytes per node with its three relationships
	}
	total, err := graphgen.WriteDir(*out, graphgen.Options{Nodes: n, Seed: *seed, Change: *change, ChangeSeed: *changeSeed})
	if err == nil && *canon {
		err = canonicalise(*out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gengraph:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %d nodes, %d bytes to %s\n", n, total, *out)
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			v, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
			return int64(v * float64(u.mult)), err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// canonicalise rewrites each tier file in canonical form and order.
func canonicalise(dir string) error {
	for _, name := range graphgen.Tiers {
		p := filepath.Join(dir, name+".jsonl")
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		s := graph.NewSorter(256<<20, "")
		rd := graph.NewReader(f, name)
		for {
			rec, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return err
			}
			if err := s.Add(rec, rd.Line()); err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
		it, err := s.Sort()
		if err != nil {
			return err
		}
		out, err := os.Create(p)
		if err != nil {
			return err
		}
		_, err = graph.WriteLines(out, it)
		it.Close()
		s.Close()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
