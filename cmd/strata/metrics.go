package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// metric is one sample of a Prometheus textfile (node_exporter's textfile
// collector reads *.prom files).
type metric struct {
	name, help, typ string // typ: gauge or counter
	value           float64
	labels          map[string]string
}

// writeMetrics writes the samples to path atomically (a temporary file in
// the same directory, then rename), so the collector never reads half a
// file. Each command writes its own file; metric names carry the command.
func writeMetrics(path string, ms []metric) error {
	var b strings.Builder
	seen := map[string]bool{}
	for _, m := range ms {
		if !seen[m.name] {
			seen[m.name] = true
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.typ)
		}
		b.WriteString(m.name)
		if len(m.labels) > 0 {
			keys := make([]string, 0, len(m.labels))
			for k := range m.labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			b.WriteByte('{')
			for i, k := range keys {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%s=%s", k, strconv.Quote(m.labels[k]))
			}
			b.WriteByte('}')
		}
		fmt.Fprintf(&b, " %s\n", strconv.FormatFloat(m.value, 'g', -1, 64))
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write metrics %s: %w", path, err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write metrics %s: %w", path, err)
	}
	return nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
