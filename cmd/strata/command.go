package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// command is one strata command. Flags are bound into the command's own
// options struct by setup; run gets the parsed arguments.
type command struct {
	name     string
	args     string // usage after the name, e.g. "[flags] SNAPSHOT"
	short    string
	long     string
	examples []string
	setup    func(fs *pflag.FlagSet)
	run      func(ctx context.Context, g *globals, t *terminal, args []string) error
	subs     []*command
	// noRepo marks commands that never open a repository.
	noRepo bool
}

func rootCommand() *command {
	root := &command{name: "strata", short: "back up graph databases: every tier, any second, verified"}
	root.subs = []*command{
		newInitCommand(), newBackupCommand(), newSnapshotsCommand(), newLsCommand(),
		newRestoreCommand(), newDumpCommand(), newKeyCommand(), newCatCommand(),
		newStatsCommand(), newGraphCommand(), newOplogCommand(), newTimelineCommand(), newSnapshotCommand(),
		newCheckCommand(), newVerifyCommand(), newForgetCommand(), newPruneCommand(), newMirrorCommand(), newRepairCommand(),
		newDrillCommand(),
		newVersionCommand(), newHelpCommand(root), newCompletionCommand(root),
	}
	return root
}

func (c *command) find(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// dispatch finds the command named by args, parses its flags together with
// the global ones (which may appear anywhere) and runs it.
func dispatch(ctx context.Context, root *command, args []string, t *terminal) error {
	cmd, path := root, []string{root.name}
	g := newGlobals()
	// Global flags may come before the command name: set them aside and
	// parse them with the command's flags.
	var early []string
	for len(args) > 0 && len(cmd.subs) > 0 {
		a := args[0]
		if a == "-h" || a == "--help" {
			t.printHelp(cmd, path)
			return nil
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			n := globalFlagArgs(a)
			if n == 0 || len(args) < n {
				break
			}
			early, args = append(early, args[:n]...), args[n:]
			continue
		}
		sub := cmd.find(a)
		if sub == nil {
			return usagef("unknown command %q for %s", a, strings.Join(path, " "))
		}
		cmd, path, args = sub, append(path, a), args[1:]
	}
	args = append(early, args...)
	if cmd.run == nil {
		if len(args) > 0 {
			fs := pflag.NewFlagSet(cmd.name, pflag.ContinueOnError)
			g.register(fs)
			fs.SetOutput(discard{})
			if err := fs.Parse(args); err != nil {
				return usagef("%s: %v", strings.Join(path, " "), err)
			}
			if len(fs.Args()) > 0 {
				return usagef("unknown command %q for %s", fs.Args()[0], strings.Join(path, " "))
			}
		}
		if cmd == root {
			t.printHelp(cmd, path)
			return nil
		}
		// A usage error: help goes to stderr, so stdout stays clean for
		// scripts (and JSON-only under --json).
		fmt.Fprint(t.stderr, helpText(cmd, path))
		return usagef("%s needs a subcommand", strings.Join(path, " "))
	}
	fs := pflag.NewFlagSet(strings.Join(path, " "), pflag.ContinueOnError)
	fs.SetOutput(discard{})
	fs.SortFlags = true
	if cmd.setup != nil {
		cmd.setup(fs)
	}
	g.register(fs)
	help := fs.BoolP("help", "h", false, "show help for this command")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			t.printHelp(cmd, path)
			return nil
		}
		return usagef("%s: %v", strings.Join(path, " "), err)
	}
	if *help {
		t.printHelp(cmd, path)
		return nil
	}
	if err := g.resolve(fs); err != nil {
		return err
	}
	t.configure(g)
	return cmd.run(ctx, g, t, fs.Args())
}

// globalFlagArgs returns how many arguments the global flag a takes up (1
// or 2), or 0 when a is not a global flag.
func globalFlagArgs(a string) int {
	fs := pflag.NewFlagSet("global", pflag.ContinueOnError)
	newGlobals().register(fs)
	name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
	var f *pflag.Flag
	if strings.HasPrefix(a, "--") {
		f = fs.Lookup(name)
	} else if len(name) == 1 {
		f = fs.ShorthandLookup(name)
	}
	switch {
	case f == nil:
		return 0
	case hasValue || f.NoOptDefVal != "":
		return 1
	}
	return 2
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// helpText renders a command's help.
func helpText(cmd *command, path []string) string {
	var b strings.Builder
	name := strings.Join(path, " ")
	fmt.Fprintf(&b, "%s — %s\n\n", name, cmd.short)
	if cmd.long != "" {
		fmt.Fprintf(&b, "%s\n\n", strings.TrimSpace(cmd.long))
	}
	if len(cmd.subs) > 0 {
		fmt.Fprintf(&b, "Usage:\n  %s COMMAND [flags]\n\nCommands:\n", name)
		subs := append([]*command(nil), cmd.subs...)
		sort.Slice(subs, func(i, j int) bool { return subs[i].name < subs[j].name })
		for _, s := range subs {
			fmt.Fprintf(&b, "  %-12s %s\n", s.name, s.short)
		}
		b.WriteString("\n")
	} else {
		fmt.Fprintf(&b, "Usage:\n  %s %s\n\n", name, cmd.args)
	}
	if len(cmd.examples) > 0 {
		b.WriteString("Examples:\n")
		for _, e := range cmd.examples {
			fmt.Fprintf(&b, "  %s\n", e)
		}
		b.WriteString("\n")
	}
	if cmd.run != nil {
		fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
		if cmd.setup != nil {
			cmd.setup(fs)
		}
		if u := fs.FlagUsages(); u != "" {
			fmt.Fprintf(&b, "Flags:\n%s\n", u)
		}
	}
	gfs := pflag.NewFlagSet("global", pflag.ContinueOnError)
	newGlobals().register(gfs)
	fmt.Fprintf(&b, "Global flags:\n%s", gfs.FlagUsages())
	if len(cmd.subs) > 0 {
		fmt.Fprintf(&b, "\nRun '%s COMMAND --help' for a command's flags and examples.\n", name)
	}
	return b.String()
}

func newHelpCommand(root *command) *command {
	return &command{
		name: "help", args: "[COMMAND...]", short: "show help for strata or a command", noRepo: true,
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			cmd, path := root, []string{root.name}
			for _, a := range args {
				sub := cmd.find(a)
				if sub == nil {
					return usagef("help: unknown command %q", a)
				}
				cmd, path = sub, append(path, a)
			}
			t.printHelp(cmd, path)
			return nil
		},
	}
}

// exactArgs checks the number of positional arguments.
func exactArgs(cmd string, args []string, n int, what string) error {
	if len(args) != n {
		return usagef("%s: want %s, got %d argument(s)", cmd, what, len(args))
	}
	return nil
}
