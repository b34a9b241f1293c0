package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// cliMarkdown renders docs/cli.md from the command tree: the same text
// `strata COMMAND --help` prints, so the reference cannot drift from the
// flags (TestCLIDoc keeps the file current).
func cliMarkdown(root *command) string {
	var b strings.Builder
	b.WriteString("# strata command reference\n\n")
	b.WriteString("Generated from strata's command and flag definitions (the text `strata COMMAND --help`\n")
	b.WriteString("prints); do not edit by hand: `STRATA_UPDATE_DOCS=1 go test ./cmd/strata -run TestCLIDoc`\n")
	b.WriteString("rewrites it. JSON output: [json.md](json.md).\n\n")
	gfs := pflag.NewFlagSet("global", pflag.ContinueOnError)
	newGlobals().register(gfs)
	fmt.Fprintf(&b, "## Global flags\n\nEvery command takes them.\n\n```\n%s```\n", gfs.FlagUsages())
	var walk func(c *command, path []string)
	walk = func(c *command, path []string) {
		if len(path) > 1 {
			text := helpText(c, path)
			if i := strings.Index(text, "Global flags:\n"); i >= 0 {
				text = text[:i]
			}
			fmt.Fprintf(&b, "\n## %s\n\n```\n%s\n```\n", strings.Join(path, " "), strings.TrimRight(text, "\n"))
		}
		subs := append([]*command(nil), c.subs...)
		sort.Slice(subs, func(i, j int) bool { return subs[i].name < subs[j].name })
		for _, s := range subs {
			walk(s, append(append([]string(nil), path...), s.name))
		}
	}
	walk(root, []string{root.name})
	return b.String()
}
